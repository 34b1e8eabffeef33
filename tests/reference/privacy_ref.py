"""Float64 NumPy references for differential privacy (written from the papers; never imports gradtx).

DP-SGD (Abadi et al., arXiv:1607.00133): clip each example's gradient to norm C over all leaves,
sum, add N(0, sigma^2 C^2) noise, divide by the expected batch size (or the real batch size).
The Gaussian noise is an input (a standard normal tree per step), so the reference is exact.
"""

import math

import numpy as np
from scipy.stats import norm as _normal


def per_example_least_squares(x, y):
  """Per-example gradients of 0.5 ||x_i W + b - y_i||^2: returns grads(params) -> {"w": (B,5,3), "b": (B,3)}."""

  def grads(p):
    r = x @ p["w"] + p["b"] - y  # (B, 3)
    return {"w": x[:, :, None] * r[:, None, :], "b": r}

  return grads


def per_example_softmax(x, labels, classes):
  """Per-example gradients of the cross-entropy of softmax(x_i W + b)."""

  def grads(p):
    logits = x @ p["w"] + p["b"]
    logits = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    r = prob - np.eye(classes)[labels]
    return {"w": x[:, :, None] * r[:, None, :], "b": r}

  return grads


def dp_aggregate(per_example, z, l2_clip, noise_multiplier, denominator, mask=None):
  """(sum_i m_i g_i min(1, C/||g_i||) + sigma C z) / denominator; ``denominator=None``: real batch size."""
  keys = sorted(per_example)
  batch = per_example[keys[0]].shape[0]
  m = np.ones(batch) if mask is None else np.asarray(mask, np.float64)
  norms = np.sqrt(sum(np.sum(per_example[k].reshape(batch, -1) ** 2, axis=1) for k in keys))
  factor = np.where(norms > l2_clip, l2_clip / np.where(norms > 0, norms, 1.0), 1.0) * m
  d = max(m.sum(), 1.0) if denominator is None else denominator
  return {
      k: (np.tensordot(factor, per_example[k], axes=(0, 0)) + noise_multiplier * l2_clip * z[k]) / d
      for k in keys
  }


class DpSgd:
  """DP-SGD with torch-style momentum (dampening 0), optional Nesterov and coupled weight decay."""

  def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    self.lr, self.momentum, self.nesterov, self.wd = lr, momentum, nesterov, weight_decay
    self.buf = None

  def step(self, params, gbar):
    g = {k: gbar[k] + self.wd * params[k] for k in params}
    if self.momentum:
      if self.buf is None:
        self.buf = {k: g[k].copy() for k in g}
      else:
        self.buf = {k: self.momentum * self.buf[k] + g[k] for k in g}
      d = {k: g[k] + self.momentum * self.buf[k] for k in g} if self.nesterov else self.buf
    else:
      d = g
    return {k: params[k] - self.lr * d[k] for k in params}


class DpAdam:
  """DP-Adam: Adam on the private gradient, decoupled weight decay times the learning rate."""

  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, weight_decay
    self.m = self.v = None
    self.t = 0

  def step(self, params, gbar):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    out = {}
    for k in params:
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * gbar[k]
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * gbar[k] ** 2
      mhat = self.m[k] / (1 - self.b1**self.t)
      vhat = self.v[k] / (1 - self.b2**self.t)
      out[k] = params[k] - self.lr * (mhat / (np.sqrt(vhat) + self.eps) + self.wd * params[k])
    return out


def gaussian_delta(epsilon, mu):
  """Exact delta(epsilon) of the Gaussian mechanism with sensitivity/sigma = mu (Balle & Wang, arXiv:1805.06530)."""
  return _normal.cdf(-epsilon / mu + mu / 2) - math.exp(epsilon) * _normal.cdf(-epsilon / mu - mu / 2)


def gaussian_epsilon(noise_multiplier, steps, delta):
  """Exact epsilon of ``steps`` full-batch Gaussian steps: one Gaussian with mu = sqrt(steps)/sigma, by bisection."""
  mu = math.sqrt(steps) / noise_multiplier
  lo, hi = 0.0, 1.0
  while gaussian_delta(hi, mu) > delta:
    hi *= 2
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if gaussian_delta(mid, mu) > delta else (lo, mid)
  return hi


def rdp_full_batch_epsilon(noise_multiplier, steps, delta, orders):
  """RDP of ``steps`` full-batch Gaussian steps (alpha T / (2 sigma^2)) with the conversion of
  Canonne, Kamath & Steinke (arXiv:2004.00010): eps = rdp + log((a-1)/a) - (log delta + log a)/(a-1)."""
  best = math.inf
  for a in orders:
    rdp = a * steps / (2 * noise_multiplier**2)
    eps = rdp + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
    best = min(best, eps)
  return max(best, 0.0)


