"""Heavy-ball or Nesterov momentum with torch.optim.SGD semantics."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class TraceState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum buffer, in mu_dtype


def trace(
    momentum: Any = 0.9,
    *,
    dampening: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Accumulate a momentum buffer (heavy ball), optionally returning the Nesterov look-ahead.

  .. math::
    b_1 = g_1,\qquad b_t = \mu b_{t-1} + (1-\tau) g_t \ (t > 1),\qquad
    u_t = g_t + \mu b_t \ \text{(nesterov)} \quad\text{else}\quad u_t = b_t.

  Args:
    momentum: the momentum :math:`\mu`, in [0, 1).
    dampening: :math:`\tau`, in [0, 1); scales the gradient entering the buffer after step 1.
    nesterov: return the Nesterov look-ahead :math:`g_t + \mu b_t`.
    mu_dtype: dtype of the buffer; None keeps the gradients' dtype.

  Returns:
    A gradient transformation.

  Example:
    >>> tx = optax.chain(gradtx.trace(0.9, nesterov=True), gradtx.scale_by_learning_rate(0.1))

  References:
    Polyak, "Some methods of speeding up the convergence of iteration methods" (1964);
    Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
    learning", ICML 2013.

  Notes:
    Matches ``torch.optim.SGD``, including its first-step rule (the buffer starts at the first
    gradient, undampened; visible only with ``dampening > 0``). ``optax.trace`` has no dampening.
    The learning rate is applied after the buffer, so under a learning-rate schedule this differs
    from Sutskever's form, which keeps the learning rate inside the buffer.
  """
  validate.beta("momentum", momentum)
  validate.beta("dampening", dampening)
  if nesterov and isinstance(dampening, (int, float)) and dampening != 0:
    raise ValueError(f"trace: nesterov=True needs dampening=0, got {dampening!r}.")

  def init_fn(params):
    return TraceState(count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("trace", updates, state.mu, ("updates", "state"))
    mu = resolve(momentum, state.count)
    keep = 1.0 - resolve(dampening, state.count)
    first = state.count == 0

    def buffer(g, b):
      dt = compute_dtype(b.dtype)
      g = g.astype(dt)
      return jnp.where(first, g, mu * b.astype(dt) + keep * g).astype(b.dtype)

    new_trace = jax.tree.map(buffer, updates, state.mu)

    def out(g, b):
      dt = compute_dtype(g.dtype)
      d = g.astype(dt) + mu * b.astype(dt) if nesterov else b
      return d.astype(g.dtype)

    return jax.tree.map(out, updates, new_trace), TraceState(
        optax.safe_int32_increment(state.count), new_trace
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
