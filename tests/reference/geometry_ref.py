"""Float64 NumPy references of the geometry optimizers (sign, orthogonal, dualized-norm updates),
written from the papers and shared/reference/algorithms.md Part 6, independent of gradtx's code.

Each reference is a class with ``step(params, grads) -> new params`` on dicts of float64 arrays.
Matrices are in the JAX ``(in, out)`` layout: fan_in = shape[0], fan_out = shape[1].
"""

import numpy as np

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(x, steps=5, coeffs=NS_COEFFS, eps=1e-7):
  """Keller Jordan's quintic iteration on one matrix."""
  a, b, c = coeffs
  x = x / (np.linalg.norm(x) + eps)
  tall = x.shape[0] > x.shape[1]
  if tall:
    x = x.T
  for _ in range(steps):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  return x.T if tall else x


def polar(x):
  """U V^T from the thin SVD."""
  u, _, vt = np.linalg.svd(x, full_matrices=False)
  return u @ vt


def _zeros(params):
  return {k: np.zeros_like(v) for k, v in params.items()}


class AdamW:
  """Kingma & Ba with decoupled decay (the default fallback of Muon and AuON)."""

  def __init__(self, lr, b1=0.9, b2=0.95, eps=1e-8, wd=0.0):
    self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
    self.t, self.m, self.v = 0, {}, {}

  def step_leaf(self, k, p, g):
    if k not in self.m:
      self.m[k], self.v[k] = np.zeros_like(p), np.zeros_like(p)
    self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
    self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
    t = self.t
    d = (self.m[k] / (1 - self.b1**t)) / (np.sqrt(self.v[k] / (1 - self.b2**t)) + self.eps)
    return p - self.lr * (d + self.wd * p)


class SignSGD:
  """u = -lr (sign(g) + wd p)."""

  def __init__(self, lr, wd=0.0):
    self.lr, self.wd = lr, wd

  def step(self, params, grads):
    return {k: p - self.lr * (np.sign(grads[k]) + self.wd * p) for k, p in params.items()}


class Signum:
  """m = b m + (1-b) g; u = -lr (sign(m) + wd p)."""

  def __init__(self, lr, b1=0.9, wd=0.0):
    self.lr, self.b1, self.wd, self.m = lr, b1, wd, None

  def step(self, params, grads):
    self.m = self.m or _zeros(params)
    out = {}
    for k, p in params.items():
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * grads[k]
      out[k] = p - self.lr * (np.sign(self.m[k]) + self.wd * p)
    return out


class Lion:
  """Chen et al. Algorithm 2: c = b1 m + (1-b1) g; u = -lr (sign(c) + wd p); m = b2 m + (1-b2) g."""

  def __init__(self, lr, b1=0.9, b2=0.99, wd=0.0):
    self.lr, self.b1, self.b2, self.wd, self.m = lr, b1, b2, wd, None

  def step(self, params, grads):
    self.m = self.m or _zeros(params)
    out = {}
    for k, p in params.items():
      c = self.b1 * self.m[k] + (1 - self.b1) * grads[k]
      out[k] = p - self.lr * (np.sign(c) + self.wd * p)
      self.m[k] = self.b2 * self.m[k] + (1 - self.b2) * grads[k]
    return out


class NormalizedSGD:
  """Cutkosky & Mehta: m = b m + (1-b) g; u = -lr (m / ||m|| + wd p), global or per-leaf norm."""

  def __init__(self, lr, momentum=0.9, wd=0.0, per_leaf=False):
    self.lr, self.b, self.wd, self.per_leaf, self.m = lr, momentum, wd, per_leaf, None

  def step(self, params, grads):
    self.m = self.m or _zeros(params)
    for k in params:
      self.m[k] = self.b * self.m[k] + (1 - self.b) * grads[k]
    total = np.sqrt(sum(np.sum(m * m) for m in self.m.values()))
    out = {}
    for k, p in params.items():
      n = np.linalg.norm(self.m[k]) if self.per_leaf else total
      d = self.m[k] / n if n > 0 else 0 * p
      out[k] = p - self.lr * (d + self.wd * p)
    return out


