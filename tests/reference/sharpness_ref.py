"""Float64 NumPy references of SAM, ASAM and GAM, written from the papers and the official code's
step (shared/reference/algorithms.md, Part 7), independent of gradtx's code.

Each reference wraps a base reference (``step(params, grads) -> params``, e.g.
``moments_ref.SGD``) and has ``step(params, grads, grad_fn) -> params`` on dicts of float64
arrays, where ``grad_fn(params) -> grads`` is the gradient oracle on the current batch.
"""

import numpy as np


def _norm(tree):
  return np.sqrt(sum(np.sum(v * v) for v in tree.values()))


def _dot(a, b):
  return sum(np.sum(a[k] * b[k]) for k in a)


def ascent(params, grads, rho, adaptive=False, eta=0.01, scaled=None, normalize=True, eps=1e-12):
  """``params + rho T^2 g / (||T g|| + eps)``; T = |w| + eta on ``scaled`` keys if adaptive, else 1."""
  t = {}
  for k, w in params.items():
    on = adaptive and (scaled is None or scaled[k])
    t[k] = np.abs(w) + eta if on else np.ones_like(w)
  tg = {k: t[k] * grads[k] for k in params}
  factor = rho / (_norm(tg) + eps) if normalize else rho
  return {k: params[k] + factor * t[k] * tg[k] for k in params}


class SAM:
  """Foret et al. (2020) two-step update; ASAM (Kwon et al. 2021) with ``adaptive``."""

  def __init__(self, base, rho, adaptive=False, eta=0.01, scaled=None, normalize=True, eps=1e-12):
    self.base, self.rho = base, rho
    self.kw = dict(adaptive=adaptive, eta=eta, scaled=scaled, normalize=normalize, eps=eps)

  def step(self, params, grads, grad_fn):
    g_sam = grad_fn(ascent(params, grads, self.rho, **self.kw))
    return self.base.step(params, g_sam)


class MSAM:
  """m-sharpness (Foret et al. 2020, section 4.1): one ascent point per disjoint sub-batch of m
  consecutive examples, the gradients there averaged, then the base step.

  ``step(params, grad_of, batch)`` with ``grad_of(params, sub_batch) -> grads`` and ``batch`` a
  tuple of arrays with a leading example axis.
  """

  def __init__(self, base, rho, m, adaptive=False, eta=0.01, scaled=None, normalize=True, eps=1e-12):
    self.base, self.rho, self.m = base, rho, m
    self.kw = dict(adaptive=adaptive, eta=eta, scaled=scaled, normalize=normalize, eps=eps)

  def step(self, params, grad_of, batch):
    n = len(batch[0])
    assert n % self.m == 0
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for start in range(0, n, self.m):
      sub = tuple(x[start:start + self.m] for x in batch)
      g_j = grad_of(params, sub)
      g_at = grad_of(ascent(params, g_j, self.rho, **self.kw), sub)
      for k in params:
        total[k] += g_at[k]
    return self.base.step(params, {k: v / (n // self.m) for k, v in total.items()})


class GAM:
  """Zhang et al. (2023), the official code's four-gradient step (algorithms.md 7.3)."""

  def __init__(self, base, rho=0.02, rho2=0.2, b1=1.0, b2=-1.0, b3=1.0, gamma=0.03, eps=1e-12,
               adaptive=False, eta=0.01, hvp_fn=None):
    self.base = base
    self.rho, self.rho2, self.b1, self.b2, self.b3, self.gamma = rho, rho2, b1, b2, b3, gamma
    self.kw = dict(adaptive=adaptive, eta=eta, eps=eps)
    self.eps = eps
    self.hvp_fn = hvp_fn  # (params, v) -> H v; None: finite difference g1 - g0

  def combined(self, params, g0, grad_fn):
    g1 = grad_fn(ascent(params, g0, self.rho, **self.kw))
    if self.hvp_fn is None:
      d = {k: g1[k] - g0[k] for k in params}
    else:
      d = self.hvp_fn(params, g0)
    theta2 = ascent(params, d, self.rho2, **self.kw)
    g2 = grad_fn(theta2)
    g3 = grad_fn(ascent(theta2, g2, self.rho, **self.kw))
    comb = {k: self.b1 * g1[k] + self.b3 * g3[k] for k in params}
    ref = {k: g0[k] + abs(self.b2) * g2[k] for k in params}
    proj = _dot(ref, comb) / (_norm(comb) ** 2 + self.eps)
    return {k: comb[k] - self.gamma * (ref[k] - proj * comb[k]) for k in params}

  def step(self, params, grads, grad_fn):
    return self.base.step(params, self.combined(params, grads, grad_fn))
