"""Float64 NumPy references for the clipping family, written from the papers (no gradtx import).

Each reference class steps ``params`` (a dict of arrays) with ``step(params, grads)`` and applies
the clipped gradient with plain SGD at ``lr`` (or the optimizer's own rule), so trajectories of
50+ steps exercise the clip at many norms.
"""

import numpy as np


def global_norm(tree):
  return float(np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in tree.values())))


def clip_global(grads, c):
  """u = g min(1, c/n), n the global norm (n = 0 -> g)."""
  n = global_norm(grads)
  f = 1.0 if n <= c or n == 0 else c / n
  return {k: v * f for k, v in grads.items()}, n


def clip_value(grads, c):
  return {k: np.clip(v, -c, c) for k, v in grads.items()}


def clip_block(grads, c):
  out = {}
  for k, v in grads.items():
    n = float(np.sqrt(np.sum(v**2)))
    out[k] = v * (c / n if n > c else 1.0)
  return out


def unit_norms(x):
  """Norm per unit: whole leaf for ndim <= 1, else over all axes but the last (keepdims)."""
  if x.ndim <= 1:
    return np.sqrt(np.sum(x**2))
  return np.sqrt(np.sum(x**2, axis=tuple(range(x.ndim - 1)), keepdims=True))


def agc(grads, params, lam, eps):
  """NFNets AGC: G_i <- G_i min(1, lam max(||W_i||, eps) / ||G_i||) per unit."""
  out = {}
  for k, g in grads.items():
    gn = unit_norms(g)
    bound = lam * np.maximum(unit_norms(params[k]), eps)
    factor = np.where(gn > bound, bound / np.where(gn > bound, gn, 1.0), 1.0)
    out[k] = g * factor
  return out


def per_example_clip_loop(per_example, c):
  """Sum over examples of each example's gradient clipped to global norm c (a plain loop)."""
  batch = next(iter(per_example.values())).shape[0]
  total = {k: np.zeros(v.shape[1:]) for k, v in per_example.items()}
  norms = []
  for i in range(batch):
    gi = {k: v[i] for k, v in per_example.items()}
    ci, n = clip_global(gi, c)
    norms.append(n)
    for k in total:
      total[k] = total[k] + ci[k]
  return total, np.asarray(norms)


class ClipSgd:
  """SGD on a clipped gradient: p <- p - lr clip(g)."""

  def __init__(self, clip, lr):
    self.clip, self.lr = clip, lr

  def step(self, params, grads):
    u = self.clip(grads, params)
    return {k: params[k] - self.lr * u[k] for k in params}


class QuantileClipSgd:
  """Quantile clipping (pinball-loss proximal step on the norm), then SGD at lr."""

  def __init__(self, q, tau, lr, c0=None):
    self.q, self.tau, self.lr, self.c = q, tau, lr, c0
    self.thresholds = []

  def step(self, params, grads):
    n = global_norm(grads)
    c = n if self.c is None else self.c
    f = c / n if n > c else 1.0
    self.c = c + float(np.clip(n - c, -(1 - self.q) * self.tau, self.q * self.tau))
    self.thresholds.append(self.c)
    return {k: params[k] - self.lr * f * grads[k] for k in params}


class ClippedAdagradNorm:
  """Clip-AdaGrad-Norm: gc = clip(g), b^2 += ||gc||^2, p <- p - lr gc / (b + eps) (delayed: old b)."""

  def __init__(self, lr, c, b0_sq=0.0, eps=0.0, delayed=False):
    self.lr, self.c, self.b_sq, self.eps, self.delayed = lr, c, b0_sq, eps, delayed

  def step(self, params, grads):
    gc, _ = clip_global(grads, self.c)
    old = self.b_sq
    self.b_sq = self.b_sq + global_norm(gc) ** 2
    denom = np.sqrt(old if self.delayed else self.b_sq) + self.eps
    return {k: params[k] - self.lr * gc[k] / denom for k in params}
