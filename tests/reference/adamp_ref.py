"""Float64 NumPy reference of AdamP (Heo et al., arXiv:2006.08217, as in clovaai/AdamP),
written in torch layout (output units first) and transposed at the boundary; independent of gradtx.
"""

import numpy as np


def _to_torch(x):
  return np.moveaxis(x, -1, 0) if x.ndim > 1 else x


def _from_torch(x):
  return np.moveaxis(x, 0, -1) if x.ndim > 1 else x


def _projection(p, g, perturb, delta, wd_ratio, eps):
  """clovaai/AdamP ``_projection`` on torch-layout arrays (cosine with norms product + eps)."""
  views = [lambda x: x.reshape(x.shape[0], -1), lambda x: x.reshape(1, -1)]
  for view in views:
    gv, pv = view(g), view(p)
    cos = np.abs(np.sum(gv * pv, axis=1)) / (
        np.linalg.norm(gv, axis=1) * np.linalg.norm(pv, axis=1) + eps)
    if cos.max() < delta / np.sqrt(pv.shape[1]):
      expand = [-1] + [1] * (p.ndim - 1)
      p_n = p / (np.linalg.norm(pv, axis=1).reshape(expand) + eps)
      perturb = perturb - p_n * view(p_n * perturb).sum(axis=1).reshape(expand)
      return perturb, wd_ratio
  return perturb, 1.0


class AdamP:
  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, delta=0.1, wd_ratio=0.1,
               nesterov=False, mask=None):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
    self.delta, self.wd_ratio, self.nesterov, self.mask = delta, wd_ratio, nesterov, mask
    self.t, self.m, self.v = 0, None, None
    self.projected = {}  # leaf name -> whether the last step projected it (for invariant tests)

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    t, b1, b2 = self.t, self.b1, self.b2
    out = {}
    for k in params:
      g = grads[k]
      self.m[k] = b1 * self.m[k] + (1 - b1) * g
      self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
      denom = np.sqrt(self.v[k]) / np.sqrt(1 - b2**t) + self.eps
      step_size = self.lr / (1 - b1**t)
      num = b1 * self.m[k] + (1 - b1) * g if self.nesterov else self.m[k]
      perturb = num / denom
      ratio = 1.0
      if params[k].ndim > 1:
        pt, ratio = _projection(_to_torch(params[k]), _to_torch(g), _to_torch(perturb),
                                self.delta, self.wd_ratio, self.eps)
        perturb = _from_torch(pt)
      self.projected[k] = ratio != 1.0
      p = params[k]
      if self.wd and (self.mask is None or self.mask[k]):
        p = p * (1 - self.lr * self.wd * ratio)
      out[k] = p - step_size * perturb
    return out
