"""Float64 NumPy reference of AdEMAMix (Pagliardini, Ablin & Grangier, arXiv:2409.03137),
written from the paper's pseudocode, independent of gradtx.
"""

import math

import numpy as np


def alpha_warmup(alpha, warmup):
  """Paper scheduler: linear from 0 to alpha over ``warmup`` steps, of the 0-based count."""
  return lambda c: alpha * min(c / warmup, 1.0)


def b3_warmup(b1, b3, warmup):
  """Paper scheduler: linear in half-life from b1 to b3, of the 0-based count."""

  def f(beta):
    return math.log(0.5) / math.log(beta) - 1.0

  def f_inv(tau):
    return 0.5 ** (1.0 / (tau + 1.0))

  def sched(c):
    if c >= warmup:
      return b3
    s = c / warmup
    return f_inv((1.0 - s) * f(b1) + s * f(b3))

  return sched


class AdEMAMix:
  def __init__(self, lr, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, wd=0.0,
               alpha_fn=None, b3_fn=None, mask=None):
    self.lr, self.b1, self.b2, self.b3, self.alpha, self.eps, self.wd = lr, b1, b2, b3, alpha, eps, wd
    self.alpha_fn, self.b3_fn, self.mask = alpha_fn, b3_fn, mask
    self.t, self.m1, self.m2, self.nu = 0, None, None, None

  def step(self, params, grads):
    if self.m1 is None:
      self.m1 = {k: np.zeros_like(v) for k, v in params.items()}
      self.m2 = {k: np.zeros_like(v) for k, v in params.items()}
      self.nu = {k: np.zeros_like(v) for k, v in params.items()}
    count = self.t
    self.t += 1
    t = self.t
    alpha = self.alpha_fn(count) if self.alpha_fn else self.alpha
    b3 = self.b3_fn(count) if self.b3_fn else self.b3
    out = {}
    for k in params:
      g = grads[k]
      self.m1[k] = self.b1 * self.m1[k] + (1 - self.b1) * g
      self.m2[k] = b3 * self.m2[k] + (1 - b3) * g
      self.nu[k] = self.b2 * self.nu[k] + (1 - self.b2) * g * g
      m1_hat = self.m1[k] / (1 - self.b1**t)
      nu_hat = self.nu[k] / (1 - self.b2**t)
      d = (m1_hat + alpha * self.m2[k]) / (np.sqrt(nu_hat) + self.eps)
      if self.wd and (self.mask is None or self.mask[k]):
        d = d + self.wd * params[k]
      out[k] = params[k] - self.lr * d
    return out
