"""OASIS: a truncated Hutchinson-diagonal preconditioner with an adaptive step size."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype, scalar_dtype
from gradtx._src.curvature.diag_source import hessian_diag_source
from gradtx._src.curvature.probes import PROBES


class ScaleByOasisState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  w_prev: optax.Params  # parameters at the previous step
  g_prev: optax.Updates  # gradient at the previous step
  d: optax.Updates  # EMA D_k of the Hessian-diagonal estimate, in the params' dtype
  eta_prev: jax.Array  # previous step size
  theta_prev: jax.Array  # previous ratio eta_k / eta_{k-1} (+inf at the start)
  key: jax.Array  # raw PRNG key, split every step




def _total(tree: Any) -> jax.Array | int:  # int 0 for an empty tree
  return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


def scale_by_oasis(
    learning_rate: Any = 1e-2,
    b2: Any = 0.99,
    alpha: Any = 1e-5,
    *,
    adaptive: bool = True,
    num_init_probes: int = 10,
    exact_prev_grad: bool = False,
    probe: str = "rademacher",
    key: Any = 0,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by OASIS: :math:`\eta_k \hat D_k^{-1} g_k` with the Malitsky-Mishchenko step.

  .. math::
    D_0 = \tfrac1{n_0}\textstyle\sum_j z_j \odot (H_0 z_j),\quad
    D_k = \beta_2 D_{k-1} + (1-\beta_2)\, z_k \odot (H_k z_k),\quad
    \hat D_k = \max(|D_k|, \alpha),\\
    \eta_0 = \text{learning\_rate},\quad
    \eta_k = \min\!\left(\sqrt{1+\theta_{k-1}}\,\eta_{k-1},\
      \frac{\lVert w_k - w_{k-1}\rVert_{\hat D_k}}{2\lVert g_k - g_{k-1}\rVert^*_{\hat D_k}}\right),\quad
    \theta_k = \eta_k / \eta_{k-1},\\
    u_k = \eta_k\, g_k / \hat D_k,

  with :math:`\lVert x\rVert_D^2 = \sum D x^2`, :math:`(\lVert x\rVert_D^*)^2 = \sum x^2 / D`
  over all leaves together, and :math:`\theta_0 = +\infty`. The step size is part of the
  scaling, so chain ``optax.scale(-1.0)`` after it (:func:`oasis` does).

  ``update`` needs ``params`` and ``obj_fn=`` (loss of params on the current batch) or
  ``hessian_diag=`` (a precomputed estimate) as keyword extra inputs, every step.

  Args:
    learning_rate: :math:`\eta_0` when ``adaptive``, else the fixed step :math:`\eta_k` (a float
      or a schedule of the 0-based count), > 0.
    b2: decay of the Hessian-diagonal EMA, in [0, 1).
    alpha: truncation floor of :math:`|D_k|`, > 0.
    adaptive: use the adaptive step (True) or the fixed ``learning_rate`` (False).
    num_init_probes: Hutchinson probes averaged for :math:`D_0` (Python int >= 1).
    exact_prev_grad: evaluate :math:`g_{k-1}` as ``grad(obj_fn)(w_{k-1})`` on the *current*
      batch (one extra gradient per step) instead of reusing the stored previous gradient.
    probe: "rademacher" or "gaussian".
    key: int seed or PRNG key; split every step, probe ``j`` is drawn from ``fold_in(subkey, j)``.
    axis_name: average the estimate over this mapped axis (data parallelism).

  Returns:
    A gradient transformation whose output already includes the step size.

  Example:
    >>> tx = optax.chain(gradtx.curvature.scale_by_oasis(0.1), optax.scale(-1.0))
    >>> updates, state = tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Jahani, Rusakov, Shi, Richtarik, Mahoney & Takac, "Doubly Adaptive Scaled Algorithm for
    Machine Learning Using Second-Order Information", arXiv:2109.05198.

  Notes:
    The defaults of ``b2``, ``alpha`` and ``num_init_probes`` are not confirmed against the
    paper. When :math:`g_k = g_{k-1}` exactly (the second term is 0/0 or x/0) the previous step
    size and ratio are kept instead of growing the step by :math:`\sqrt{1+\theta}` forever.
  """
  validate.positive("learning_rate", learning_rate)
  validate.beta("b2", b2)
  validate.positive("alpha", alpha)
  validate.positive_int("num_init_probes", num_init_probes)
  validate.one_of("probe", probe, tuple(PROBES))
  seed = keys.as_key(key)

  def init_fn(params):
    dt = scalar_dtype(params)
    return ScaleByOasisState(
        count=jnp.zeros([], jnp.int32),
        w_prev=jax.tree.map(jnp.copy, params),  # a copy: steps that donate params and state must not alias
        g_prev=init_moment(params),
        d=init_moment(params),
        eta_prev=jnp.zeros([], dt),
        theta_prev=jnp.full([], jnp.inf, dt),
        key=keys.fresh(seed),
    )

  def update_fn(updates, state, params=None, *, obj_fn=None, hessian_diag=None, **extra_args):
    del extra_args
    check_matching("scale_by_oasis", updates, state.d, ("updates", "state"))
    errors.require(
        "scale_by_oasis", "params", params, "the current parameters", "tx.update(grads, state, params, obj_fn=...)"
    )
    estimate = hessian_diag_source(
        "scale_by_oasis", params, state.d, obj_fn=obj_fn, hessian_diag=hessian_diag,
        num_probes=1, probe=probe, axis_name=axis_name,
    )
    new_key, use = keys.split(state.key)
    first = state.count == 0
    beta2 = resolve(b2, state.count)
    a = resolve(alpha, state.count)
    d = jax.lax.cond(
        first,
        lambda: jax.tree.map(lambda x, s: x.astype(s.dtype), estimate(use, num_init_probes), state.d),
        lambda: ema(estimate(use, 1), state.d, beta2, 1),
    )
    dhat = jax.tree.map(lambda x: jnp.maximum(jnp.abs(x.astype(compute_dtype(x.dtype))), a), d)
    sdt = state.eta_prev.dtype
    lr = jnp.asarray(resolve(learning_rate, state.count), sdt)

    if adaptive:
      if exact_prev_grad:
        grad_fn = jax.grad(obj_fn)
        g_prev = jax.lax.cond(first, lambda: state.g_prev, lambda: jax.tree.map(
            lambda x, s: x.astype(s.dtype), grad_fn(state.w_prev), state.g_prev))
      else:
        g_prev = state.g_prev
      def diff(a, b):
        dt = compute_dtype(a.dtype)
        return a.astype(dt) - b.astype(dt)

      dw = jax.tree.map(diff, params, state.w_prev)
      dg = jax.tree.map(diff, updates, g_prev)
      w_norm = jnp.sqrt(_total(jax.tree.map(lambda x, dd: dd * x * x, dw, dhat))).astype(sdt)
      g_norm = jnp.sqrt(_total(jax.tree.map(lambda x, dd: x * x / dd, dg, dhat))).astype(sdt)
      changed = g_norm > 0
      second = w_norm / (2.0 * jnp.where(changed, g_norm, 1.0))
      grown = jnp.sqrt(1.0 + state.theta_prev) * state.eta_prev
      eta_k = jnp.where(changed, jnp.minimum(grown, second), state.eta_prev)
      theta_k = jnp.where(changed, eta_k / state.eta_prev, state.theta_prev)
      eta = jnp.where(first, lr, eta_k)
      theta = jnp.where(first, jnp.asarray(jnp.inf, sdt), theta_k)
    else:
      eta = lr
      theta = jnp.where(first, jnp.asarray(jnp.inf, sdt), lr / state.eta_prev)

    def step(g, dd):
      dt = compute_dtype(g.dtype)
      return (eta.astype(dt) * g.astype(dt) / dd).astype(g.dtype)

    out = jax.tree.map(step, updates, dhat)
    return out, ScaleByOasisState(
        count=optax.safe_int32_increment(state.count),
        w_prev=jax.tree.map(lambda w, s: jnp.asarray(w).astype(s.dtype), params, state.w_prev),
        g_prev=jax.tree.map(lambda g, s: g.astype(s.dtype), updates, state.g_prev),
        d=d,
        eta_prev=eta,
        theta_prev=theta,
        key=new_key,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
