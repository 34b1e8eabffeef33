"""RMSProp scaling: divide by the root of a running average of squared gradients."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype, full_like


class ScaleByRmsState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  nu: optax.Updates  # running average of squared gradients
  mu: optax.Updates  # running average of gradients (centered only; else an empty tuple)


def scale_by_rms(
    decay: Any = 0.99,
    eps: Any = 1e-8,
    *,
    initial_scale: float = 0.0,
    centered: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by the inverse root mean square of past gradients (RMSProp).

  .. math::
    v_t = \rho v_{t-1} + (1-\rho) g_t^2,\qquad u_t = g_t / (\sqrt{v_t} + \epsilon);

  centered: :math:`\bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t` and
  :math:`u_t = g_t / (\sqrt{v_t - \bar g_t^2} + \epsilon)`.

  Args:
    decay: decay of the running averages, in [0, 1).
    eps: added outside the square root, >= 0.
    initial_scale: initial value of :math:`v`, >= 0.
    centered: subtract the squared running mean (an estimate of the variance).

  Returns:
    A gradient transformation.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_rms(), gradtx.scale_by_learning_rate(1e-2))

  References:
    Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning
    (2012); Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850
    (centered form).

  Notes:
    Follows ``torch.optim.RMSprop``: decay 0.99 and eps outside the square root. ``optax.rmsprop``
    defaults to decay 0.9 and eps *inside* the square root. In the centered form the variance
    estimate is clamped at 0 so that rounding cannot produce the square root of a negative number.
  """
  validate.beta("decay", decay)
  validate.non_negative("eps", eps)
  validate.non_negative("initial_scale", initial_scale)

  def init_fn(params):
    return ScaleByRmsState(
        count=jnp.zeros([], jnp.int32),
        nu=full_like(params, initial_scale),
        mu=init_moment(params) if centered else (),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_rms", updates, state.nu, ("updates", "state"))
    rho = resolve(decay, state.count)
    e = resolve(eps, state.count)
    nu = ema(updates, state.nu, rho, 2)

    if centered:
      mu = ema(updates, state.mu, rho, 1)

      def step(g, v, m):
        dt = compute_dtype(g.dtype)
        var = jnp.maximum(v.astype(dt) - jnp.square(m.astype(dt)), 0.0)
        return (g.astype(dt) / (jnp.sqrt(var) + e)).astype(g.dtype)

      out = jax.tree.map(step, updates, nu, mu)
    else:
      mu = ()

      def plain_step(g, v):
        dt = compute_dtype(g.dtype)
        return (g.astype(dt) / (jnp.sqrt(v.astype(dt)) + e)).astype(g.dtype)

      out = jax.tree.map(plain_step, updates, nu)
    return out, ScaleByRmsState(optax.safe_int32_increment(state.count), nu, mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
