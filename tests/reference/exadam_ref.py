"""Float64 NumPy reference of EXAdam (Adly, arXiv:2412.20302; revised version, optional first-release
log step size), written from the paper's algorithm, independent of gradtx.
"""

import math

import numpy as np


class EXAdam:
  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, log_step_size=False):
    self.lr, self.b1, self.b2, self.eps, self.wd, self.log_step_size = lr, b1, b2, eps, wd, log_step_size
    self.t, self.m, self.v = 0, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    t, b1, b2, eps = self.t, self.b1, self.b2, self.eps
    a = self.lr * math.log(math.sqrt(2) * math.sqrt(t + 1)) if self.log_step_size else self.lr
    out = {}
    for k in params:
      g = grads[k]
      m = self.m[k] = b1 * self.m[k] + (1 - b1) * g
      v = self.v[k] = b2 * self.v[k] + (1 - b2) * g**2
      d1 = 1 + b2**t * v / (v + eps)
      d2 = 1 + b1**t * m**2 / (m**2 + eps)
      m_t = m / (1 - b1**t) * d1
      v_t = v / (1 - b2**t) * d2
      g_t = g / (1 - b1**t) * d1
      out[k] = params[k] - a * (m_t + g_t) / (np.sqrt(v_t) + eps) - self.lr * self.wd * params[k]
    return out
