"""Subspace-Momentum: EMA momentum in a rank-r gradient subspace, plain SGD on its complement."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype


class SubspaceMomentumState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum: (a, r) or (r, b) for a projected (a, b) leaf, else like the leaf
  proj: optax.Updates  # orthonormal basis: (r, b) if a >= b, (a, r) if a < b; a scalar placeholder if unprojected


def projected(shape: tuple[int, ...], rank: int | None) -> bool:
  """Whether a leaf of this shape gets subspace momentum: 2-D leaves, when a rank is given."""
  return rank is not None and len(shape) == 2 and min(shape) >= 1


def init_leaf(p: Any, rank: int | None, dtype: Any) -> tuple[jax.Array, jax.Array]:
  """(momentum, basis) for one leaf."""
  shape = jnp.shape(p)
  pdt = jnp.asarray(p).dtype
  if rank is None or not projected(shape, rank):
    return jnp.zeros(shape, dtype or pdt), jnp.zeros((), pdt)
  a, b = shape
  r = min(rank, a, b)
  if a >= b:  # right projection, as GaLore: low = g @ P.T, P is (r, b)
    return jnp.zeros((a, r), dtype or pdt), jnp.zeros((r, b), pdt)
  return jnp.zeros((r, b), dtype or pdt), jnp.zeros((a, r), pdt)


def _basis(g: jax.Array, r: int) -> jax.Array:
  u, _, vh = jnp.linalg.svd(g, full_matrices=False)
  a, b = g.shape
  return vh[:r, :] if a >= b else u[:, :r]


def leaf_numerator(
    g: jax.Array, m: jax.Array, basis: jax.Array, beta1: Any, refresh: jax.Array, rank: int | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One leaf's momentum numerator, new momentum and new basis (math in float32 or wider).

  For a projected leaf: on a refresh step the basis becomes the top-r singular vectors of ``g``
  and the momentum restarts from zero; then ``M = b1 M + (1-b1) low(g)`` and the numerator is
  ``back(M) + g - back(low(g))``. Otherwise plain EMA momentum ``m = b1 m + (1-b1) g``.
  """
  dt = compute_dtype(g.dtype)
  gg = g.astype(dt)
  if rank is None or not projected(g.shape, rank):
    m_new = beta1 * m.astype(dt) + (1.0 - beta1) * gg
    return m_new, m_new.astype(m.dtype), basis
  a, b = g.shape
  r = min(rank, a, b)
  p = jax.lax.cond(refresh, lambda: _basis(gg, r).astype(dt), lambda: basis.astype(dt))
  m_old = jnp.where(refresh, 0.0, m.astype(dt))
  # back(M) + g - back(low) is computed as back(M - low) + g: two rank-r products per step, not three.
  if a >= b:
    low = gg @ p.T
    m_new = beta1 * m_old + (1.0 - beta1) * low
    num = (m_new - low) @ p + gg
  else:
    low = p.T @ gg
    m_new = beta1 * m_old + (1.0 - beta1) * low
    num = p @ (m_new - low) + gg
  return num, m_new.astype(m.dtype), p.astype(basis.dtype)


def check_structure(where: str, updates: Any, state_tree: Any, params: Any) -> None:
  """Raise a ValueError if ``updates`` and the state (or ``params``) do not match."""
  if params is not None:
    check_matching(where, updates, params, ("updates", "params"))
  # jaxlib ships no type stub for PyTreeDef, so mypy cannot see its __eq__.
  if jax.tree.structure(updates) != jax.tree.structure(state_tree):  # type: ignore[operator]
    raise ValueError(
        f"{where}: updates and state have different tree structures: {jax.tree.structure(updates)} "
        f"and {jax.tree.structure(state_tree)}."
    )


def refresh_now(count: jax.Array, update_proj_gap: int) -> jax.Array:
  """True on the first step (t = 1) and whenever t = count + 1 is a multiple of the gap."""
  t = count + 1
  return (t == 1) | (t % update_proj_gap == 0)


def subspace_momentum(
    b1: Any = 0.9,
    rank: int = 128,
    update_proj_gap: int = 200,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Momentum kept in a rank-r subspace of each matrix gradient, plain SGD on the complement.

  For a 2-D leaf :math:`g \in \mathbb{R}^{a \times b}` with basis :math:`P` (the top-r right
  singular vectors, :math:`r \times b`, when :math:`a \ge b`; else the top-r left ones):

  .. math::
    M_t = \beta_1 M_{t-1} + (1-\beta_1) g_t P^\top,\qquad
    u_t = M_t P + (g_t - g_t P^\top P).

  :math:`P` is recomputed from the current gradient (SVD) at the first step and every
  ``update_proj_gap`` steps, and :math:`M` restarts from zero then. Other leaves get ordinary EMA
  momentum :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`.

  Args:
    b1: momentum decay, in [0, 1).
    rank: subspace rank r (clipped to the smaller side of each matrix), an integer >= 1.
    update_proj_gap: steps between basis refreshes, an integer >= 1.
    mu_dtype: dtype of the momentum; None keeps the gradients' dtype.

  Returns:
    A gradient transformation (no bias correction); e.g. SGD with subspace momentum is
    ``chain(subspace_momentum(...), scale_by_learning_rate(lr))``. For the paper's adaptive
    optimizer use :func:`scale_by_subset_norm` with ``momentum="subspace"``.

  Example:
    >>> tx = optax.chain(gradtx.subspace_momentum(0.9, rank=4), gradtx.scale_by_learning_rate(0.1))

  References:
    Nguyen & Nguyen, "Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast,
    Memory-Reduced Training with Convergence Guarantees", arXiv:2411.07120.

  Notes:
    Side choice and refresh steps follow the GaLore-based reference code (``proj_type="svd"``).
    The code's momentum reset rebinds a tensor after the in-place EMA has already been taken, so
    its reset lands one step late; gradtx resets on the refresh step itself. The SVD runs under
    ``lax.cond``, only on refresh steps. State per (a, b) matrix: :math:`r\max(a,b)` momentum plus
    :math:`r\min(a,b)` basis, against :math:`ab` for EMA momentum.
  """
  validate.beta("b1", b1)
  validate.positive_int("rank", rank)
  validate.positive_int("update_proj_gap", update_proj_gap)

  def init_fn(params):
    pairs = jax.tree.map(lambda p: init_leaf(p, rank, mu_dtype), params)
    treedef = jax.tree.structure(params)
    leaves = treedef.flatten_up_to(pairs)
    return SubspaceMomentumState(
        count=jnp.zeros([], jnp.int32),
        mu=treedef.unflatten([x[0] for x in leaves]),
        proj=treedef.unflatten([x[1] for x in leaves]),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_structure("subspace_momentum", updates, state.proj, params)
    beta1 = resolve(b1, state.count)
    refresh = refresh_now(state.count, update_proj_gap)
    triples = jax.tree.map(
        lambda g, m, p: leaf_numerator(g, m, p, beta1, refresh, rank), updates, state.mu, state.proj
    )
    treedef = jax.tree.structure(updates)
    leaves = treedef.flatten_up_to(triples)
    out = jax.tree.map(lambda x, g: x.astype(g.dtype), treedef.unflatten([x[0] for x in leaves]), updates)
    mu = treedef.unflatten([x[1] for x in leaves])
    proj = treedef.unflatten([x[2] for x in leaves])
    return out, SubspaceMomentumState(optax.safe_int32_increment(state.count), mu, proj)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
