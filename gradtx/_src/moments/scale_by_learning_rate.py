"""Scale updates by minus the learning rate, a constant or a schedule."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate


class ScaleByLearningRateState(NamedTuple):
  # int32 step counter, the schedule's argument
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states


def scale_by_learning_rate(
    learning_rate: Any,
    *,
    flip_sign: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""Multiply updates by :math:`-\eta_t` (or :math:`+\eta_t` with ``flip_sign=False``).

  Args:
    learning_rate: :math:`\eta`, >= 0: a float, a scalar array, or a schedule of the 0-based step.
    flip_sign: negate, so that ``params + updates`` descends.

  Returns:
    A gradient transformation: one scalar multiply per element.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 22 (1951).

  Notes:
    The state always holds a step count (also for a constant), so the state structure does not
    change when a constant is swapped for a schedule.
  """
  validate.non_negative("learning_rate", learning_rate)
  sign = -1.0 if flip_sign else 1.0

  def init_fn(params):
    del params
    return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    out = jax.tree.map(lambda g: (sign * lr * g).astype(g.dtype), updates)
    return out, ScaleByLearningRateState(optax.safe_int32_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
