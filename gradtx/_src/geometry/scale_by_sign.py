"""Sign of the updates: steepest descent under the l-infinity norm."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core.tree import check_matching


class ScaleBySignState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter


def scale_by_sign() -> optax.GradientTransformationExtraArgs:
  r"""Replace every update by its elementwise sign.

  .. math::
    u_t = \operatorname{sign}(g_t),\qquad \operatorname{sign}(0) = 0.

  Returns:
    A gradient transformation (no buffers, only a step count).

  Example:
    >>> tx = optax.chain(gradtx.geometry.scale_by_sign(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed Optimisation for
    Non-Convex Problems", arXiv:1802.04434.

  Notes:
    ``sign(0) = 0`` (``jnp.sign``), so a zero gradient moves nothing; NaN stays NaN. The output
    keeps the gradients' dtype (sign is exact in every float dtype).
  """

  def init_fn(params):
    del params
    return ScaleBySignState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("scale_by_sign", updates, params, ("updates", "params"))
    return jax.tree.map(jnp.sign, updates), ScaleBySignState(optax.safe_int32_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
