"""Inverse p-th roots of symmetric positive semi-definite matrices, by eigh or coupled Newton."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core import linalg, validate


def _symmetrize(a: jax.Array) -> jax.Array:
  return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def _eye_like(a: jax.Array) -> jax.Array:
  return jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=a.dtype), a.shape)


# The relative floor, in units of the dtype's machine epsilon: 1.2e-5 * lambda_max in float32,
# 2.2e-14 * lambda_max in float64.
FLOOR_ULPS = 100.0


def safe_eps(max_eig: jax.Array, eps: Any, dtype: Any) -> jax.Array:
  """The damping added before a root: ``eps + 100 * finfo(dtype).eps * lambda_max``.

  The second term sits well above the eigenvalues that are pure rounding noise
  (``~ n * finfo.eps * lambda_max``), so their arbitrary eigenvectors all get nearly the same
  (bounded) root instead of a large, noise-dependent one; in float64 it is negligible.
  """
  return jnp.asarray(eps, dtype) + FLOOR_ULPS * jnp.finfo(dtype).eps * jnp.maximum(max_eig, 0.0)


def inverse_root_eigh(a: jax.Array, p: float, eps: Any = 1e-12) -> jax.Array:
  r"""``(A + eps' I)^{-1/p}`` of a symmetric PSD matrix (or a batch of them) by eigendecomposition.

  .. math::
    A = V \Lambda V^\top,\quad \lambda_i \leftarrow \max(\lambda_i, 0) + \epsilon',\quad
    A^{-1/p} = V \Lambda^{-1/p} V^\top,\quad
    \epsilon' = \epsilon + 100\, \epsilon_{\text{mach}} \lambda_{\max}.

  Args:
    a: symmetric matrix or batch of matrices ``(..., n, n)``; float32 or float64.
    p: the root, > 0 (4 for Shampoo's matrix factors).
    eps: absolute damping, >= 0.

  Returns:
    The inverse root, same shape and dtype as ``a``.

  Example:
    >>> r = inverse_root_eigh(a, 4, eps=1e-12)

  References:
    Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
    arXiv:1802.09568.
  """
  validate.positive("p", p)
  validate.non_negative("eps", eps)
  a = _symmetrize(a)
  w, v = linalg.eigh(a)
  w = jnp.maximum(w, 0.0)
  w = w + safe_eps(jnp.max(w, axis=-1, keepdims=True), eps, a.dtype)
  scale = w ** (-1.0 / p)
  return _symmetrize((v * scale[..., None, :]) @ jnp.swapaxes(v, -1, -2))


def inverse_root_newton(
    a: jax.Array,
    p: int,
    eps: Any = 1e-12,
    *,
    max_iters: int = 100,
    tol: float | None = None,
    segments: jax.Array | None = None,
    num_segments: int = 1,
    reduce_max: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
  r"""``(A + eps' I)^{-1/p}`` of a symmetric PSD matrix by the coupled Newton iteration.

  .. math::
    z = \frac{1+p}{2 \lVert A \rVert_F},\ M_0 = z A,\ H_0 = z^{1/p} I,\quad
    T_k = \frac{p+1}{p} I - \frac{1}{p} M_k,\ M_{k+1} = T_k^p M_k,\ H_{k+1} = H_k T_k.

  :math:`M_k \to I` and :math:`H_k \to A^{-1/p}`. The loop stops when
  :math:`\max |M_k - I| <` ``tol`` or when the error stops decreasing (the last improving
  iterate is kept), so it is safe under ``jit``.

  Args:
    a: symmetric PSD matrix or batch ``(..., n, n)``.
    p: the root, a positive integer.
    eps: absolute damping, >= 0 (the same :math:`\epsilon'` as :func:`inverse_root_eigh`, with
      the Frobenius norm standing in for :math:`\lambda_{\max}`).
    max_iters: iteration cap.
    tol: stopping tolerance on ``max|M - I|``; None uses ``100 * finfo(dtype).eps``.
    segments: None stops the whole batch together (one error, the largest); else int32 ids
      ``(batch,)`` in ``[0, num_segments)``: each segment stops on its own largest error (its
      matrices are frozen once it stops), so a segment's result equals running it alone.
    num_segments: the number of segment ids (static).
    reduce_max: applied to the per-segment errors, e.g. ``lambda e: lax.pmax(e, axis)`` when the
      batch is split over devices inside ``shard_map``.

  Returns:
    The inverse root, same shape and dtype as ``a``.

  Example:
    >>> r = inverse_root_newton(a, 4)

  References:
    Anil, Gupta, Koren, Regan & Singer, "Scalable Second Order Optimization for Deep Learning",
    arXiv:2002.09018 (Algorithm "coupled Newton"); Guo & Higham, "A Schur-Newton method for the
    matrix p-th root and its inverse", SIAM J. Matrix Anal. Appl. 28 (2006).

  Notes:
    The scale uses the Frobenius norm (an upper bound of :math:`\lambda_{\max}`) instead of a
    power iteration; the iteration converges for any scale >= :math:`\lambda_{\max}`.
  """
  validate.positive_int("p", p)
  validate.positive_int("max_iters", max_iters)
  dtype = a.dtype
  tol = 100 * float(jnp.finfo(dtype).eps) if tol is None else tol
  a = _symmetrize(a)
  eye = _eye_like(a)
  fro = jnp.sqrt(jnp.sum(jnp.square(a), axis=(-1, -2), keepdims=True))
  a = a + safe_eps(fro, eps, dtype) * eye
  fro = jnp.sqrt(jnp.sum(jnp.square(a), axis=(-1, -2), keepdims=True))
  z = (1.0 + p) / (2.0 * fro)
  m0 = a * z
  h0 = eye * z ** (1.0 / p)

  if segments is None:
    err = lambda m: jnp.max(jnp.abs(m - eye))
    spread = lambda x: x
  else:
    reduce = reduce_max or (lambda x: x)
    err = lambda m: reduce(jax.ops.segment_max(jnp.max(jnp.abs(m - eye), axis=(-1, -2)), segments, num_segments))
    spread = lambda x: x[segments][:, None, None]

  def cond(carry):
    i, _, _, e, improving = carry
    return (i < max_iters) & jnp.any((e > tol) & improving)

  def body(carry):
    # With segments=None, ``active`` is True whenever the body runs: the plain coupled iteration.
    i, m, h, e, improving = carry
    active = (e > tol) & improving
    t = ((p + 1.0) / p) * eye - m / p
    tp = t
    for _ in range(p - 1):
      tp = tp @ t
    m_new = tp @ m
    h_new = h @ t
    e_new = err(m_new)
    better = active & (e_new < e)
    m = jnp.where(spread(better), m_new, m)
    h = jnp.where(spread(better), h_new, h)
    return i + 1, m, h, jnp.where(active, jnp.minimum(e, e_new), e), jnp.where(active, better, improving)

  e0 = err(m0)
  init = (jnp.zeros([], jnp.int32), m0, h0, e0, jnp.ones(jnp.shape(e0), bool))
  _, _, h, _, _ = jax.lax.while_loop(cond, body, init)
  return _symmetrize(h)


def inverse_root(a: jax.Array, p: int, eps: Any, method: str) -> jax.Array:
  """Dispatch to :func:`inverse_root_eigh` or :func:`inverse_root_newton` by name."""
  if method == "eigh":
    return inverse_root_eigh(a, p, eps)
  if method == "newton":
    return inverse_root_newton(a, p, eps)
  raise ValueError(f"inverse_root: method must be 'eigh' or 'newton', got {method!r}.")
