"""AMSGrad: Adam whose denominator uses the running maximum of the raw second moment."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAmsgradState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment, in mu_dtype
  nu: optax.Updates  # second moment (raw, uncorrected)
  nu_max: optax.Updates  # running maximum of the raw second moment


def scale_by_amsgrad(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by AMSGrad's first moment over the maximum raw second moment.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
    \bar v_t = \max(\bar v_{t-1}, v_t),\\
    u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{\bar v_t} / \sqrt{1-\beta_2^t} + \epsilon}.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added outside the square root, >= 0.
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_amsgrad(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", arXiv:1904.09237.

  Notes:
    gradtx follows ``torch.optim.Adam(amsgrad=True)``: the maximum is taken over the *raw*
    second moment and bias-corrected afterwards. ``optax.amsgrad`` takes the maximum of the
    bias-corrected moment instead; the two differ as soon as the corrected moment decreases
    (gradients 1, 0.1, 0.1 with lr 1 give -0.7408 here and -0.5263 in optax at step 2).
    The paper's algorithm has no bias correction and no eps.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return ScaleByAmsgradState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
        nu_max=init_moment(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_amsgrad", updates, state.nu, ("updates", "state"))
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    mu = ema(updates, state.mu, beta1, 1)
    nu = ema(updates, state.nu, beta2, 2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    t = state.count + 1
    c1 = 1.0 / (1.0 - power(beta1, t))
    rc2 = 1.0 / jnp.sqrt(1.0 - power(beta2, t))
    e = resolve(eps, state.count)

    def step(g, m, vmax):
      dt = compute_dtype(g.dtype)
      return (c1 * m.astype(dt) / (jnp.sqrt(vmax.astype(dt)) * rc2 + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, nu_max)
    new_state = ScaleByAmsgradState(optax.safe_int32_increment(state.count), mu, nu, nu_max)
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
