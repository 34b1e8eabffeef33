"""Adam's bias-corrected moment scaling, optionally with Nesterov (NAdam) momentum."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAdamState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment, in mu_dtype
  nu: optax.Updates  # second moment, in the gradients' dtype


def scale_by_adam(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    eps_root: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by Adam's bias-corrected first over second moment.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
    \hat m_t = m_t / (1-\beta_1^t),\quad \hat v_t = v_t / (1-\beta_2^t),\quad
    u_t = \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon).

  With ``nesterov=True`` (NAdam) the numerator is
  :math:`\beta_1 m_t / (1-\beta_1^{t+1}) + (1-\beta_1) g_t / (1-\beta_1^t)`.

  Args:
    b1: decay of the first moment, in [0, 1); a float, array or schedule.
    b2: decay of the second moment, in [0, 1).
    eps: added outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    nesterov: use Nesterov momentum (Dozat's NAdam).
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980.
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.

  Notes:
    Bias corrections multiply by the scalar :math:`1/(1-\beta^t)` rather than dividing every
    element. Elementwise math runs in float32 or wider and is cast back to the gradients' dtype.
    A schedule for ``b1``/``b2`` is evaluated at the 0-based step, and the bias correction uses
    the current value, as optax does.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)
  validate.non_negative("eps_root", eps_root)

  def init_fn(params):
    return ScaleByAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_adam", updates, state.nu, ("updates", "state"))
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    mu = ema(updates, state.mu, beta1, 1)
    nu = ema(updates, state.nu, beta2, 2)
    t = state.count + 1
    c1 = 1.0 / (1.0 - power(beta1, t))
    c2 = 1.0 / (1.0 - power(beta2, t))
    e, er = resolve(eps, state.count), resolve(eps_root, state.count)

    def step(g, m, v):
      dt = compute_dtype(g.dtype)
      m, v, gg = m.astype(dt), v.astype(dt), g.astype(dt)
      if nesterov:
        c1_next = 1.0 / (1.0 - power(beta1, t + 1))
        num = (beta1 * c1_next) * m + ((1.0 - beta1) * c1) * gg
      else:
        num = c1 * m
      return (num / (jnp.sqrt(v * c2 + er) + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, nu)
    return out, ScaleByAdamState(count=optax.safe_int32_increment(state.count), mu=mu, nu=nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
