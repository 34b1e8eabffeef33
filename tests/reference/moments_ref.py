"""Float64 NumPy references of the core moment optimizers, written from the papers' pseudocode
(and the conventions in shared/reference/algorithms.md), independent of gradtx's code.

Each reference is a class with ``step(params, grads) -> new params`` on dicts of float64 arrays.
"""

import numpy as np


class Adam:
  """Kingma & Ba, Algorithm 1; NAdam numerator (Dozat) when nesterov; decoupled decay (AdamW)."""

  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, wd=0.0, nesterov=False, mask=None):
    self.lr, self.b1, self.b2, self.eps, self.eps_root = lr, b1, b2, eps, eps_root
    self.wd, self.nesterov, self.mask = wd, nesterov, mask
    self.t, self.m, self.v = 0, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    t, b1, b2 = self.t, self.b1, self.b2
    out = {}
    for k in params:
      g = grads[k]
      self.m[k] = b1 * self.m[k] + (1 - b1) * g
      self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
      if self.nesterov:
        mhat = b1 * self.m[k] / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
      else:
        mhat = self.m[k] / (1 - b1**t)
      vhat = self.v[k] / (1 - b2**t)
      d = mhat / (np.sqrt(vhat + self.eps_root) + self.eps)
      if self.wd and (self.mask is None or self.mask[k]):
        d = d + self.wd * params[k]
      out[k] = params[k] - self.lr * d
    return out


class AMSGrad:
  """torch.optim.Adam(amsgrad=True): max over the raw second moment, then bias correction."""

  def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8):
    self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
    self.t, self.m, self.v, self.vmax = 0, None, None, None

  def step(self, params, grads):
    if self.m is None:
      self.m = {k: np.zeros_like(v) for k, v in params.items()}
      self.v = {k: np.zeros_like(v) for k, v in params.items()}
      self.vmax = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    out = {}
    for k in params:
      g = grads[k]
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
      self.vmax[k] = np.maximum(self.vmax[k], self.v[k])
      denom = np.sqrt(self.vmax[k]) / np.sqrt(1 - self.b2**self.t) + self.eps
      out[k] = params[k] - self.lr * (self.m[k] / (1 - self.b1**self.t)) / denom
    return out


class RMSProp:
  """torch.optim.RMSprop: eps outside the root, optional centering and momentum buffer of g/den."""

  def __init__(self, lr, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, nesterov=False):
    self.lr, self.alpha, self.eps = lr, alpha, eps
    self.momentum, self.centered, self.nesterov = momentum, centered, nesterov
    self.t, self.sq, self.gavg, self.buf = 0, None, None, None

  def step(self, params, grads):
    if self.sq is None:
      self.sq = {k: np.zeros_like(v) for k, v in params.items()}
      self.gavg = {k: np.zeros_like(v) for k, v in params.items()}
      self.buf = {k: np.zeros_like(v) for k, v in params.items()}
    self.t += 1
    out = {}
    for k in params:
      g = grads[k]
      self.sq[k] = self.alpha * self.sq[k] + (1 - self.alpha) * g * g
      if self.centered:
        self.gavg[k] = self.alpha * self.gavg[k] + (1 - self.alpha) * g
        den = np.sqrt(self.sq[k] - self.gavg[k] ** 2) + self.eps
      else:
        den = np.sqrt(self.sq[k]) + self.eps
      d = g / den
      if self.momentum > 0:
        self.buf[k] = self.momentum * self.buf[k] + d
        d = d + self.momentum * self.buf[k] if self.nesterov else self.buf[k]
      out[k] = params[k] - self.lr * d
    return out


class AdaGrad:
  """Duchi et al.; torch.optim.Adagrad conventions (eps outside the root)."""

  def __init__(self, lr, initial_accumulator_value=0.0, eps=1e-10):
    self.lr, self.init, self.eps = lr, initial_accumulator_value, eps
    self.s = None

  def step(self, params, grads):
    if self.s is None:
      self.s = {k: np.full_like(v, self.init) for k, v in params.items()}
    out = {}
    for k in params:
      self.s[k] = self.s[k] + grads[k] ** 2
      out[k] = params[k] - self.lr * grads[k] / (np.sqrt(self.s[k]) + self.eps)
    return out


class AdaGradNorm:
  """Ward et al. / Attia & Koren: one scalar b_t^2 = b_0^2 + sum of squared global norms."""

  def __init__(self, lr, b0_sq=0.0, eps=0.0, delayed=False):
    self.lr, self.acc, self.eps, self.delayed = lr, b0_sq, eps, delayed

  def step(self, params, grads):
    sq = sum(float(np.sum(g**2)) for g in grads.values())
    previous = self.acc
    self.acc = self.acc + sq
    b = np.sqrt(previous if self.delayed else self.acc) + self.eps
    scale = 0.0 if b == 0 else 1.0 / b
    return {k: params[k] - self.lr * scale * grads[k] for k in params}


class SGD:
  """torch.optim.SGD: coupled L2 decay, buffer starts at the first gradient, dampening after."""

  def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False, wd=0.0):
    self.lr, self.mu, self.damp, self.nesterov, self.wd = lr, momentum, dampening, nesterov, wd
    self.buf = None

  def step(self, params, grads):
    first = self.buf is None
    if first:
      self.buf = {}
    out = {}
    for k in params:
      g = grads[k] + self.wd * params[k]
      if self.mu > 0:
        self.buf[k] = g.copy() if first else self.mu * self.buf[k] + (1 - self.damp) * g
        g = g + self.mu * self.buf[k] if self.nesterov else self.buf[k]
      out[k] = params[k] - self.lr * g
    return out
