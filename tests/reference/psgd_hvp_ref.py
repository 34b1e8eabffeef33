"""Float64 NumPy reference of PSGD-Kron fitted on Hessian-vector pairs (v, Hv), given from outside.

Written from the algorithm reference (sec. 2.10) and Li, "Preconditioned Stochastic Gradient
Descent", arXiv:1512.04202: the criterion E[h^T P h + v^T P^{-1} v] with h = H v, minimised over
P = Q^T Q, Q = Q_1 (x) Q_2 (upper-triangular or diagonal factors), one Lie-group gradient step per
refit. Does not import gradtx.
"""

import numpy as np
import scipy.linalg

TINY = np.finfo(np.float64).tiny


def as_matrix(x):
  """Leaves with ndim >= 2 as (prod(shape[:-1]), shape[-1]); others as flat vectors (scalars: (1,))."""
  return x.reshape(-1, x.shape[-1]) if x.ndim >= 2 else x.reshape(-1) if x.size else x.reshape(1)


def spectral_norm_lower_bound(a):
  """One power step from the largest row or column of |a|, scaled by max|a| (the kron ports' bound)."""
  m = np.max(np.abs(a))
  if m == 0:
    return 0.0
  a = a / m
  col, row = (a * a).sum(0), (a * a).sum(1)
  i, j = np.argmax(col), np.argmax(row)
  if col[i] > row[j]:
    x = a[:, i] @ a
    return m * np.linalg.norm((x / np.linalg.norm(x)) @ a.T)
  x = a @ a[j]
  return m * np.linalg.norm(a.T @ (x / np.linalg.norm(x)))


def refit_pair(factors, hv, v, lr_p):
  """One Lie-group step of the factors on the pair (v, h = Hv), both in the leaf's matrix shape.

  A = Q_1 H Q_2^T, B = Q_1^{-T} V Q_2^{-1};
  triangular Q_i <- Q_i - lr_p / ||A_i A_i^T + B_i B_i^T||_lb * triu(A_i A_i^T - B_i B_i^T) Q_i;
  diagonal  q_i <- q_i - lr_p / max|a_i + b_i| * (a_i - b_i) q_i (a_i, b_i the row sums of squares).
  """
  if len(factors) == 1:
    (q,) = factors
    a, b = (q * hv) ** 2, (v / q) ** 2
    return [q - lr_p / (np.max(np.abs(a + b)) + TINY) * (a - b) * q]
  q1, q2 = factors
  full1 = np.diag(q1) if q1.ndim == 1 else q1
  full2 = np.diag(q2) if q2.ndim == 1 else q2
  a = full1 @ hv @ full2.T
  b = scipy.linalg.solve_triangular(full1, v, trans="T", lower=False)  # Q_1^{-T} V
  b = scipy.linalg.solve_triangular(full2, b.T, trans="T", lower=False).T  # (.) Q_2^{-1}
  new = []
  for axis, q in enumerate((q1, q2)):
    aa, bb = (a, b) if axis == 0 else (a.T, b.T)
    t1, t2 = aa @ aa.T, bb @ bb.T
    if q.ndim == 1:
      d1, d2 = np.diag(t1), np.diag(t2)
      new.append(q - lr_p / (np.max(np.abs(d1 + d2)) + TINY) * (d1 - d2) * q)
    else:
      new.append(q - lr_p / (spectral_norm_lower_bound(t1 + t2) + TINY) * np.triu(t1 - t2) @ q)
  return new


def preconditioner(factors):
  """The dense P = Q^T Q acting on the row-major flattening of the leaf's matrix."""
  if len(factors) == 1:
    return np.diag(factors[0] ** 2)
  q1, q2 = (np.diag(q) if q.ndim == 1 else q for q in factors)
  return np.kron(q1.T @ q1, q2.T @ q2)


class PsgdHvpRef:
  """PSGD-Kron with the HVP fit: momentum, refit on given pairs, P m_hat, RMS cap, decoupled decay.

  ``step(params, grads, do_refit, pairs)``: ``pairs[k] = (v, hv)`` in the leaf's shape.
  """

  def __init__(self, params, *, lr, b1=0.9, wd=0.0, lr_p=0.1, max_tri=8192, init_scale=1.0, clip=1.1):
    self.lr, self.b1, self.wd, self.lr_p, self.clip = lr, b1, wd, lr_p, clip
    self.t = 0
    self.m = {k: np.zeros_like(p) for k, p in params.items()}
    self.Q = {}
    for k, p in params.items():
      if p.ndim >= 2:
        s = init_scale ** 0.5
        self.Q[k] = [np.eye(d) * s if 1 < d <= max_tri else np.full(d, s) for d in as_matrix(p).shape]
      else:
        self.Q[k] = [np.full(max(1, p.size), float(init_scale))]

  def step(self, params, grads, do_refit, pairs):
    self.t += 1
    out = {}
    for k, p in params.items():
      self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * grads[k]
      h = as_matrix(self.m[k] / (1 - self.b1 ** self.t))
      if do_refit:
        v, hv = pairs[k]
        self.Q[k] = refit_pair(self.Q[k], as_matrix(hv), as_matrix(v), self.lr_p)
      u = (preconditioner(self.Q[k]) @ h.reshape(-1)).reshape(p.shape)
      if self.clip is not None:
        u = u * min(1.0, self.clip / np.sqrt(np.mean(u * u)))
      out[k] = p - self.lr * (u + (self.wd * p if p.ndim >= 2 else 0.0))
    return out
