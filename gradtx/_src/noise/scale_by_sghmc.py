"""SGHMC: momentum with friction plus noise that compensates for it (Chen, Fox & Guestrin)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.rng import RNGS, key_from, normal_like
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleBySghmcState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update
  velocity: optax.Updates  # v_t, already scaled by the learning rate (theta_t = theta_{t-1} + v_t)


def scale_by_sghmc(
    learning_rate: Any,
    friction: Any = 0.1,
    temperature: Any = 1.0,
    *,
    beta_hat: Any = 0.0,
    key: Any = None,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""One step of stochastic gradient Hamiltonian Monte Carlo.

  .. math::
    v_t = (1-\alpha) v_{t-1} - \eta g_t + \sqrt{2 (\alpha - \hat\beta) \eta T}\, \xi_t,\qquad
    u_t = v_t,

  with :math:`g_t` the gradient of the potential :math:`U` (negative log posterior).

  Args:
    learning_rate: :math:`\eta`, >= 0; a float, array or schedule.
    friction: :math:`\alpha` (momentum :math:`1-\alpha`), in (0, 1].
    temperature: :math:`T`, >= 0.
    beta_hat: :math:`\hat\beta`, the estimated gradient-noise term, in [0, alpha]; 0 by default.
    key: an int seed or PRNG key (required).
    rng: ``"fast"`` or ``"threefry"`` (see :func:`add_annealed_noise`).

  Returns:
    A gradient transformation that already includes the learning rate.

  Example:
    >>> tx = gradtx.noise.scale_by_sghmc(1e-3, friction=0.1, key=0)

  References:
    Chen, Fox & Guestrin, "Stochastic Gradient Hamiltonian Monte Carlo", arXiv:1402.4102
    (the practical update of their eq. 15, with :math:`\eta` and :math:`\alpha`).

  Notes:
    :math:`\hat\beta = \alpha` removes the noise and gives heavy-ball SGD. The paper resamples the
    momentum periodically; gradtx does not (the friction makes it unnecessary in practice).
  """
  validate.non_negative("learning_rate", learning_rate)
  validate.in_range("friction", friction, 0.0, 1.0, left_open=True)
  validate.non_negative("temperature", temperature)
  validate.non_negative("beta_hat", beta_hat)
  if isinstance(beta_hat, (int, float)) and isinstance(friction, (int, float)) and beta_hat > friction:
    raise ValueError(f"scale_by_sghmc: beta_hat must be <= friction ({friction}), got {beta_hat!r}.")
  validate.one_of("rng", rng, RNGS)
  key = key_from(key, "scale_by_sghmc")

  def init_fn(params):
    return ScaleBySghmcState(count=jnp.zeros([], jnp.int32), key=keys.fresh(key), velocity=init_moment(params))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_sghmc", updates, state.velocity, ("updates", "state"))
    new_key, use = keys.split(state.key)
    lr, a = resolve(learning_rate, state.count), resolve(friction, state.count)
    b, temp = resolve(beta_hat, state.count), resolve(temperature, state.count)
    keep = 1.0 - a
    scale = jnp.sqrt(jnp.maximum(2.0 * (a - b) * lr * temp, 0.0))
    noise = normal_like(use, updates, rng)

    def step(g, v, z):
      dt = compute_dtype(v.dtype)
      return (keep * v.astype(dt) - lr * g.astype(dt) + scale * z.astype(dt)).astype(v.dtype)

    velocity = jax.tree.map(step, updates, state.velocity, noise)
    out = jax.tree.map(lambda v, g: v.astype(g.dtype), velocity, updates)
    return out, ScaleBySghmcState(optax.safe_int32_increment(state.count), new_key, velocity)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
