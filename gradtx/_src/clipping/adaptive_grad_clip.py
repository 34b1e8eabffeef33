"""Adaptive gradient clipping (AGC): clip each unit's gradient relative to its weight norm."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype


class AdaptiveGradClipState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  norm: optax.Updates  # per leaf: scalar norm of the last incoming update, before clipping
  clipped: optax.Updates  # per leaf: bool, whether any unit of that leaf was scaled down


def unit_norm(x: jax.Array) -> jax.Array:
  """Norm per unit (JAX layouts): whole leaf for ndim <= 1, else over every axis but the last."""
  x = jnp.square(x.astype(compute_dtype(x.dtype)))
  if x.ndim <= 1:
    return jnp.sqrt(jnp.sum(x))
  return jnp.sqrt(jnp.sum(x, axis=tuple(range(x.ndim - 1)), keepdims=True))


def adaptive_grad_clip(clipping: Any = 0.01, eps: Any = 1e-3) -> optax.GradientTransformationExtraArgs:
  r"""Clip each unit's gradient to a fraction of that unit's weight norm (AGC, NFNets).

  .. math::
    W^\star_i = \max(\lVert W_i \rVert, \epsilon),\qquad
    G_i \leftarrow G_i \cdot \min\!\left(1, \frac{\lambda W^\star_i}{\lVert G_i \rVert}\right).

  A unit is a whole leaf for scalars and vectors and one output index for ``ndim >= 2`` (the
  norm runs over every axis but the last: a dense ``(in, out)`` kernel over axis 0, a conv
  ``(H, W, I, O)`` kernel over axes 0-2).

  Args:
    clipping: :math:`\lambda`, > 0 (NFNets use 0.01 at batch 4096). A float, array or schedule.
    eps: :math:`\epsilon`, the floor of the weight norm, >= 0.

  Returns:
    A gradient transformation; ``update`` needs ``params``. Its state logs, per leaf, ``norm``
    (pre-clip) and ``clipped`` (whether any unit was scaled down).

  Example:
    >>> tx = optax.chain(gradtx.adaptive_grad_clip(0.01), gradtx.sgd(0.1, momentum=0.9))
    >>> updates, state = tx.update(grads, state, params)

  References:
    Brock, De, Smith & Simonyan, "High-Performance Large-Scale Image Recognition Without
    Normalization", arXiv:2102.06171.

  Notes:
    ``optax.adaptive_grad_clip`` reduces over axis 0 only for 3-D leaves and divides by
    :math:`\max(\lVert G_i \rVert, 10^{-6})`; here every leaf with ``ndim >= 2`` reduces over all
    axes but the last and a zero gradient is left unchanged. NFNets skip the final classifier:
    chain with ``optax.masked`` to do the same.
  """
  validate.positive("clipping", clipping)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return AdaptiveGradClipState(
        count=jnp.zeros([], jnp.int32),
        norm=jax.tree.map(lambda p: jnp.zeros([], compute_dtype(jnp.asarray(p).dtype)), params),
        clipped=jax.tree.map(lambda p: jnp.zeros([], bool), params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    params = errors.require(
        "adaptive_grad_clip", "params", params, "the current parameters",
        "tx.update(grads, state, params)",
    )
    check_matching("adaptive_grad_clip", updates, params, ("updates", "params"))
    lam, e = resolve(clipping, state.count), resolve(eps, state.count)

    def one(g, p, n_log):
      dt = compute_dtype(g.dtype)
      gn = unit_norm(g)
      bound = lam * jnp.maximum(unit_norm(p).astype(dt), e)
      over = gn > bound
      factor = jnp.where(over, bound / jnp.where(over, gn, 1.0), 1.0)
      out = (g.astype(dt) * factor).astype(g.dtype)
      leaf = jnp.sqrt(jnp.sum(jnp.square(gn))).astype(n_log.dtype)
      return out, leaf, jnp.any(over)

    treedef = jax.tree.structure(updates)
    triples = [one(g, p, n) for g, p, n in zip(
        jax.tree.leaves(updates), jax.tree.leaves(params), jax.tree.leaves(state.norm))]
    out = jax.tree.unflatten(treedef, [t[0] for t in triples])
    norms = jax.tree.unflatten(treedef, [t[1] for t in triples])
    clipped = jax.tree.unflatten(treedef, [t[2] for t in triples])
    return out, AdaptiveGradClipState(optax.safe_int32_increment(state.count), norms, clipped)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
