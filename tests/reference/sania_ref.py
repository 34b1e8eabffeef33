"""Float64 NumPy reference for SANIA (arXiv:2312.17369): AdaGrad-SQR and Adam-SQR preconditioners."""

import numpy as np


class Sania:
  """x <- x - lr * tau * g / max(B, eps), tau the smallest root of f - tau q + tau^2 q / 2 = f*."""

  def __init__(self, params, lr=1.0, preconditioner="adagrad", b2=0.999, eps=0.1, f_star=0.0, sqrt=False):
    self.lr, self.pre, self.b2, self.eps, self.f_star, self.sqrt = lr, preconditioner, b2, eps, f_star, sqrt
    self.acc = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.t = 0
    self.taus = []

  def update(self, grads, value):
    self.t += 1
    s = {}
    for k, g in grads.items():
      if self.pre == "adagrad":
        self.acc[k] = self.acc[k] + g**2
        d = self.acc[k]
      else:
        self.acc[k] = self.b2 * self.acc[k] + (1 - self.b2) * g**2
        d = self.acc[k] / (1 - self.b2**self.t)
      if self.sqrt:
        d = np.sqrt(d)
      s[k] = g / np.maximum(d, self.eps)
    q = sum(np.sum(grads[k] * s[k]) for k in grads)
    gap = max(value - self.f_star, 0.0)
    if q > 0 and 2 * gap / q <= 1:
      tau = 1 - np.sqrt(1 - 2 * gap / q)
    else:
      tau = 1.0
    self.taus.append(tau)
    return {k: -self.lr * tau * s[k] for k in grads}
