"""Forward gradients: unbiased gradient estimates from forward-mode directional derivatives, no backprop."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.keys import split
from gradtx._src.core.tree import cast_like, check_matching, compute_dtype
from gradtx._src.estimators._probes import DISTRIBUTIONS, probe, state_key, template


class ForwardGradientState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update
  evals_per_step: jax.Array  # int32 constant: forward-mode evaluations (jvps) one update costs


ValueAndJvpFn = Callable[[Any, Any], tuple[jax.Array, jax.Array]]


def _jvp_of(fn: Callable[[Any], jax.Array]) -> ValueAndJvpFn:
  """``(params, tangent) -> (fn(params), grad fn . tangent)`` by one forward-mode pass."""

  def value_and_jvp(params, tangent):
    return jax.jvp(fn, (params,), (tangent,))

  return value_and_jvp


def _estimate(value_and_jvp: ValueAndJvpFn, params: Any, key: jax.Array, num_tangents: int,
              distribution: str) -> tuple[jax.Array, Any]:
  """``(f(params), mean_k (grad . v_k) v_k)`` with tangents ``v_k = probe(key, k)``."""

  def one(k):
    v = cast_like(probe(key, k, params, distribution), params)
    value, dv = value_and_jvp(params, v)
    dv = jnp.asarray(dv)
    return value, jax.tree.map(lambda t: dv.astype(compute_dtype(t.dtype)) * t.astype(compute_dtype(t.dtype)), v)

  value, acc = one(0)
  if num_tangents > 1:
    def body(k, acc):
      return jax.tree.map(jnp.add, acc, one(k)[1])

    acc = jax.lax.fori_loop(1, num_tangents, body, acc)
    acc = jax.tree.map(lambda a: a * (1.0 / num_tangents), acc)
  return value, acc


def _pick(transform: str, obj_fn: Any, value_and_jvp_fn: Any, example: str) -> ValueAndJvpFn:
  """The user's ``value_and_jvp_fn`` if given, else ``jvp`` of ``obj_fn``; TypeError if neither."""
  if value_and_jvp_fn is not None:
    return value_and_jvp_fn
  obj_fn = errors.require(
      transform, "obj_fn", obj_fn,
      "the loss on the current batch as a function of params (or value_and_jvp_fn=, "
      "(params, tangent) -> (loss, directional derivative), for a hand-written forward mode)",
      example,
  )
  return _jvp_of(obj_fn)


def forward_gradient_estimate(
    fn: Callable[[Any], jax.Array] | None,
    params: Any,
    key: Any,
    *,
    num_tangents: int = 1,
    distribution: str = "normal",
    value_and_jvp_fn: ValueAndJvpFn | None = None,
) -> tuple[jax.Array, Any]:
  r"""The loss and its forward-gradient estimate, for use in a hand-written training step.

  .. math::
    \hat g = \frac1K \sum_{k=1}^K (\nabla f(\theta) \cdot v_k)\, v_k, \qquad v_k \sim N(0, I).

  Args:
    fn: scalar loss as a function of ``params``, differentiated by ``jax.jvp``; None when
      ``value_and_jvp_fn`` is given.
    params: the point.
    key: an int seed or PRNG key; tangent ``k`` of leaf ``i`` is drawn from
      ``fold_in(fold_in(key, k), i)``.
    num_tangents: :math:`K`, an int >= 1 (evaluated in a loop: memory does not grow with it).
    distribution: ``"normal"`` or ``"rademacher"``.
    value_and_jvp_fn: ``(params, tangent) -> (f(params), grad f . tangent)``, a hand-written
      forward mode used instead of ``jax.jvp(fn)`` (it takes precedence over ``fn``).

  Returns:
    ``(f(params), estimate)``; the estimate has the params' structure and dtypes.

  Example:
    >>> loss, g = gradtx.estimators.forward_gradient_estimate(lambda p: loss_fn(p, batch), params, key)
    >>> updates, opt_state = opt.update(g, opt_state, params)  # any optax optimizer
    >>> params = optax.apply_updates(params, updates)

  References:
    Baydin, Pearlmutter, Syme, Wood & Torr, "Gradients without Backpropagation", arXiv:2202.08587.
  """
  validate.positive_int("num_tangents", num_tangents)
  validate.one_of("distribution", distribution, DISTRIBUTIONS)
  value_and_jvp = _pick(
      "forward_gradient_estimate", fn, value_and_jvp_fn,
      "forward_gradient_estimate(lambda p: loss(p, batch), params, key)",
  )
  value, est = _estimate(value_and_jvp, params, state_key(key), num_tangents, distribution)
  return value, cast_like(est, params)


