"""EXAdam: Adam with cross-moment debiasing and a gradient-acceleration term."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByExadamState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment, in mu_dtype
  nu: optax.Updates  # second moment


def scale_by_exadam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    log_step_size: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by EXAdam's cross-debiased moments plus its gradient-acceleration term.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
    d_1 = 1 + \beta_2^t \frac{v_t}{v_t + \epsilon},\quad
    d_2 = 1 + \beta_1^t \frac{m_t^2}{m_t^2 + \epsilon},\\
    \tilde m_t = \frac{m_t d_1}{1-\beta_1^t},\quad \tilde v_t = \frac{v_t d_2}{1-\beta_2^t},\quad
    \tilde g_t = \frac{g_t d_1}{1-\beta_1^t},\quad
    u_t = s_t \frac{\tilde m_t + \tilde g_t}{\sqrt{\tilde v_t} + \epsilon},

  with :math:`s_t = 1`, or :math:`s_t = \ln(\sqrt{2}\sqrt{t+1})` when ``log_step_size=True``.

  Args:
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: > 0; the same value is used in :math:`d_1`, :math:`d_2` and the denominator.
    log_step_size: multiply by the first release's growing factor :math:`\ln(\sqrt{2(t+1)})`.
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply weight decay and ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_exadam(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Adly, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302.

  Notes:
    Follows the revised paper and the current official code (AhmedMostafa16/EXAdam): constant
    step size. ``log_step_size=True`` reproduces the first arXiv release's growing step size
    (the factor multiplies the direction only, not a chained weight decay, as in the code). The
    acceleration term follows the official code (:math:`g_t d_1/(1-\beta_1^t)`), which makes the
    first steps large: for :math:`g = 1` the first update is :math:`-15.95\,\eta`
    (:math:`-11.06\,\eta` with the log factor). ``eps`` must be > 0 because it also keeps the
    ratios in :math:`d_1, d_2` finite where a moment is 0.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.positive("eps", eps)

  def init_fn(params):
    return ScaleByExadamState(
        count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype), nu=init_moment(params)
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_exadam", updates, state.nu, ("updates", "state"))
    count = state.count
    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    mu = ema(updates, state.mu, beta1, 1)
    nu = ema(updates, state.nu, beta2, 2)
    t = count + 1
    b1t, b2t = power(beta1, t), power(beta2, t)
    c1, c2 = 1.0 / (1.0 - b1t), 1.0 / (1.0 - b2t)
    e = resolve(eps, count)
    scale = jnp.log(math.sqrt(2.0) * jnp.sqrt((t + 1).astype(b1t.dtype))) if log_step_size else 1.0

    def step(g, m, v):
      dt = compute_dtype(g.dtype)
      gg, m, v = g.astype(dt), m.astype(dt), v.astype(dt)
      m2 = jnp.square(m)
      d1 = 1.0 + b2t * (v / (v + e))
      d2 = 1.0 + b1t * (m2 / (m2 + e))
      num = (c1 * d1) * (m + gg)
      return (scale * num / (jnp.sqrt(c2 * v * d2) + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, nu)
    return out, ScaleByExadamState(count=optax.safe_int32_increment(count), mu=mu, nu=nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
