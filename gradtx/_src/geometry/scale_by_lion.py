"""Lion's sign of an interpolated momentum, with a second, slower momentum kept in state."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByLionState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum, in mu_dtype


def scale_by_lion(
    b1: Any = 0.9,
    b2: Any = 0.99,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Lion's update direction: the sign of an interpolation of momentum and gradient.

  .. math::
    c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad u_t = \operatorname{sign}(c_t),\qquad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t.

  Args:
    b1: interpolation weight of the momentum in the update, in [0, 1).
    b2: decay of the momentum kept in state, in [0, 1).
    mu_dtype: dtype of the momentum; None keeps the gradients' dtype.

  Returns:
    A gradient transformation whose updates are in {-1, 0, 1}.

  Example:
    >>> tx = optax.chain(gradtx.geometry.scale_by_lion(), gradtx.scale_by_learning_rate(1e-4))

  References:
    Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675.

  Notes:
    The momentum is updated after the direction is computed, as in the paper. With
    ``b1 == b2`` the direction is the sign of the updated EMA, i.e. Signum.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)

  def init_fn(params):
    return ScaleByLionState(count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_lion", updates, state.mu, ("updates", "state"))
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)

    def direction(g, m):
      dt = compute_dtype(m.dtype)
      return jnp.sign(beta1 * m.astype(dt) + (1.0 - beta1) * g.astype(dt)).astype(g.dtype)

    def moment(g, m):
      dt = compute_dtype(m.dtype)
      return (beta2 * m.astype(dt) + (1.0 - beta2) * g.astype(dt)).astype(m.dtype)

    out = jax.tree.map(direction, updates, state.mu)
    mu = jax.tree.map(moment, updates, state.mu)
    return out, ScaleByLionState(count=optax.safe_int32_increment(state.count), mu=mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
