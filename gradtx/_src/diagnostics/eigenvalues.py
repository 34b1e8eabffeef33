"""Top Hessian eigenvalues by Lanczos or by power iteration with deflation."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core import validate
from gradtx._src.diagnostics.lanczos import flat_hvp, lanczos, tridiagonal_eigh


def _power(matvec, n, dtype, key, found, max_iterations, tol):
  v = jax.random.normal(key, (n,), dtype)

  def deflate(v):
    for _ in range(2):
      v = v - found.T @ (found @ v) if found.shape[0] else v
    return v / jnp.linalg.norm(v)

  def cond(c):
    i, _, lam, lam_prev = c
    return (i < max_iterations) & ((i < 2) | (jnp.abs(lam - lam_prev) >= tol * (jnp.abs(lam_prev) + 1e-6)))

  def body(c):
    i, v, lam, _ = c
    w = matvec(v)
    new_lam = jnp.vdot(v, w)
    return i + 1, deflate(w), new_lam, lam

  zero = jnp.zeros([], dtype)
  _, v, lam, _ = jax.lax.while_loop(cond, body, (0, deflate(v), zero, zero))
  return lam, v


def top_hessian_eigenvalues(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    k: int = 1,
    *,
    method: str = "lanczos",
    num_iterations: int | None = None,
    tol: float = 1e-3,
) -> tuple[jax.Array, Any]:
  r"""The top ``k`` eigenvalues of the Hessian of ``fn`` at ``params``, and their eigenvectors.

  ``method="lanczos"``: ``num_iterations`` Lanczos steps (default ``min(n, max(4k, 100))``) with
  full reorthogonalization; returns the ``k`` algebraically largest Ritz values, descending.
  ``method="power"``: PyHessian's power iteration, one eigenvalue at a time, each orthogonalized
  against those found (deflation), stopping when
  :math:`|\lambda - \lambda_{prev}| < tol\,(|\lambda_{prev}| + 10^{-6})` or after
  ``num_iterations`` (default 100) products; returns the eigenvalues of largest *magnitude*
  (possibly negative), in the order found.

  Args:
    fn: scalar function of ``params`` (hold batch and model state fixed).
    params: the point, any pytree of floating arrays.
    key: PRNG key for the start vectors.
    k: how many eigenvalues (Python int >= 1, at most the number of parameters).
    method: "lanczos" or "power".
    num_iterations: Lanczos steps, or the maximum power iterations per eigenvalue.
    tol: relative stopping tolerance of power iteration.

  Returns:
    ``(eigenvalues, eigenvectors)``: shape ``(k,)``, and a tree like ``params`` whose leaves have
    a leading axis ``k`` (unit norm over all leaves).

  Example:
    >>> lams, vecs = gradtx.diagnostics.top_hessian_eigenvalues(loss, params, jax.random.key(0), k=3)

  References:
    Yao, Gholami, Keutzer & Mahoney, "PyHessian: Neural Networks Through the Lens of the Hessian",
    arXiv:1912.07145.
    Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via Hessian
    Eigenvalue Density", arXiv:1901.10159.

  Notes:
    Lanczos memory is ``num_iterations`` copies of the parameters. The eigenvectors are Ritz
    vectors; Lanczos Ritz values of the extremes converge first.
  """
  validate.positive_int("k", k)
  validate.one_of("method", method, ("lanczos", "power"))
  if num_iterations is not None:
    validate.positive_int("num_iterations", num_iterations)
  validate.positive("tol", tol)
  matvec, x, unravel = flat_hvp(fn, params)
  n = x.shape[0]
  if k > n:
    raise ValueError(f"top_hessian_eigenvalues: k must be at most the number of parameters {n}, got {k}.")
  if method == "lanczos":
    steps = min(n, num_iterations or max(4 * k, 100))
    if steps < k:
      raise ValueError(f"top_hessian_eigenvalues: num_iterations must be >= k={k}, got {steps}.")
    v0 = jax.random.normal(key, (n,), x.dtype)
    alphas, betas, basis = lanczos(matvec, v0, steps, jax.random.fold_in(key, 1))
    theta, y = tridiagonal_eigh(alphas, betas)
    idx = jnp.arange(steps - 1, steps - 1 - k, -1)
    values, vectors = theta[idx], (basis.T @ y[:, idx]).T
  else:
    iters = num_iterations or 100
    found = jnp.zeros((0, n), x.dtype)
    vals = []
    for i in range(k):
      lam, v = _power(matvec, n, x.dtype, jax.random.fold_in(key, i), found, iters, tol)
      vals.append(lam)
      found = jnp.concatenate([found, v[None]], axis=0)
    values, vectors = jnp.stack(vals), found
  return values, jax.vmap(unravel)(vectors)
