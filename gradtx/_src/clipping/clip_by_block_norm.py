"""Clip by block norm: each leaf is rescaled to norm at most c on its own."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.clipping._common import check_bound, check_structure, clip_factor, scale_leaf
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype


class ClipByBlockNormState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  norm: optax.Updates  # per leaf: scalar norm of the last incoming update, before clipping
  clipped: optax.Updates  # per leaf: bool, whether that leaf was scaled down


def clip_by_block_norm(max_norm: Any) -> optax.GradientTransformationExtraArgs:
  r"""Rescale each leaf (block) so that its own Euclidean norm is at most ``max_norm``.

  .. math::
    u_\ell = g_\ell \cdot \min(1, c / \lVert g_\ell \rVert) \quad\text{for every leaf } \ell.

  Args:
    max_norm: :math:`c`, > 0; ``inf`` gives the identity. A float, array or schedule.

  Returns:
    A gradient transformation. Its state logs, per leaf, ``norm`` (pre-clip) and ``clipped``.

  Example:
    >>> tx = optax.chain(gradtx.clip_by_block_norm(1.0), gradtx.sgd(0.1))

  References:
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks",
    arXiv:1211.5063 (norm clipping, here applied per block).

  Notes:
    Like ``optax.per_example_layer_norm_clip``'s per-layer rule, but on one gradient. One scalar
    factor per leaf; no eps.
  """
  check_bound("clip_by_block_norm", "max_norm", max_norm)

  def init_fn(params):
    return ClipByBlockNormState(
        count=jnp.zeros([], jnp.int32),
        norm=jax.tree.map(lambda p: jnp.zeros([], compute_dtype(jnp.asarray(p).dtype)), params),
        clipped=jax.tree.map(lambda p: jnp.zeros([], bool), params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    check_structure("clip_by_block_norm", updates, state.norm)
    if params is not None:
      check_matching("clip_by_block_norm", updates, params, ("updates", "params"))
    c = resolve(max_norm, state.count)

    def leaf_norm(g, n):
      return jnp.sqrt(jnp.sum(jnp.square(g.astype(compute_dtype(g.dtype))))).astype(n.dtype)

    norms = jax.tree.map(leaf_norm, updates, state.norm)
    out = jax.tree.map(lambda g, n: scale_leaf(g, clip_factor(n, c)), updates, norms)
    clipped = jax.tree.map(lambda n: n > jnp.asarray(c, n.dtype), norms)
    return out, ClipByBlockNormState(optax.safe_int32_increment(state.count), norms, clipped)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
