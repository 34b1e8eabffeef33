"""Float64 NumPy reference for Subset-Norm / Subspace-Momentum (arXiv:2411.07120).

Written from the paper's update and the reference code's ``GenericOptim`` step (eps-hat bias
correction, GaLore-style SVD projection, momentum reset on refresh steps), for 2-D and 1-D leaves.
"""

import math

import numpy as np


def _divisor_at_most(n, k):
  k = max(1, min(int(k), n))
  while n % k:
    k -= 1
  return k


class SubsetNorm:

  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-6, wd=0.0, subset_size="heuristic",
               momentum="ema", rank=None, gap=200, correct_bias=True):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
    self.subset_size, self.momentum, self.rank, self.gap = subset_size, momentum, rank, gap
    self.correct_bias = correct_bias
    self.t = 0
    self.s, self.m, self.P = {}, {}, {}

  def _sums(self, g):
    if g.ndim < 2 or self.subset_size is None:
      return g**2, None
    if self.subset_size == "heuristic":
      if g.ndim != 2:
        return g**2, None
      axis = 1 if g.shape[0] >= g.shape[1] else 0
      return np.sum(g**2, axis=axis, keepdims=True), None
    n = g.size
    k = self.subset_size if self.subset_size > 0 else int(math.sqrt(n) / abs(self.subset_size))
    k = _divisor_at_most(n, k)
    return np.sum(g.reshape(-1, k) ** 2, axis=1, keepdims=True), k

  def _numerator(self, key, g):
    if self.momentum == "none" or self.b1 == 0:
      return g
    if self.momentum == "subspace" and g.ndim == 2:
      a, b = g.shape
      r = min(self.rank, a, b)
      if self.t == 1 or self.t % self.gap == 0:
        u, _, vh = np.linalg.svd(g, full_matrices=False)
        self.P[key] = vh[:r, :] if a >= b else u[:, :r]
        self.m[key] = np.zeros((a, r) if a >= b else (r, b))
      P = self.P[key]
      if a >= b:
        low = g @ P.T
        self.m[key] = self.b1 * self.m[key] + (1 - self.b1) * low
        return self.m[key] @ P + (g - low @ P)
      low = P.T @ g
      self.m[key] = self.b1 * self.m[key] + (1 - self.b1) * low
      return P @ self.m[key] + (g - P @ low)
    self.m.setdefault(key, np.zeros_like(g))
    self.m[key] = self.b1 * self.m[key] + (1 - self.b1) * g
    return self.m[key]

  def update(self, grads, params):
    self.t += 1
    step = 1.0
    if self.correct_bias:
      if self.b2 < 1:
        step *= math.sqrt(1 - self.b2**self.t)
      if self.momentum != "none" and self.b1 != 0:
        step /= 1 - self.b1**self.t
    out = {}
    for key, g in grads.items():
      num = self._numerator(key, g)
      sums, k = self._sums(g)
      old = self.s.get(key, np.zeros_like(sums))
      self.s[key] = self.b2 * old + (1 - self.b2) * sums if self.b2 < 1 else old + sums
      den = np.sqrt(self.s[key]) + self.eps
      if k is None:
        direction = num / den
      else:
        direction = (num.reshape(-1, k) / den).reshape(g.shape)
      out[key] = -self.lr * (step * direction + self.wd * params[key])
    return out
