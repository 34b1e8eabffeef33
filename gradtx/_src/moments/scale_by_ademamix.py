"""AdEMAMix: Adam whose numerator mixes a fast bias-corrected EMA with a slow, uncorrected one."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAdemamixState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # fast first moment (decay b1), in mu_dtype
  mu_slow: optax.Updates  # slow first moment (decay b3), in mu_dtype, never bias-corrected
  nu: optax.Updates  # second moment, in the gradients' dtype


def scale_by_ademamix(
    b1: Any = 0.9,
    b2: Any = 0.999,
    *,
    b3: Any,
    alpha: Any,
    eps: Any = 1e-8,
    alpha_schedule: Any = None,
    b3_schedule: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by AdEMAMix's mixture of a fast and a slow EMA over Adam's denominator.

  .. math::
    m^{(1)}_t = \beta_1 m^{(1)}_{t-1} + (1-\beta_1) g_t,\quad
    m^{(2)}_t = \beta_{3,t} m^{(2)}_{t-1} + (1-\beta_{3,t}) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
    u_t = \frac{m^{(1)}_t / (1-\beta_1^t) + \alpha_t m^{(2)}_t}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}.

  Args:
    b1: decay of the fast EMA, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    b3: decay of the slow EMA, in [0, 1) (paper: 0.999 to 0.9999). Required: implementations
      disagree on defaults.
    alpha: weight of the slow EMA, >= 0 (paper: 5 or 8). Required, as ``b3``.
    eps: added outside the square root, >= 0.
    alpha_schedule: optional schedule of the 0-based step giving :math:`\alpha_t`; replaces
      ``alpha`` when given (see :func:`ademamix_alpha_schedule` for the paper's warm-up).
    b3_schedule: optional schedule giving :math:`\beta_{3,t}`; replaces ``b3`` when given (see
      :func:`ademamix_b3_schedule`).
    mu_dtype: dtype of both EMAs of the gradient; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_ademamix(b3=0.9999, alpha=5.0),
    ...                  gradtx.scale_by_learning_rate(1e-3))

  References:
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
    arXiv:2409.03137.

  Notes:
    ``alpha`` and ``b3`` have no defaults (the official PyTorch code uses alpha 2, its optax code
    and ``optax.contrib`` 5, ``optax.contrib.scale_by_ademamix`` 6). Schedules are evaluated at
    the 0-based step, as in the official optax code and ``optax.contrib``; the official PyTorch
    code evaluates them at the 1-based step, so with warm-up its alpha is one step ahead.
    The slow EMA is not bias-corrected (as in the paper).
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.beta("b3", b3)
  validate.non_negative("alpha", alpha)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return ScaleByAdemamixState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        mu_slow=init_moment(params, mu_dtype),
        nu=init_moment(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_ademamix", updates, state.nu, ("updates", "state"))
    count = state.count
    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    beta3 = resolve(b3 if b3_schedule is None else b3_schedule, count)
    a = resolve(alpha if alpha_schedule is None else alpha_schedule, count)
    mu = ema(updates, state.mu, beta1, 1)
    mu_slow = ema(updates, state.mu_slow, beta3, 1)
    nu = ema(updates, state.nu, beta2, 2)
    t = count + 1
    c1 = 1.0 / (1.0 - power(beta1, t))
    c2 = 1.0 / (1.0 - power(beta2, t))
    e = resolve(eps, count)

    def step(g, m1, m2, v):
      dt = compute_dtype(g.dtype)
      num = c1 * m1.astype(dt) + a * m2.astype(dt)
      return (num / (jnp.sqrt(v.astype(dt) * c2) + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, mu_slow, nu)
    new_state = ScaleByAdemamixState(
        count=optax.safe_int32_increment(count), mu=mu, mu_slow=mu_slow, nu=nu
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ademamix_alpha_schedule(alpha: float, warmup: int) -> optax.Schedule:
  r"""The paper's linear warm-up of the slow-EMA weight: :math:`\alpha_c = \alpha \min(c/T_\alpha, 1)`.

  Args:
    alpha: the final weight, >= 0.
    warmup: :math:`T_\alpha`, the number of warm-up steps, an integer >= 1 (the paper uses the
      total number of steps).

  Returns:
    A schedule of the 0-based step count ``c`` (so the first update uses :math:`\alpha = 0`).

  Example:
    >>> opt = gradtx.ademamix(1e-3, b3=0.9999, alpha=8.0,
    ...                       alpha_schedule=gradtx.ademamix_alpha_schedule(8.0, 10_000))

  References:
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
    arXiv:2409.03137, Sec. 3.
  """
  validate.non_negative("alpha", alpha)
  validate.positive_int("warmup", warmup)

  def schedule(count):
    frac = jnp.minimum(jnp.asarray(count) / jnp.asarray(float(warmup)), 1.0)
    return alpha * frac

  return schedule


def ademamix_b3_schedule(b1: float, b3: float, warmup: int) -> optax.Schedule:
  r"""The paper's warm-up of the slow decay, linear in half-life from ``b1`` to ``b3``.

  .. math::
    f(\beta) = \frac{\ln 0.5}{\ln \beta} - 1,\qquad f^{-1}(\tau) = 0.5^{1/(\tau+1)},\qquad
    \beta_{3,c} = f^{-1}\big((1 - c/T) f(\beta_1) + (c/T) f(\beta_3)\big)\ (c < T),\ \beta_3\ (c \ge T).

  Args:
    b1: the starting decay (the fast EMA's), in (0, 1).
    b3: the final decay, in (0, 1).
    warmup: :math:`T_{\beta_3}`, an integer >= 1.

  Returns:
    A schedule of the 0-based step count (so the first update uses ``b1``).

  Example:
    >>> sched = gradtx.ademamix_b3_schedule(0.9, 0.9999, 10_000)

  References:
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
    arXiv:2409.03137, Sec. 3.

  Notes:
    Computed as :math:`\exp\big(\ln\beta_1 \ln\beta_3 / ((1-s)\ln\beta_3 + s\ln\beta_1)\big)` with
    :math:`s = c/T`, algebraically the formula above and free of the :math:`-1`/:math:`+1`
    cancellation.
  """
  validate.in_range("b1", b1, 0.0, 1.0, left_open=True, right_open=True)
  validate.in_range("b3", b3, 0.0, 1.0, left_open=True, right_open=True)
  validate.positive_int("warmup", warmup)
  log_b1, log_b3 = math.log(b1), math.log(b3)

  def schedule(count):
    s = jnp.minimum(jnp.asarray(count) / jnp.asarray(float(warmup)), 1.0)
    return jnp.exp(log_b1 * log_b3 / ((1.0 - s) * log_b3 + s * log_b1))

  return schedule
