"""Float64 NumPy references for the curvature family, written from the papers' pseudocode.

Everything works on the flat parameter vector ``x`` (all leaves concatenated). The caller supplies
the gradient ``g``, the dense Hessian ``H`` at ``x`` and the probes ``zs`` (a list of flat
vectors), so the references never generate random numbers and never import gradtx.
"""

import numpy as np


def hutchinson(H, zs):
  """(1/K) sum_k z_k * (H z_k)."""
  return np.mean([z * (H @ z) for z in zs], axis=0)


def spatial_average_official(d, shapes):
  """AdaHessian's official averaging in JAX layouts, leaf by leaf on the flat vector ``d``."""
  out, start = [], 0
  for shape in shapes:
    n = int(np.prod(shape))
    leaf = d[start:start + n].reshape(shape)
    start += n
    if leaf.ndim == 2 or leaf.ndim == 3:
      leaf = np.broadcast_to(leaf.mean(axis=0, keepdims=True), leaf.shape)
    elif leaf.ndim >= 4:
      leaf = np.broadcast_to(leaf.mean(axis=tuple(range(leaf.ndim - 2)), keepdims=True), leaf.shape)
    out.append(np.ravel(leaf))
  return np.concatenate(out)


class AdaHessian:
  """Yao et al. (arXiv:2006.00719), official code: decoupled decay, power on the corrected root."""

  def __init__(self, n, lr, b1=0.9, b2=0.999, eps=1e-4, k=1.0, wd=0.0, shapes=None):
    self.lr, self.b1, self.b2, self.eps, self.k, self.wd, self.shapes = lr, b1, b2, eps, k, wd, shapes
    self.m = np.zeros(n)
    self.v = np.zeros(n)
    self.t = 0

  def step(self, x, g, H, zs):
    self.t += 1
    d = np.abs(hutchinson(H, zs))
    if self.shapes is not None:
      d = spatial_average_official(d, self.shapes)
    self.m = self.b1 * self.m + (1 - self.b1) * g
    self.v = self.b2 * self.v + (1 - self.b2) * d * d
    den = (np.sqrt(self.v) / np.sqrt(1 - self.b2**self.t)) ** self.k + self.eps
    return x - self.lr * (self.m / (1 - self.b1**self.t) / den + self.wd * x)


class Sophia:
  """Liu et al. (arXiv:2305.14342), later form: clip(m / max(rho h, eps), 1), refresh when t-1 = 0 mod k."""

  def __init__(self, n, lr, b1=0.965, b2=0.99, rho=0.01, eps=1e-12, wd=0.0, k=10):
    self.lr, self.b1, self.b2, self.rho, self.eps, self.wd, self.k = lr, b1, b2, rho, eps, wd, k
    self.m = np.zeros(n)
    self.h = np.zeros(n)
    self.t = 0

  def step(self, x, g, hhat):
    """``hhat``: the estimate at ``x`` (used only on refresh steps)."""
    if self.t % self.k == 0:
      self.h = self.b2 * self.h + (1 - self.b2) * hhat
    self.t += 1
    self.m = self.b1 * self.m + (1 - self.b1) * g
    ratio = np.clip(self.m / np.maximum(self.rho * self.h, self.eps), -1.0, 1.0)
    return x - self.lr * (ratio + self.wd * x)


def gnb_expected(J, logits):
  """E over sampled labels of one example's B ghat^2 (B = 1): diag(J^T (diag p - p p^T) J)."""
  p = np.exp(logits - logits.max())
  p /= p.sum()
  return np.einsum("ci,cd,di->i", J, np.diag(p) - np.outer(p, p), J)


class Oasis:
  """Jahani et al. (arXiv:2109.05198), Algorithm 1 with the Malitsky-Mishchenko step."""

  def __init__(self, n, lr, b2=0.99, alpha=1e-5, adaptive=True):
    self.eta0, self.b2, self.alpha, self.adaptive = lr, b2, alpha, adaptive
    self.t = 0
    self.D = np.zeros(n)
    self.w_prev = None
    self.g_prev = None
    self.eta_prev = None
    self.theta_prev = np.inf

  def step(self, x, g, H, zs):
    if self.t == 0:
      self.D = hutchinson(H, zs)
      Dhat = np.maximum(np.abs(self.D), self.alpha)
      eta = self.eta0
      theta = np.inf
    else:
      self.D = self.b2 * self.D + (1 - self.b2) * hutchinson(H, zs[:1])
      Dhat = np.maximum(np.abs(self.D), self.alpha)
      if self.adaptive:
        dw, dg = x - self.w_prev, g - self.g_prev
        wn = np.sqrt(np.sum(Dhat * dw * dw))
        gn = np.sqrt(np.sum(dg * dg / Dhat))
        eta = min(np.sqrt(1 + self.theta_prev) * self.eta_prev, wn / (2 * gn))
      else:
        eta = self.eta0
      theta = eta / self.eta_prev
    self.t += 1
    self.w_prev, self.g_prev = x.copy(), g.copy()
    self.eta_prev, self.theta_prev = eta, theta
    return x - eta * g / Dhat


def lanczos_tridiagonal_eigs(H):
  """Exact spectrum, for the diagnostics tests."""
  return np.linalg.eigvalsh(H)
