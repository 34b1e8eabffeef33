"""Sophia: clipped momentum over an EMA of a Hessian-diagonal estimate refreshed every k steps."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradtx._src.core import errors, keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.curvature.diag_source import hessian_diag_source
from gradtx._src.curvature.gauss_newton import estimate_gauss_newton_diagonal
from gradtx._src.curvature.probes import PROBES


class ScaleBySophiaState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # EMA of gradients, in mu_dtype
  h: optax.Updates  # EMA of the Hessian-diagonal estimate, in the params' dtype
  key: jax.Array  # raw PRNG key, split every step


def scale_by_sophia(
    b1: Any = 0.965,
    b2: Any = 0.99,
    rho: Any = 0.04,
    eps: Any = 1e-12,
    update_interval: int = 10,
    *,
    estimator: str = "hutchinson",
    probe: str = "rademacher",
    num_probes: int = 1,
    key: Any = 0,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by Sophia's clipped ratio of momentum to the estimated Hessian diagonal.

  .. math::
    h_t = \begin{cases}\beta_2 h_{t-1} + (1-\beta_2)\hat h_t & \text{if } (t-1) \bmod k = 0\\
      h_{t-1} & \text{otherwise}\end{cases},\quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    u_t = \operatorname{clip}\!\left(\frac{m_t}{\max(\rho h_t, \epsilon)}, -1, 1\right).

  :math:`\hat h_t` is Hutchinson's :math:`z \odot (Hz)` of ``obj_fn`` (Sophia-H) or the
  Gauss-Newton-Bartlett estimate of ``logits_fn`` (Sophia-G, see
  :func:`estimate_gauss_newton_diagonal`). On the other steps the estimate is not computed at all
  (``lax.cond``), so those steps cost about what an Adam step costs.

  ``update`` takes keyword extra inputs: ``obj_fn`` (loss of params on the current batch;
  Sophia-H), ``logits_fn`` (logits of params on the current batch; Sophia-G), or
  ``hessian_diag`` (an estimate the training loop computed itself, folded in on refresh steps
  only; it takes precedence over the functions).

  ``update_hessian`` (keyword, a Python bool or None) picks the branch when the training loop
  knows it statically: None (default) refreshes when ``count % update_interval == 0``, decided on
  the device under ``lax.cond``; True refreshes and False skips, with no conditional at all (on a
  GPU a ``lax.cond`` costs a device-to-host copy of the predicate and a sync, a large share of a
  launch-bound step). The key is split every step and the state keeps its structure whichever
  branch runs, so ``update_hessian=(step % update_interval == 0)`` reproduces the default bit for
  bit. With False the estimate inputs (``obj_fn``, ``logits_fn``, ``hessian_diag``) may be
  omitted; True overrides the schedule (a refresh whatever the count).

  Args:
    b1: gradient EMA decay, in [0, 1).
    b2: Hessian EMA decay, in [0, 1).
    rho: :math:`\rho` (the paper's :math:`\gamma`), > 0.
    eps: floor of the denominator, > 0; also neutralises negative Hutchinson values.
    update_interval: :math:`k`, refresh the estimate on steps 1, k+1, 2k+1, ... (Python int).
    estimator: "hutchinson" (Sophia-H) or "gauss_newton" (Sophia-G).
    probe: Hutchinson probe, "rademacher" or "gaussian" (the paper's choice).
    num_probes: Hutchinson probes per refresh (Python int >= 1).
    key: int seed or PRNG key; split every step, probe ``j`` is drawn from ``fold_in(subkey, j)``.
    mu_dtype: dtype of the gradient EMA; None keeps the gradients' dtype.
    axis_name: average the estimate over this mapped axis (data parallelism).

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.curvature.scale_by_sophia(), gradtx.scale_by_learning_rate(1e-4))
    >>> updates, state = tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

    Two jitted steps instead of one with a conditional (each compiles once):

    >>> @functools.partial(jax.jit, static_argnames="refresh")
    ... def train_step(params, state, batch, refresh):
    ...   obj_fn = lambda p: loss(p, batch)
    ...   grads = jax.grad(obj_fn)(params)
    ...   updates, state = tx.update(grads, state, params, obj_fn=obj_fn, update_hessian=refresh)
    ...   return optax.apply_updates(params, updates), state
    >>> for step, batch in enumerate(batches):  # update_interval = 10
    ...   params, state = train_step(params, state, batch, refresh=step % 10 == 0)

  References:
    Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
    Model Pre-training", arXiv:2305.14342.

  Notes:
    Later-paper form (clip at 1, :math:`\rho` inside). Hutchinson probes are Rademacher by
    default (exact on diagonal Hessians; the paper writes Gaussian). The estimate is refreshed
    *before* the step when ``count % k == 0`` (so the first step already uses it), whereas the
    official loop refreshes after the step on ``iter % k == k - 1`` and runs sign momentum until
    then. No bias correction, ``max(rho h, eps)`` instead of the official ``+ 1e-15``, and no
    gradient-norm clipping of the sampled loss.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.positive("rho", rho)
  validate.positive("eps", eps)
  validate.positive_int("update_interval", update_interval)
  validate.one_of("estimator", estimator, ("hutchinson", "gauss_newton"))
  validate.one_of("probe", probe, tuple(PROBES))
  validate.positive_int("num_probes", num_probes)
  seed = keys.as_key(key)

  def init_fn(params):
    return ScaleBySophiaState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        h=init_moment(params),
        key=keys.fresh(seed),
    )

  def update_fn(
      updates, state, params=None, *, obj_fn=None, logits_fn=None, hessian_diag=None, update_hessian=None,
      **extra_args,
  ):
    del extra_args
    check_matching("scale_by_sophia", updates, state.h, ("updates", "state"))
    refresh = _static_refresh(update_hessian)
    new_key, use = keys.split(state.key)  # split every step whatever the branch: same key, same trajectory
    if refresh is False:
      if hessian_diag is not None:
        check_matching("scale_by_sophia", hessian_diag, state.h, ("hessian_diag", "params"))
      h = state.h  # no estimate, no conditional, and no obj_fn/logits_fn needed
    else:
      beta2 = resolve(b2, state.count)
      if hessian_diag is None and estimator == "gauss_newton":
        errors.require(
            "scale_by_sophia", "logits_fn", logits_fn,
            "the logits on the current batch as a function of params (Sophia-G), or hessian_diag=",
            "tx.update(grads, state, params, logits_fn=lambda p: model.apply(p, batch['x']))",
        )
        errors.require(
            "scale_by_sophia", "params", params, "the current parameters", "tx.update(grads, state, params, ...)"
        )

        def estimate(k):
          return estimate_gauss_newton_diagonal(logits_fn, params, k, axis_name=axis_name)
      else:
        estimate = hessian_diag_source(
            "scale_by_sophia", params, state.h, obj_fn=obj_fn, hessian_diag=hessian_diag,
            num_probes=num_probes, probe=probe, axis_name=axis_name,
        )

      def refreshed():  # the only work under the conditional; it returns the new diagonal, nothing else
        return ema(estimate(use), state.h, beta2, 1)

      if refresh:
        h = refreshed()
      else:
        h = jax.lax.cond(state.count % update_interval == 0, refreshed, lambda: state.h)
    mu = ema(updates, state.mu, resolve(b1, state.count), 1)
    r, e = resolve(rho, state.count), resolve(eps, state.count)

    def step(g, m, hh):
      dt = compute_dtype(g.dtype)
      den = jnp.maximum(r * hh.astype(dt), e)
      return jnp.clip(m.astype(dt) / den, -1.0, 1.0).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, h)
    return out, ScaleBySophiaState(count=optax.safe_int32_increment(state.count), mu=mu, h=h, key=new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _static_refresh(update_hessian: Any) -> bool | None:
  """``update_hessian`` as a Python bool, or None (decide from the count under ``lax.cond``)."""
  if update_hessian is None or isinstance(update_hessian, bool):
    return update_hessian
  if isinstance(update_hessian, np.bool_):
    return bool(update_hessian)
  raise TypeError(
      "scale_by_sophia.update: update_hessian must be a Python bool (static: True refreshes the "
      "estimate, False skips it, without a conditional) or None (refresh when count % update_interval "
      f"== 0, under lax.cond), got {type(update_hessian).__name__}. Make it static, e.g. "
      "jax.jit(step, static_argnames='refresh') and tx.update(..., update_hessian=refresh)."
  )