def tree_prefix_noise(t, node_noise):
  """N_t = sum of the tree nodes of the dyadic decomposition of [1, t]: node (l, t >> l) per set bit l."""
  total = None
  level = 0
  while (t >> level) > 0:
    if (t >> level) & 1:
      z = node_noise(level, t >> level)
      total = z if total is None else {k: total[k] + z[k] for k in z}
    level += 1
  return total


class DpFtrl:
  """FTRL with tree-aggregation noise (Kairouz et al.): theta_t = theta_anchor - lr (sum_s x_s + sigma C N_t) / B,
  the tree (and the anchor) restarting every ``restart`` steps. ``node_noise(epoch, level, j)``: standard normals."""

  def __init__(self, lr, l2_clip, noise_multiplier, batch_size, restart, node_noise):
    self.lr, self.c, self.sigma, self.b, self.restart, self.node = (
        lr, l2_clip, noise_multiplier, batch_size, restart, node_noise)
    self.count = 0
    self.anchor = self.sum = None

  def step(self, params, per_example):
    epoch, t = divmod(self.count, self.restart)
    t += 1
    if t == 1:
      self.anchor = {k: v.copy() for k, v in params.items()}
      self.sum = {k: np.zeros_like(v) for k, v in params.items()}
    x = dp_aggregate(per_example, {k: np.zeros_like(v) for k, v in params.items()}, self.c, 0.0, 1.0)
    self.sum = {k: self.sum[k] + x[k] for k in x}
    noise = tree_prefix_noise(t, lambda level, j: self.node(epoch, level, j))
    self.count += 1
    return {k: self.anchor[k] - self.lr * (self.sum[k] + self.sigma * self.c * noise[k]) / self.b for k in params}


def toeplitz_lower(coefficients, n):
  """The n x n lower-triangular Toeplitz matrix with first column ``coefficients`` (zero-padded or cut to n)."""
  c = np.zeros(n)
  k = min(n, len(coefficients))
  c[:k] = np.asarray(coefficients, np.float64)[:k]
  i, j = np.indices((n, n))
  return np.where(i >= j, c[np.clip(i - j, 0, n - 1)], 0.0)


def banded_noise(coefficients, w, banded):
  """Correlated noise zeta = C^{-1} w for the first len(w) steps (matrix form, by a linear solve).

  ``w``: list of per-step noise draws (dicts of arrays, already scaled by sigma C_clip).
  ``banded="strategy"``: C is the banded Toeplitz matrix of ``coefficients`` (BandMF), zeta = solve(C, w).
  ``banded="correlation"``: C^{-1} is the banded Toeplitz matrix of ``coefficients``, zeta = C^{-1} w.
  Returns zeta_t (the last step) as a dict.
  """
  n = len(w)
  m = toeplitz_lower(coefficients, n)
  out = {}
  for k in w[0]:
    stacked = np.stack([x[k].reshape(-1) for x in w])  # (n, d)
    zeta = np.linalg.solve(m, stacked) if banded == "strategy" else m @ stacked
    out[k] = zeta[-1].reshape(w[0][k].shape)
  return out


def noise_covariance(coefficients, n, banded, std):
  """Cov(zeta_1..zeta_n) per coordinate: std^2 C^{-1} C^{-T}."""
  m = toeplitz_lower(coefficients, n)
  inv = np.linalg.inv(m) if banded == "strategy" else m
  return std**2 * inv @ inv.T


class DpBanded:
  """SGD (heavy-ball momentum, dampening 0) on (x_t + (C^{-1} w)_t) / D with w_t = sigma C_clip z_t."""

  def __init__(self, lr, l2_clip, noise_multiplier, denominator, coefficients, banded, momentum=0.0, mask=None):
    self.c, self.sigma, self.d, self.coefs, self.banded, self.mask = (
        l2_clip, noise_multiplier, denominator, coefficients, banded, mask)
    self.sgd = DpSgd(lr, momentum)
    self.w = []

  def step(self, params, per_example, z):
    self.w.append({k: self.sigma * self.c * z[k] for k in z})
    zeta = banded_noise(self.coefs, self.w, self.banded)
    zero = {k: np.zeros_like(v) for k, v in z.items()}
    x = dp_aggregate(per_example, zero, self.c, 0.0, 1.0, self.mask)
    d = self.d if self.d is not None else max(np.sum(self.mask) if self.mask is not None else
                                               next(iter(per_example.values())).shape[0], 1.0)
    return self.sgd.step(params, {k: (x[k] + zeta[k]) / d for k in x})


def prefix_sum_error(coefficients, n):
  """max column norm(C)^2 * ||A C^{-1}||_F^2 for A the n x n prefix-sum matrix, with dense matrices."""
  c = toeplitz_lower(coefficients, n)
  a = np.tril(np.ones((n, n)))
  return np.max(np.sum(c * c, axis=0)) * np.sum((a @ np.linalg.inv(c)) ** 2)
