"""Ano: direction from the sign of momentum, magnitude from the current gradient over a second moment."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAnoState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum (only its sign is used), in mu_dtype
  nu: optax.Updates  # additive-sign second moment


def scale_by_ano(
    b1: Any = 0.92,
    b2: Any = 0.99,
    eps: Any = 1e-8,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by Ano: :math:`|g_t|/\sqrt{\hat v_t + \epsilon}` in the direction of :math:`\mathrm{sign}(m_t)`.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\mathrm{sign}(g_t^2 - v_{t-1})\, g_t^2,\\
    u_t = \frac{|g_t|}{\sqrt{v_t / (1-\beta_2^t) + \epsilon}}\,\mathrm{sign}(m_t).

  Args:
    b1: momentum decay, in [0, 1); only the sign of the momentum is used.
    b2: second-moment decay, in [0.5, 1) (keeps :math:`v \ge 0`).
    eps: added INSIDE the square root, >= 0 (see Notes).
    mu_dtype: dtype of the momentum; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply weight decay and ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_ano(), gradtx.scale_by_learning_rate(1e-4))

  References:
    "ANO: Faster is Better in Noisy Landscape" (2025), Zenodo doi:10.5281/zenodo.16422081
    (arXiv id not confirmed). Official code: Adrienkgz/ano-experiments (``ano-optimizer``).

  Notes:
    ``eps`` is added inside the square root, as in the official code; this is a deliberate
    exception to gradtx's eps-outside rule, so the default 1e-8 floors the denominator at 1e-4.
    The second-moment rule is not Yogi's (Yogi does not multiply :math:`v` by :math:`\beta_2`).
    ``b2`` must be >= 0.5 so that :math:`v` stays non-negative. The Anolog variant (a log-growing
    ``b1``) is not provided as a flag.
  """
  validate.beta("b1", b1)
  validate.in_range("b2", b2, 0.5, 1.0, right_open=True)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return ScaleByAnoState(
        count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype), nu=init_moment(params)
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_ano", updates, state.nu, ("updates", "state"))
    count = state.count
    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    mu = ema(updates, state.mu, beta1, 1)
    c2 = 1.0 / (1.0 - power(beta2, count + 1))
    e = resolve(eps, count)

    def second(g, v):
      dt = compute_dtype(v.dtype)
      g2, v = jnp.square(g.astype(dt)), v.astype(dt)
      return (beta2 * v + (1.0 - beta2) * jnp.sign(g2 - v) * g2).astype(v.dtype)

    nu = jax.tree.map(second, updates, state.nu)

    def step(g, m, v):
      dt = compute_dtype(g.dtype)
      gg = g.astype(dt)
      mag = jnp.abs(gg) * jax.lax.rsqrt(v.astype(dt) * c2 + e)
      return (mag * jnp.sign(m.astype(dt))).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, nu)
    return out, ScaleByAnoState(count=optax.safe_int32_increment(count), mu=mu, nu=nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
