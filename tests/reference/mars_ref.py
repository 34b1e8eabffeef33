"""Float64 NumPy reference of MARS-AdamW and MARS-Lion (Yuan et al., arXiv:2411.10438), with the
official routing (non-2-D leaves get AdamW) and gradtx's step-1 rule c_1 = g_1; independent of
gradtx.
"""

import numpy as np


class MARS:
  def __init__(self, lr, b1=0.95, b2=0.99, gamma=0.025, eps=1e-8, wd=0.0, optimize_1d=False,
               lr_1d=None, b1_1d=0.9, b2_1d=0.95, wd_1d=0.1, variant="adamw"):
    self.variant = variant
    self.lr, self.b1, self.b2, self.gamma, self.eps, self.wd = lr, b1, b2, gamma, eps, wd
    self.optimize_1d, self.lr_1d, self.b1_1d, self.b2_1d, self.wd_1d = (
        optimize_1d, lr if lr_1d is None else lr_1d, b1_1d, b2_1d, wd_1d)
    self.t, self.m, self.v, self.g_prev = 0, None, None, None

  def step(self, params, grads, grads_prev_params=None):
    """One step. ``grads_prev_params``: exact MARS's grad of the current batch at the previous
    params; None uses the previous step's gradient (approximate MARS)."""
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
      self.g_prev = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    t = self.t
    out = {}
    for k in params:
      g = grads[k]
      mars_leaf = self.optimize_1d or g.ndim == 2
      if mars_leaf:
        b1, b2, lr, wd = self.b1, self.b2, self.lr, self.wd
        if t == 1:
          c = g.copy()
        else:
          old = self.g_prev[k] if grads_prev_params is None else grads_prev_params[k]
          c = g + self.gamma * (b1 / (1 - b1)) * (g - old)
        norm = np.linalg.norm(c)
        if norm > 1:
          c = c / norm
      else:
        b1, b2, lr, wd = self.b1_1d, self.b2_1d, self.lr_1d, self.wd_1d
        c = g
      self.m[k] = b1 * self.m[k] + (1 - b1) * c
      self.v[k] = b2 * self.v[k] + (1 - b2) * c * c
      if mars_leaf and self.variant == "lion":
        d = np.sign(self.m[k])
      else:
        d = (self.m[k] / (1 - b1**t)) / (np.sqrt(self.v[k] / (1 - b2**t)) + self.eps)
      out[k] = params[k] - lr * (d + wd * params[k])
      self.g_prev[k] = g
    return out
