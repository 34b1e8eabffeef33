"""Float64 NumPy reference for XGrad with Adam and SGD-momentum (arXiv:2305.18240).

Written from the paper's rule and the authors' ``load_predicted_weights``: the predicted weights
use the stored moments with the stored step count, and the update is applied to the unpredicted
weights.
"""

import numpy as np


class XGradAdam:

  def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8, s=1):
    self.lr, self.b1, self.b2, self.eps, self.s = lr, b1, b2, eps, s
    self.m = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.v = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.t = 0

  def predict(self, params):
    if self.t == 0:
      return {k: np.array(v) for k, v in params.items()}
    out = {}
    for k, p in params.items():
      denom = np.sqrt(self.v[k]) / np.sqrt(1 - self.b2**self.t) + self.eps
      out[k] = p - self.s * self.lr / (1 - self.b1**self.t) * self.m[k] / denom
    return out

  def update(self, grads):
    self.t += 1
    out = {}
    for k, g in grads.items():
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g**2
      denom = np.sqrt(self.v[k]) / np.sqrt(1 - self.b2**self.t) + self.eps
      out[k] = -self.lr / (1 - self.b1**self.t) * self.m[k] / denom
    return out


class XGradSgdm:

  def __init__(self, params, lr, momentum=0.9, s=1):
    self.lr, self.mom, self.s = lr, momentum, s
    self.buf = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}

  def predict(self, params):
    return {k: p - self.s * self.lr * self.buf[k] for k, p in params.items()}

  def update(self, grads):
    out = {}
    for k, g in grads.items():
      self.buf[k] = self.mom * self.buf[k] + g
      out[k] = -self.lr * self.buf[k]
    return out
