"""Clip by value: clamp every element to [-c, c]."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.clipping._common import check_bound
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, scalar_dtype


class ClipByValueState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  norm: jax.Array  # max |g| (the L-infinity norm) of the last incoming update, before clipping
  clipped: jax.Array  # bool: whether any element was clamped


def clip_by_value(max_value: Any) -> optax.GradientTransformationExtraArgs:
  r"""Clamp every element of the update to :math:`[-c, c]`.

  .. math::
    u_i = \operatorname{clip}(g_i, -c, c).

  Args:
    max_value: :math:`c`, > 0; ``inf`` gives the identity. A float, array or schedule.

  Returns:
    A gradient transformation. Its state logs ``norm`` (the pre-clip L-infinity norm, the
    quantity the bound applies to) and ``clipped`` (whether any element was clamped).

  Example:
    >>> tx = optax.chain(gradtx.clip_by_value(0.5), gradtx.sgd(0.1))

  References:
    Mikolov, "Statistical Language Models Based on Neural Networks", PhD thesis (2012);
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks",
    arXiv:1211.5063.

  Notes:
    Not direction-preserving. Equals ``optax.clip`` and ``torch.nn.utils.clip_grad_value_``.
  """
  check_bound("clip_by_value", "max_value", max_value)

  def init_fn(params):
    return ClipByValueState(
        count=jnp.zeros([], jnp.int32), norm=jnp.zeros([], scalar_dtype(params)), clipped=jnp.zeros([], bool)
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("clip_by_value", updates, params, ("updates", "params"))
    c = resolve(max_value, state.count)
    leaves = jax.tree.leaves(updates)
    norm = jnp.zeros([], state.norm.dtype)
    for g in leaves:
      if g.size:
        norm = jnp.maximum(norm, jnp.max(jnp.abs(g)).astype(norm.dtype))

    def clip(g):
      cc = jnp.asarray(c, jnp.promote_types(g.dtype, jnp.float32)).astype(g.dtype)
      return jnp.clip(g, -cc, cc)

    out = jax.tree.map(clip, updates)
    clipped = norm > jnp.asarray(c, norm.dtype)
    return out, ClipByValueState(optax.safe_int32_increment(state.count), norm, clipped)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
