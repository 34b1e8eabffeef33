"""Float64 NumPy references of the gradient estimators without backpropagation (forward gradient,
SPSA/MeZO two-point estimates, DeepZero's coordinate estimate), written from the papers
(shared/reference/algorithms.md, Part 8), independent of gradtx's code.

The randomness (tangents, probes, coordinate subsets) is supplied from outside, so a test can
feed the same draws to gradtx and to the reference. Params and probes are dicts of float64
arrays; ``loss(params) -> float`` and ``grad(params) -> dict`` are oracles on the current batch.
"""

import numpy as np


def forward_gradient(grad, params, tangents):
  """``mean_k (grad . v_k) v_k`` (Baydin et al. 2022); the directional derivative from the gradient."""
  g = grad(params)
  est = {k: np.zeros_like(v) for k, v in params.items()}
  for v in tangents:
    dv = sum(np.sum(g[k] * v[k]) for k in params)
    for k in params:
      est[k] += dv * v[k]
  return {k: e / len(tangents) for k, e in est.items()}


def two_point(loss, params, probes, eps, difference="central"):
  """``mean_k p_k z_k`` with ``p_k`` the central (or forward) difference of the loss along ``z_k``."""
  est = {k: np.zeros_like(v) for k, v in params.items()}
  f0 = loss(params) if difference == "forward" else None
  for z in probes:
    plus = loss({k: params[k] + eps * z[k] for k in params})
    if difference == "central":
      minus = loss({k: params[k] - eps * z[k] for k in params})
      p = (plus - minus) / (2 * eps)
    else:
      p = (plus - f0) / eps
    for k in params:
      est[k] += p * z[k]
  return {k: e / len(probes) for k, e in est.items()}


def coordinate(loss, params, selected, mu, rescale=False):
  """DeepZero's CGE: ``(L(theta + mu e_i) - L(theta)) / mu`` on ``selected[k]`` (flat indices)."""
  f0 = loss(params)
  est = {}
  for k, w in params.items():
    out = np.zeros(w.size)
    for i in selected[k]:
      moved = w.reshape(-1).copy()
      moved[i] += mu
      out[i] = (loss({**params, k: moved.reshape(w.shape)}) - f0) / mu
    if rescale:
      out *= w.size / len(selected[k])
    est[k] = out.reshape(w.shape)
  return est


class ZOSGD:
  """SGD on an estimate: ``theta - lr_k (ghat + wd theta)`` (MeZO-SGD, forward gradient descent)."""

  def __init__(self, lr, wd=0.0):
    self.lr, self.wd, self.k = lr, wd, 0

  def step(self, params, est):
    lr = self.lr(self.k) if callable(self.lr) else self.lr
    self.k += 1
    return {k: params[k] - lr * (est[k] + self.wd * params[k]) for k in params}


def spsa_gains(a, c, big_a=0.0, alpha=0.602, gamma=0.101):
  """Spall's gains ``a_k = a / (A + k + 1)^alpha``, ``c_k = c / (k + 1)^gamma`` (k from 0)."""
  return (lambda k: a / (big_a + k + 1) ** alpha), (lambda k: c / (k + 1) ** gamma)
