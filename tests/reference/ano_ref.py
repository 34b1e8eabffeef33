"""Float64 NumPy reference of Ano ("ANO: Faster is Better in Noisy Landscape", 2025; eps
inside the square root as in the official code), independent of gradtx.
"""

import numpy as np


class Ano:
  def __init__(self, lr, b1=0.92, b2=0.99, eps=1e-8, wd=0.0):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
    self.t, self.m, self.v = 0, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    out = {}
    for k in params:
      g = grads[k]
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * np.sign(g * g - self.v[k]) * g * g
      v_hat = self.v[k] / (1 - self.b2**self.t)
      step = self.lr / np.sqrt(v_hat + self.eps) * np.abs(g) * np.sign(self.m[k])
      out[k] = params[k] * (1 - self.lr * self.wd) - step
    return out
