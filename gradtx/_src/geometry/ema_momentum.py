"""Exponential-moving-average momentum, optionally with Muon's Nesterov look-ahead."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class EmaMomentumState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # the EMA of gradients, in mu_dtype


def ema_momentum(
    b1: Any = 0.9,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Keep an EMA of the gradients and return it (or its Nesterov look-ahead).

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    u_t = (1-\beta_1) g_t + \beta_1 m_t \ \text{(nesterov)}\quad\text{else}\quad u_t = m_t.

  The momentum of Signum, normalized SGD, Muon and AuON; no bias correction (the direction
  maps that follow are scale-invariant).

  Args:
    b1: the decay :math:`\beta_1`, in [0, 1); a float, array or schedule.
    nesterov: return Muon's look-ahead :math:`(1-\beta_1) g_t + \beta_1 m_t`.
    mu_dtype: dtype of the buffer; None keeps the gradients' dtype.

  Returns:
    A gradient transformation.

  Example:
    >>> tx = optax.chain(gradtx.geometry.ema_momentum(0.9), gradtx.geometry.scale_by_sign())

  References:
    Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems", arXiv:1802.04434;
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024).

  Notes:
    The buffer starts at zero and is an EMA (the current Muon reference); early Muon versions
    and torch-style momentum sum ``m = b m + g``, which differs by the factor :math:`1-\beta_1`
    (absorbed by the learning rate, invisible after a scale-invariant map).
  """
  validate.beta("b1", b1)

  def init_fn(params):
    return EmaMomentumState(count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("ema_momentum", updates, state.mu, ("updates", "state"))
    beta = resolve(b1, state.count)

    def one(g, m):
      dt = compute_dtype(m.dtype)
      gg = g.astype(dt)
      new = beta * m.astype(dt) + (1.0 - beta) * gg
      out = (1.0 - beta) * gg + beta * new if nesterov else new
      return out.astype(g.dtype), new.astype(m.dtype)

    pairs = jax.tree.map(one, updates, state.mu)
    out = jax.tree.map(lambda _, p: p[0], updates, pairs)
    mu = jax.tree.map(lambda _, p: p[1], updates, pairs)
    return out, EmaMomentumState(count=optax.safe_int32_increment(state.count), mu=mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
