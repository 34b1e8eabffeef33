"""SGLD: half a gradient step plus Gaussian noise of variance lr * T, optionally RMSProp-preconditioned."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.rng import RNGS, key_from, normal_like
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleBySgldState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update
  nu: optax.Updates  # RMSProp second moment (preconditioner="rmsprop"; else an empty tuple)


def scale_by_sgld(
    learning_rate: Any,
    temperature: Any = 1.0,
    *,
    key: Any = None,
    preconditioner: str | None = None,
    decay: Any = 0.99,
    eps: Any = 1e-5,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""One step of stochastic gradient Langevin dynamics (Welling & Teh's parameterisation).

  .. math::
    u_t = -\tfrac{\eta_t}{2} G_t g_t + \sqrt{\eta_t T}\, G_t^{1/2} \xi_t,\qquad
    \xi_t \sim \mathcal N(0, I),

  where :math:`g_t` is the gradient of the potential :math:`U` (the negative log posterior at
  full-data scale), :math:`G_t = I` without a preconditioner and, with ``"rmsprop"`` (pSGLD),
  :math:`v_t = \rho v_{t-1} + (1-\rho) g_t^2,\ G_t = \operatorname{diag}(1/(\sqrt{v_t} + \lambda))`.

  Args:
    learning_rate: :math:`\eta`, >= 0; a float, array or schedule (paper: :math:`a (b+t)^{-\gamma}`).
    temperature: :math:`T`, >= 0; 1 samples the posterior, 0 gives plain gradient descent at lr/2.
    key: an int seed or PRNG key (required).
    preconditioner: None or ``"rmsprop"`` (pSGLD).
    decay: :math:`\rho` of the RMSProp preconditioner, in [0, 1).
    eps: :math:`\lambda` of the preconditioner, added outside the square root, >= 0.
    rng: ``"fast"`` or ``"threefry"`` (see :func:`add_annealed_noise`).

  Returns:
    A gradient transformation that already includes the learning rate (apply it as is).

  Example:
    >>> tx = gradtx.noise.scale_by_sgld(1e-4, temperature=1.0, key=0)

  References:
    Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", ICML 2011.
    Li, Chen, Carlson & Carin, "Preconditioned Stochastic Gradient Langevin Dynamics for Deep
    Neural Networks", arXiv:1512.07666.

  Notes:
    Drift :math:`\eta/2` and noise variance :math:`\eta T`, exactly as Welling & Teh; codes that
    write :math:`-h\nabla U + \sqrt{2hT}\xi` use :math:`h = \eta/2`. pSGLD's correction term
    :math:`\Gamma` (derivative of the preconditioner) is left out, as in the paper's experiments.
  """
  validate.non_negative("learning_rate", learning_rate)
  validate.non_negative("temperature", temperature)
  validate.one_of("preconditioner", preconditioner, (None, "rmsprop"))
  validate.beta("decay", decay)
  validate.non_negative("eps", eps)
  validate.one_of("rng", rng, RNGS)
  key = key_from(key, "scale_by_sgld")

  def init_fn(params):
    nu = init_moment(params) if preconditioner == "rmsprop" else ()
    return ScaleBySgldState(count=jnp.zeros([], jnp.int32), key=keys.fresh(key), nu=nu)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("scale_by_sgld", updates, params, ("updates", "params"))
    new_key, use = keys.split(state.key)
    lr, temp = resolve(learning_rate, state.count), resolve(temperature, state.count)
    drift = -0.5 * lr
    scale = jnp.sqrt(lr * temp)
    noise = normal_like(use, updates, rng)
    if preconditioner == "rmsprop":
      nu = ema(updates, state.nu, resolve(decay, state.count), 2)
      e = resolve(eps, state.count)

      def step(g, z, v):
        dt = compute_dtype(g.dtype)
        pre = 1.0 / (jnp.sqrt(v.astype(dt)) + e)
        return (drift * pre * g.astype(dt) + scale * jnp.sqrt(pre) * z).astype(g.dtype)

      out = jax.tree.map(step, updates, noise, nu)
    else:
      nu = ()

      def plain_step(g, z):
        dt = compute_dtype(g.dtype)
        return (drift * g.astype(dt) + scale * z).astype(g.dtype)

      out = jax.tree.map(plain_step, updates, noise)
    return out, ScaleBySgldState(optax.safe_int32_increment(state.count), new_key, nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
