"""Float64 NumPy reference of FAdam (Hwang, arXiv:2405.12807) with the conventions in
shared/reference/algorithms.md section 1.12; independent of gradtx.
"""

import numpy as np


def _rms(x):
  return np.sqrt(np.mean(x * x))


class FAdam:
  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, clip=1.0, p=0.5, mask=None):
    self.lr, self.b1, self.b2, self.eps, self.wd, self.clip, self.p = lr, b1, b2, eps, wd, clip, p
    self.mask = mask
    self.t, self.m, self.f = 0, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.f = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    t, b1, b2 = self.t, self.b1, self.b2
    rho = b2 * (1 - b2 ** (t - 1)) / (1 - b2**t)
    out = {}
    for k in params:
      g = grads[k]
      self.f[k] = rho * self.f[k] + (1 - rho) * g * g
      eps_t = self.eps * min(1.0, _rms(g))
      den = self.f[k] ** self.p + eps_t
      gn = g / den
      gn = gn / max(1.0, _rms(gn) / self.clip)
      self.m[k] = b1 * self.m[k] + (1 - b1) * gn
      u = self.m[k]
      if self.wd and (self.mask is None or self.mask[k]):
        wn = params[k] / den
        wn = wn / max(1.0, _rms(wn) / self.clip)
        u = u + self.wd * wn
      out[k] = params[k] - self.lr * u
    return out