def _shape_factor(shape, scaling):
  fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
  return {
      "max_ratio": np.sqrt(max(1.0, fan_out / fan_in)),
      "match_rms": 0.2 * np.sqrt(max(fan_in, fan_out)),
      "rms_to_rms": np.sqrt(fan_out / fan_in),
      "none": 1.0,
  }[scaling]


class Muon:
  """Muon on 2-D leaves (Nesterov EMA momentum, NS5 or exact polar, shape factor, decoupled
  decay); AdamW(0.9, 0.95, 1e-8) with the same lr (or adam_lr) and decay on the other leaves."""

  def __init__(self, lr, b1=0.95, nesterov=True, ns_steps=5, wd=0.0, shape_scaling="max_ratio",
               exact=False, adam_lr=None):
    self.lr, self.b1, self.nesterov, self.ns_steps, self.wd = lr, b1, nesterov, ns_steps, wd
    self.scaling, self.exact = shape_scaling, exact
    self.adam = AdamW(lr if adam_lr is None else adam_lr, wd=wd)
    self.m = None

  def direction(self, n):
    return polar(n) if self.exact else newton_schulz(n, self.ns_steps)

  def step(self, params, grads):
    self.m = self.m or _zeros(params)
    self.adam.t += 1
    out = {}
    for k, p in params.items():
      g = grads[k]
      if p.ndim != 2:
        out[k] = self.adam.step_leaf(k, p, g)
        continue
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      n = (1 - self.b1) * g + self.b1 * self.m[k] if self.nesterov else self.m[k]
      u = _shape_factor(p.shape, self.scaling) * self.direction(n)
      out[k] = p - self.lr * (u + self.wd * p)
    return out


class AuON(Muon):
  """AuON (gradtx's normalised reading): Gn = N / (||N||_F + 1e-7),
  r = sqrt(mean(cosh(gamma Gn)^2)), u0 = Gn / (r + 1e-8) (or N / (r + 1e-8) unnormalised)."""

  def __init__(self, lr, b1=0.95, gamma=1.5, wd=0.0, normalize=True, adam_lr=None):
    super().__init__(lr, b1=b1, wd=wd, shape_scaling="none", adam_lr=adam_lr)
    self.gamma, self.normalize = gamma, normalize

  def direction(self, n):
    gn = n / (np.linalg.norm(n) + 1e-7)
    r = np.sqrt(np.mean(np.cosh(self.gamma * gn) ** 2))
    return (gn if self.normalize else n) / (r + 1e-8)


def dual_map(g, norm):
  """argmax_{||d|| <= 1} <g, d> for one leaf (exact)."""
  if norm == "linf":
    return np.sign(g)
  if norm == "l2":
    n = np.linalg.norm(g)
    return g / n if n > 0 else 0 * g
  m = g.reshape(-1, g.shape[-1])
  d = polar(m).reshape(g.shape)
  return d * np.sqrt(g.shape[-1] / m.shape[0]) if norm == "rms_to_rms" else d


class SteepestDescent:
  """Bernstein & Newhouse: m = b m + (1-b) g (if b > 0); u = -lr ([<m, d(m)>] d(m) + wd p),
  spectral (exact polar) for matrices and l2 for the other leaves unless ``norms`` says."""

  def __init__(self, lr, norms, momentum=0.0, wd=0.0, scale_by_dual_norm=False):
    self.lr, self.norms, self.b, self.wd, self.dual = lr, norms, momentum, wd, scale_by_dual_norm
    self.m = None

  def step(self, params, grads):
    self.m = self.m or _zeros(params)
    out = {}
    for k, p in params.items():
      self.m[k] = self.b * self.m[k] + (1 - self.b) * grads[k] if self.b else grads[k]
      d = dual_map(self.m[k], self.norms[k])
      if self.dual:
        d = np.sum(self.m[k] * d) * d
      out[k] = p - self.lr * (d + self.wd * p)
    return out
