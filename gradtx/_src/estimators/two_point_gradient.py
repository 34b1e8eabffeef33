"""Two-point zeroth-order gradient estimates (SPSA, MeZO) from loss values only, probes regenerated from a key."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.keys import split
from gradtx._src.core.tree import cast_like, check_matching, compute_dtype
from gradtx._src.estimators._inputs import require_params_and_obj_fn
from gradtx._src.estimators._probes import DISTRIBUTIONS, probe, shifted, state_key, template


class TwoPointGradientState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update; the probes are never stored
  evals_per_step: jax.Array  # int32 constant: obj_fn evaluations one update costs (the ZO budget)


def two_point_gradient(
    *,
    key: Any,
    eps: Any = 1e-3,
    num_probes: int = 1,
    distribution: str = "normal",
    difference: str = "central",
) -> optax.GradientTransformationExtraArgs:
  r"""Replace the updates by a two-point zeroth-order estimate from ``obj_fn=`` values.

  .. math::
    p_k = \frac{L(\theta + \epsilon z_k) - L(\theta - \epsilon z_k)}{2\epsilon},\qquad
    \hat g = \frac1K \sum_{k=1}^K p_k z_k,

  with :math:`z_k \sim N(0, I)` (MeZO) or Rademacher (SPSA, where :math:`p/\Delta_i = p\Delta_i`).
  ``difference="forward"`` uses :math:`p_k = (L(\theta + \epsilon z_k) - L(\theta))/\epsilon`
  (DeepZero's RGE). One update costs :math:`2K` loss evaluations (central) or :math:`K + 1`
  (forward), recorded in ``state.evals_per_step``. Each probe is regenerated from the key where
  it is used, so the state holds only the key and the extra memory is independent of the number
  of probes and steps.

  Args:
    key: an int seed or PRNG key, kept in state and split once per update; probe ``k`` of leaf
      ``i`` is drawn from ``fold_in(fold_in(subkey, k), i)``.
    eps: perturbation scale :math:`\epsilon` (MeZO's eps, SPSA's :math:`c_k`), > 0; a float,
      array or schedule.
    num_probes: :math:`K`, an int >= 1, evaluated in a loop.
    distribution: ``"normal"`` (MeZO) or ``"rademacher"`` (SPSA).
    difference: ``"central"`` (two evaluations per probe) or ``"forward"`` (one per probe plus
      one at :math:`\theta`).

  Returns:
    A gradient transformation. The incoming updates serve only as a template for structure and
    dtypes (``None`` uses params); ``update`` needs ``params`` and ``obj_fn=``, the loss on the
    current batch as a function of params.

  Example:
    >>> tx = optax.chain(gradtx.two_point_gradient(key=0), gradtx.scale_by_learning_rate(1e-6))
    >>> updates, state = tx.update(None, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Spall, "Multivariate stochastic approximation using a simultaneous perturbation gradient
    approximation", IEEE Trans. Automatic Control 37(3), 1992.
    Malladi, Gao, Nichani, Damian, Lee, Chen & Arora, "Fine-Tuning Language Models with Just
    Forward Passes", arXiv:2305.17333.

  Notes:
    MeZO perturbs the parameters in place (+eps, -2 eps, +eps); gradtx evaluates
    :math:`L(\theta \pm \epsilon z)` functionally, which is the same estimate up to rounding.
    Both evaluations must use the same batch (``obj_fn`` closes over it). Probes are drawn in
    float32 or wider; the perturbed point is cast to each leaf's dtype, so bf16 params give a
    coarse estimate (prefer float32 params with zeroth-order methods).
  """
  validate.positive("eps", eps)
  validate.positive_int("num_probes", num_probes)
  validate.one_of("distribution", distribution, DISTRIBUTIONS)
  validate.one_of("difference", difference, ("central", "forward"))

  evals = 2 * num_probes if difference == "central" else num_probes + 1

  def init_fn(params):
    del params
    return TwoPointGradientState(
        count=jnp.zeros([], jnp.int32), key=state_key(key), evals_per_step=jnp.asarray(evals, jnp.int32)
    )

  def update_fn(updates, state, params=None, *, obj_fn=None, **extra_args):
    del extra_args
    params, obj_fn = require_params_and_obj_fn(
        "two_point_gradient", params, obj_fn, "probes are centred there"
    )
    if updates is not None:
      check_matching("two_point_gradient", updates, params, ("updates", "params"))
    new_key, use = split(state.key)
    e = resolve(eps, state.count)
    f0 = obj_fn(params) if difference == "forward" else None

    def one(k):
      z = probe(use, k, params, distribution)
      if difference == "central":
        lp, lm = obj_fn(shifted(params, z, e)), obj_fn(shifted(params, z, -e))
        dt = compute_dtype(jnp.result_type(lp))
        p = (lp.astype(dt) - lm.astype(dt)) / (2 * jnp.asarray(e, dt))
      else:
        lp = obj_fn(shifted(params, z, e))
        dt = compute_dtype(jnp.result_type(lp))
        p = (lp.astype(dt) - f0.astype(dt)) / jnp.asarray(e, dt)
      return jax.tree.map(lambda v: p.astype(v.dtype) * v, z)

    est = one(0)
    if num_probes > 1:
      est = jax.lax.fori_loop(1, num_probes, lambda k, acc: jax.tree.map(jnp.add, acc, one(k)), est)
      est = jax.tree.map(lambda a: a * (1.0 / num_probes), est)
    out = cast_like(est, template(updates, params))
    return out, TwoPointGradientState(
        count=optax.safe_int32_increment(state.count), key=new_key, evals_per_step=state.evals_per_step
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
