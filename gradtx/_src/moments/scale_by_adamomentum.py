"""AdaMomentum: Adam whose second moment tracks the momentum, not the raw gradient (twofold EMA)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByAdamomentumState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment m, in mu_dtype
  nu: optax.Updates  # EMA of m**2 plus eps per step, in the gradients' dtype


def scale_by_adamomentum(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by AdaMomentum's bias-corrected momentum over the RMS of the momentum.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) m_t^2 + \epsilon,\\
    u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)}}.

  Args:
    b1: decay of the first moment, in [0, 1); a float, array or schedule.
    b2: decay of the second moment (of the momentum), in [0, 1).
    eps: added to the second-moment *state* every step (not outside the square root), >= 0.
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adamomentum(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Wang et al., "Rethinking Adam: A Twofold Exponential Moving Average Approach" (AdaMomentum),
    arXiv:2106.11514.

  Notes:
    As in the paper's Algorithm and the public AdaMomentum code (derived from AdaBelief), eps is
    accumulated into :math:`v` each step and there is no outer eps. With ``eps = 0`` and a zero
    gradient on the first step the update is 0/0; keep ``eps > 0``. The first update is about
    :math:`1/(1-\beta_1)` times Adam's (``-9.995 lr`` for ``g = 1`` at the defaults), because
    :math:`\hat v_1` estimates :math:`m_1^2 = (1-\beta_1)^2 g_1^2`.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)

  def init_fn(params):
    return ScaleByAdamomentumState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_adamomentum", updates, state.nu, ("updates", "state"))
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    e = resolve(eps, state.count)
    t = state.count + 1
    c1 = 1.0 / (1.0 - power(beta1, t))
    c2 = 1.0 / (1.0 - power(beta2, t))

    def step(g, m, v):
      dt = compute_dtype(g.dtype)
      m_new = (beta1 * m.astype(dt) + (1.0 - beta1) * g.astype(dt)).astype(m.dtype)
      mm = m_new.astype(dt)
      # (1-b2) m^2 + eps summed first: with eps added last, XLA:CPU recomputes v_new inside the
      # step's final fusion from the donated v, which it must then copy (2.8x Adam at 15 M).
      v_new = (beta2 * v.astype(dt) + ((1.0 - beta2) * jnp.square(mm) + e)).astype(v.dtype)
      return (c1 * mm / jnp.sqrt(c2 * v_new.astype(dt))).astype(g.dtype), m_new, v_new

    treedef = jax.tree.structure(updates)
    leaves = treedef.flatten_up_to(jax.tree.map(step, updates, state.mu, state.nu))
    out, mu, nu = (treedef.unflatten([x[i] for x in leaves]) for i in range(3))
    return out, ScaleByAdamomentumState(optax.safe_int32_increment(state.count), mu, nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