def forward_gradient(
    *,
    key: Any,
    num_tangents: int = 1,
    distribution: str = "normal",
) -> optax.GradientTransformationExtraArgs:
  r"""Replace the updates by a forward-gradient estimate computed from ``obj_fn=`` alone.

  .. math::
    (f, d_k) = \mathrm{jvp}(f, \theta, v_k),\qquad
    \hat g = \frac1K \sum_{k=1}^K d_k\, v_k,\qquad v_k \sim N(0, I)\ \text{or Rademacher}.

  One forward-mode pass per tangent (``state.evals_per_step`` :math:`= K`) and no reverse
  pass. :math:`E[\hat g] = \nabla f` whenever :math:`E[v v^T] = I`; for one Gaussian tangent
  :math:`E\lVert\hat g\rVert^2 = (n + 2)\lVert\nabla f\rVert^2`.

  Args:
    key: an int seed or PRNG key, kept in state and split once per update; tangent ``k`` of leaf
      ``i`` is drawn from ``fold_in(fold_in(subkey, k), i)``.
    num_tangents: :math:`K`, an int >= 1, averaged in a loop (memory independent of :math:`K`).
    distribution: ``"normal"`` or ``"rademacher"``.

  Returns:
    A gradient transformation. The incoming updates are only a template for structure and
    dtypes (pass ``None`` to use params instead, so no gradient is ever computed); ``update``
    needs ``params`` and either ``obj_fn=``, the loss on the current batch as a function of
    params (differentiated by ``jax.jvp``), or ``value_and_jvp_fn=``,
    ``(params, tangent) -> (loss, directional derivative)`` on the current batch, for a model
    with its own forward mode; ``value_and_jvp_fn`` takes precedence when both are given.

  Example:
    >>> tx = optax.chain(gradtx.forward_gradient(key=0), gradtx.scale_by_learning_rate(1e-3))
    >>> updates, state = tx.update(None, state, params, obj_fn=lambda p: loss(p, batch))
    >>> # or, with a hand-written forward mode (no jax.jvp inside gradtx):
    >>> updates, state = tx.update(None, state, params, value_and_jvp_fn=lambda p, v: my_jvp(p, v, batch))

  References:
    Baydin, Pearlmutter, Syme, Wood & Torr, "Gradients without Backpropagation", arXiv:2202.08587.

  Notes:
    The paper draws one tangent per step; ``num_tangents > 1`` averages independent tangents
    (as in "Can Forward Gradient Match Backpropagation?"). The tangent is cast to the params'
    dtype before the ``jvp`` and the same cast tangent scales the estimate.
  """
  validate.positive_int("num_tangents", num_tangents)
  validate.one_of("distribution", distribution, DISTRIBUTIONS)

  def init_fn(params):
    del params
    return ForwardGradientState(
        count=jnp.zeros([], jnp.int32), key=state_key(key), evals_per_step=jnp.asarray(num_tangents, jnp.int32)
    )

  def update_fn(updates, state, params=None, *, obj_fn=None, value_and_jvp_fn=None, **extra_args):
    del extra_args
    example = "tx.update(None, state, params, obj_fn=lambda p: loss(p, batch))"
    params = errors.require(
        "forward_gradient", "params", params, "the current parameters (the jvp is taken there)", example
    )
    value_and_jvp = _pick("forward_gradient", obj_fn, value_and_jvp_fn, example)
    if updates is not None:
      check_matching("forward_gradient", updates, params, ("updates", "params"))
    new_key, use = split(state.key)
    _, est = _estimate(value_and_jvp, params, use, num_tangents, distribution)
    out = cast_like(est, template(updates, params))
    return out, ForwardGradientState(
        count=optax.safe_int32_increment(state.count), key=new_key, evals_per_step=state.evals_per_step
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
