"""Float64 NumPy reference for Optimistic AMSGrad (arXiv:1903.01435), in the lazy/optimistic form."""

import numpy as np


class OptimisticAmsgrad:
  """Keeps the lazy AMSGrad point w_half and returns the optimistic point w_{t+1} each step.

  theta = b1 theta + (1-b1) g;  v = b2 v + (1-b2) g^2;  vhat = max(vhat, v) (vhat_0 = eps)
  w_half <- w_half - lr theta / sqrt(vhat)
  h = b1 theta + (1-b1) guess          (guess = g for "last", 0 for "zero")
  w_next = w_half - lr h / sqrt(vhat)
  """

  def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8, predictor="last"):
    self.lr, self.b1, self.b2, self.predictor = lr, b1, b2, predictor
    self.theta = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.v = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.vhat = {k: np.full(np.shape(v), eps, dtype=np.float64) for k, v in params.items()}
    self.w_half = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

  def step(self, grads):
    """Return the next params (the optimistic point) given the gradient at the current ones."""
    out = {}
    for k, g in grads.items():
      self.theta[k] = self.b1 * self.theta[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g**2
      self.vhat[k] = np.maximum(self.vhat[k], self.v[k])
      self.w_half[k] = self.w_half[k] - self.lr * self.theta[k] / np.sqrt(self.vhat[k])
      guess = g if self.predictor == "last" else np.zeros_like(g)
      h = self.b1 * self.theta[k] + (1 - self.b1) * guess
      out[k] = self.w_half[k] - self.lr * h / np.sqrt(self.vhat[k])
    return out


class UncorrectedAmsgrad:
  """Plain AMSGrad without bias correction, vhat_0 = eps: the lazy sequence of the above."""

  def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
    self.lr, self.b1, self.b2 = lr, b1, b2
    self.m = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.v = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    self.vhat = {k: np.full(np.shape(v), eps, dtype=np.float64) for k, v in params.items()}

  def update(self, grads):
    out = {}
    for k, g in grads.items():
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
      self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g**2
      self.vhat[k] = np.maximum(self.vhat[k], self.v[k])
      out[k] = -self.lr * self.m[k] / np.sqrt(self.vhat[k])
    return out
