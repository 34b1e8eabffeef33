"""Float64 NumPy reference for AdaMomentum (arXiv:2106.11514), written from the paper's algorithm."""

import numpy as np


class AdaMomentum:
  """p <- p - lr * (mhat / sqrt(vhat) + wd * p); v accumulates (1-b2) m^2 + eps."""

  def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
    self.m = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.v = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.t = 0

  def update(self, grads, params):
    """The additive update for this step."""
    self.t += 1
    out = {}
    for k, g in grads.items():
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * self.m[k] ** 2 + self.eps
      mhat = self.m[k] / (1 - self.b1**self.t)
      vhat = self.v[k] / (1 - self.b2**self.t)
      out[k] = -self.lr * (mhat / np.sqrt(vhat) + self.wd * params[k])
    return out
