"""AdaGrad-Norm: one scalar AdaGrad step size shared by every parameter."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, global_sq_norm, scalar_dtype


class ScaleByAdagradNormState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  sum_of_squares: jax.Array  # scalar b_t^2 = b_0^2 + sum of squared global gradient norms


def scale_by_adagrad_norm(
    initial_accumulator_value: float = 0.0,
    eps: Any = 0.0,
    *,
    delayed: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by one scalar AdaGrad step size (AdaGrad-Norm).

  .. math::
    b_t^2 = b_{t-1}^2 + \lVert g_t \rVert^2,\qquad u_t = g_t / (\sqrt{b_t^2} + \epsilon),

  with :math:`b_0^2` = ``initial_accumulator_value`` and the norm taken over all leaves together.
  Where the denominator is 0 the update is 0.

  Args:
    initial_accumulator_value: :math:`b_0^2 = \gamma^2` of Attia & Koren, >= 0.
    eps: added outside the square root, >= 0.
    delayed: divide by :math:`b_{t-1}` (before adding the current gradient), as in the
      "delayed" variant of Attia & Koren; needs ``initial_accumulator_value > 0``.

  Returns:
    A gradient transformation whose output norm is at most 1 per step (undelayed, eps = 0).

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adagrad_norm(), gradtx.scale_by_learning_rate(0.5))

  References:
    Attia & Koren, "SGD with AdaGrad Stepsizes: Full Adaptivity with High Probability to Unknown
    Parameters, Unbounded Gradients and Affine Variance", arXiv:2302.08783.
    Ward, Wu & Bottou, "AdaGrad stepsizes: sharp convergence over nonconvex landscapes",
    arXiv:1806.01811.

  Notes:
    The accumulator is one float32 (or wider) scalar, whatever the parameter dtypes; the update is
    one scalar multiply per element.
  """
  validate.non_negative("initial_accumulator_value", initial_accumulator_value)
  validate.non_negative("eps", eps)
  if delayed:
    validate.positive("initial_accumulator_value", initial_accumulator_value)

  def init_fn(params):
    return ScaleByAdagradNormState(
        count=jnp.zeros([], jnp.int32),
        sum_of_squares=jnp.asarray(initial_accumulator_value, scalar_dtype(params)),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("scale_by_adagrad_norm", updates, params, ("updates", "params"))
    acc = state.sum_of_squares + global_sq_norm(updates).astype(state.sum_of_squares.dtype)
    denom = jnp.sqrt(state.sum_of_squares if delayed else acc) + resolve(eps, state.count)
    factor = jnp.where(denom > 0, 1.0 / jnp.where(denom > 0, denom, 1.0), 0.0)
    out = jax.tree.map(lambda g: (factor * g).astype(g.dtype), updates)
    return out, ScaleByAdagradNormState(optax.safe_int32_increment(state.count), acc)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
