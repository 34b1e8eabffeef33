"""Float64 NumPy reference for DoG and LDoG (arXiv:2302.12022), from the paper's Algorithm 1."""

import numpy as np


class Dog:
  """x_{t+1} = x_t - c * rbar_t / sqrt(G_t + eps) * g_t; global norms, or per leaf if layerwise."""

  def __init__(self, c=1.0, reps_rel=1e-6, eps=1e-8, layerwise=False, wd=0.0):
    self.c, self.reps_rel, self.eps, self.layerwise, self.wd = c, reps_rel, eps, layerwise, wd
    self.t = 0
    self.etas = []

  def _groups(self, tree):
    keys = sorted(tree)
    return [[k] for k in keys] if self.layerwise else [keys]

  def update(self, grads, params):
    grads = {k: g + self.wd * params[k] for k, g in grads.items()}
    if self.t == 0:
      self.x0 = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
      self.rbar, self.G = {}, {}
      for grp in self._groups(params):
        norm_x0 = np.sqrt(sum(np.sum(self.x0[k] ** 2) for k in grp))
        self.rbar[tuple(grp)] = self.reps_rel * (1 + norm_x0)
        self.G[tuple(grp)] = 0.0
    self.t += 1
    out, etas = {}, {}
    for grp in self._groups(params):
      key = tuple(grp)
      dist = np.sqrt(sum(np.sum((params[k] - self.x0[k]) ** 2) for k in grp))
      self.rbar[key] = max(self.rbar[key], dist)
      self.G[key] += sum(np.sum(grads[k] ** 2) for k in grp)
      eta = self.rbar[key] / np.sqrt(self.G[key] + self.eps)
      etas[key] = eta
      for k in grp:
        out[k] = -self.c * eta * grads[k]
    self.etas.append(etas)
    return out
