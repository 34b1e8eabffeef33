"""Adam-LMC: Langevin dynamics whose drift adds an Adam-style momentum term (adaptive drift)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.rng import RNGS, key_from, normal_like
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAdamLangevinState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update
  mu: optax.Updates  # first moment m_t, in mu_dtype
  nu: optax.Updates  # second moment v_t


def scale_by_adam_langevin(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps_root: Any = 1e-8,
    *,
    bias_factor: Any = 1.0,
    temperature: Any = 1.0,
    key: Any = None,
    mu_dtype: Any = None,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""One step of Adam Langevin Monte Carlo (Adam-LMC).

  .. math::
    u_t = -\eta\left(g_t + a\, \frac{m_{t-1}}{\sqrt{v_{t-1} + \lambda_1}}\right)
      + \sqrt{2 \eta T}\, \xi_t,\qquad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2.

  The drift uses the moments from *before* the current gradient; no bias correction.

  Args:
    learning_rate: :math:`\eta`, >= 0; a float, array or schedule.
    b1: :math:`\beta_1`, in [0, 1).
    b2: :math:`\beta_2`, in [0, 1).
    eps_root: :math:`\lambda_1`, added inside the square root, > 0.
    bias_factor: :math:`a`, >= 0; 0 gives SGLD in the :math:`-\eta g + \sqrt{2\eta T}\xi` form.
    temperature: :math:`T = 1/\beta` (the paper's inverse temperature :math:`\beta`), >= 0.
    key: an int seed or PRNG key (required).
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.
    rng: ``"fast"`` or ``"threefry"`` (see :func:`add_annealed_noise`).

  Returns:
    A gradient transformation that already includes the learning rate.

  Example:
    >>> tx = gradtx.noise.scale_by_adam_langevin(1e-3, temperature=1e-4, key=0)

  References:
    Ishfaq, Lan, Xu, Mahmood, Precup, Anandkumar & Azizzadenesheli, "Provable and Practical:
    Efficient Exploration in Reinforcement Learning via Langevin Monte Carlo", arXiv:2305.18246.
    Kim, Song & Liang, "Stochastic gradient Langevin dynamics with adaptive drifts",
    arXiv:2009.09535.

  Notes:
    gradtx takes a temperature :math:`T` where the paper takes :math:`\beta = 1/T`, so that every
    Langevin transformation in gradtx shares one argument and :math:`T = 0` (no noise) is
    expressible. ``eps_root`` defaults to 1e-8 and must be positive, unlike gradtx's usual 0:
    at the first step :math:`m_0 = v_0 = 0`, and the paper's :math:`\lambda_1` keeps the drift
    defined. Defaults for :math:`a`, :math:`\beta_1`, :math:`\beta_2` are tuned per task in the
    paper; the ones here are Adam's.
  """
  validate.non_negative("learning_rate", learning_rate)
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.positive("eps_root", eps_root)
  validate.non_negative("bias_factor", bias_factor)
  validate.non_negative("temperature", temperature)
  validate.one_of("rng", rng, RNGS)
  key = key_from(key, "scale_by_adam_langevin")

  def init_fn(params):
    return ScaleByAdamLangevinState(
        count=jnp.zeros([], jnp.int32), key=keys.fresh(key), mu=init_moment(params, mu_dtype), nu=init_moment(params)
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_adam_langevin", updates, state.nu, ("updates", "state"))
    new_key, use = keys.split(state.key)
    c = state.count
    lr, a, er = resolve(learning_rate, c), resolve(bias_factor, c), resolve(eps_root, c)
    scale = jnp.sqrt(2.0 * lr * resolve(temperature, c))
    noise = normal_like(use, updates, rng)

    def step(g, m, v, z):
      dt = compute_dtype(g.dtype)
      drift = g.astype(dt) + a * m.astype(dt) * jax.lax.rsqrt(v.astype(dt) + er)
      return (-lr * drift + scale * z.astype(dt)).astype(g.dtype)

    out = jax.tree.map(step, updates, state.mu, state.nu, noise)
    mu = ema(updates, state.mu, resolve(b1, c), 1)
    nu = ema(updates, state.nu, resolve(b2, c), 2)
    return out, ScaleByAdamLangevinState(optax.safe_int32_increment(c), new_key, mu, nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
