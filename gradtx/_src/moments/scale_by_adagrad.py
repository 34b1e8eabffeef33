"""AdaGrad scaling: divide by the root of the sum of all squared gradients so far."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype, full_like


class ScaleByAdagradState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  sum_of_squares: optax.Updates  # accumulated squared gradients


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0,
    eps: Any = 1e-10,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by the inverse root of the accumulated squared gradients (AdaGrad).

  .. math::
    s_t = s_{t-1} + g_t^2,\qquad u_t = g_t / (\sqrt{s_t} + \epsilon),\qquad s_0 = s_{init}.

  Args:
    initial_accumulator_value: initial value of :math:`s`, >= 0.
    eps: added outside the square root, >= 0.

  Returns:
    A gradient transformation.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adagrad(), gradtx.scale_by_learning_rate(1e-2))

  References:
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization", JMLR 12 (2011).

  Notes:
    Follows ``torch.optim.Adagrad``: accumulator starts at 0 and eps 1e-10 is added outside the
    square root. ``optax.adagrad`` starts the accumulator at 0.1 and adds eps 1e-7 *inside* the
    square root. torch's ``lr_decay`` is expressed here as a learning-rate schedule.
  """
  validate.non_negative("initial_accumulator_value", initial_accumulator_value)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return ScaleByAdagradState(
        count=jnp.zeros([], jnp.int32),
        sum_of_squares=full_like(params, initial_accumulator_value),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_adagrad", updates, state.sum_of_squares, ("updates", "state"))
    e = resolve(eps, state.count)

    def accumulate(g, s):
      dt = compute_dtype(s.dtype)
      return (s.astype(dt) + jnp.square(g.astype(dt))).astype(s.dtype)

    sums = jax.tree.map(accumulate, updates, state.sum_of_squares)

    def step(g, s):
      dt = compute_dtype(g.dtype)
      return (g.astype(dt) / (jnp.sqrt(s.astype(dt)) + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, sums)
    return out, ScaleByAdagradState(optax.safe_int32_increment(state.count), sums)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
