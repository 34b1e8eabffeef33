"""Clip by global norm: one scalar factor min(1, c/||g||) multiplies every leaf."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.clipping._common import check_bound, clip_factor, scale_leaf
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, global_norm, scalar_dtype


class ClipByGlobalNormState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  norm: jax.Array  # global norm of the last incoming update, before clipping
  clipped: jax.Array  # bool: whether the last update was scaled down


def clip_by_global_norm(max_norm: Any) -> optax.GradientTransformationExtraArgs:
  r"""Rescale the update so that its global norm is at most ``max_norm``.

  .. math::
    n = \sqrt{\textstyle\sum_{\text{leaves}} \sum g^2},\qquad u = g \cdot \min(1, c / n)
    \quad (n = 0 \Rightarrow u = g).

  Args:
    max_norm: :math:`c`, > 0; ``inf`` gives the identity. A float, array or schedule.

  Returns:
    A gradient transformation. Its state logs ``norm`` (the pre-clip global norm) and
    ``clipped`` (whether the update was scaled down).

  Example:
    >>> tx = optax.chain(gradtx.clip_by_global_norm(1.0), gradtx.adam(1e-3))
    >>> # after an update: state[0].norm, state[0].clipped

  References:
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks",
    arXiv:1211.5063.

  Notes:
    The whole clip is one scalar :math:`\min(1, c/n)` times every element (optax divides every
    element by the norm, then multiplies by :math:`c`; torch divides by :math:`n + 10^{-6}`). Results
    agree with both to about 1e-6 relative. The norm is accumulated in float32 or wider.
  """
  check_bound("clip_by_global_norm", "max_norm", max_norm)

  def init_fn(params):
    dtype = scalar_dtype(params)
    return ClipByGlobalNormState(
        count=jnp.zeros([], jnp.int32), norm=jnp.zeros([], dtype), clipped=jnp.zeros([], bool)
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("clip_by_global_norm", updates, params, ("updates", "params"))
    c = resolve(max_norm, state.count)
    norm = global_norm(updates).astype(state.norm.dtype)
    factor = clip_factor(norm, c)
    out = jax.tree.map(lambda g: scale_leaf(g, factor), updates)
    new_state = ClipByGlobalNormState(
        count=optax.safe_int32_increment(state.count), norm=norm, clipped=norm > jnp.asarray(c, norm.dtype)
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
