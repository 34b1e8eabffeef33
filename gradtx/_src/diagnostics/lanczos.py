"""Lanczos tridiagonalization with full reorthogonalization, on flat vectors, jit-able."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def flat_hvp(fn: Callable[[Any], jax.Array], params: Any) -> tuple[Callable[[jax.Array], jax.Array], jax.Array, Any]:
  """``(matvec, x, unravel)``: the Hessian of ``fn`` at ``params`` as a map on flat vectors.

  The gradient is linearized once, so every product costs one tangent pass.
  """
  x, unravel = ravel_pytree(params)
  _, lin = jax.linearize(jax.grad(fn), params)

  def matvec(v):
    return ravel_pytree(lin(unravel(v.astype(x.dtype))))[0]

  return matvec, x, unravel


def _orthogonalize(w: jax.Array, basis: jax.Array) -> jax.Array:
  """Remove the components of ``w`` along the rows of ``basis`` (twice: "twice is enough")."""
  for _ in range(2):
    w = w - basis.T @ (basis @ w)
  return w


def lanczos(
    matvec: Callable[[jax.Array], jax.Array],
    v0: jax.Array,
    num_steps: int,
    key: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""``num_steps`` Lanczos steps from ``v0`` (normalised here), fully reorthogonalised.

  .. math::
    w = H v_j - \beta_{j-1} v_{j-1},\ \alpha_j = \langle w, v_j\rangle,\ w \leftarrow w - \alpha_j v_j
    \ \text{(then against all } v_{1..j}),\ \beta_j = \lVert w\rVert,\ v_{j+1} = w/\beta_j.

  On breakdown (:math:`\beta_j` below :math:`\sqrt{\epsilon_{mach}}\lVert Hv_j\rVert`, an invariant
  subspace) the next vector is a fresh random one orthogonal to the basis and :math:`\beta_j = 0`,
  so :math:`T` stays block diagonal and every Ritz value is genuine.

  Args:
    matvec: symmetric linear map on flat vectors.
    v0: start vector.
    num_steps: Python int, at most ``v0.size``.
    key: PRNG key for restart vectors.

  Returns:
    ``(alphas, betas, V)``: diagonal (``num_steps``), off-diagonal (``num_steps - 1``) of
    :math:`T` and the basis ``V`` of shape ``(num_steps, n)``.
  """
  n = v0.shape[0]
  dtype = v0.dtype
  tiny = jnp.sqrt(jnp.finfo(dtype).eps)
  basis = jnp.zeros((num_steps + 1, n), dtype).at[0].set(v0 / jnp.linalg.norm(v0))

  def body(j, carry):
    basis, alphas, betas = carry
    v = basis[j]
    hv = matvec(v)
    alpha = jnp.vdot(hv, v)
    w = hv - alpha * v - jnp.where(j > 0, betas[j - 1], 0.0) * basis[jnp.maximum(j - 1, 0)]
    w = _orthogonalize(w, basis)
    beta = jnp.linalg.norm(w)
    broke = beta <= tiny * jnp.maximum(jnp.linalg.norm(hv), jnp.finfo(dtype).tiny)
    fresh = _orthogonalize(jax.random.normal(jax.random.fold_in(key, j), (n,), dtype), basis)
    fresh = fresh / jnp.maximum(jnp.linalg.norm(fresh), jnp.finfo(dtype).tiny)
    nxt = jnp.where(broke, fresh, w / jnp.where(broke, 1.0, beta))
    basis = basis.at[j + 1].set(nxt)
    return basis, alphas.at[j].set(alpha), betas.at[j].set(jnp.where(broke, 0.0, beta))

  zeros = jnp.zeros((num_steps,), dtype)
  basis, alphas, betas = jax.lax.fori_loop(0, num_steps, body, (basis, zeros, zeros))
  return alphas, betas[: num_steps - 1], basis[:num_steps]


def tridiagonal_eigh(alphas: jax.Array, betas: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal ``T``."""
  t = jnp.diag(alphas) + jnp.diag(betas, 1) + jnp.diag(betas, -1)
  return jnp.linalg.eigh(t)
