"""SANIA: a Polyak-type step size along a diagonally preconditioned direction, from the loss value."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.tree import check_matching, scalar_dtype

PRECONDITIONERS = ("adagrad", "adam")


class ScaleBySaniaState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  nu: optax.Updates  # sum of g**2 ("adagrad") or EMA of g**2 ("adam"), same tree as params


def scale_by_sania(
    preconditioner: str = "adam",
    b2: Any = 0.999,
    eps: Any = 0.1,
    *,
    f_star: Any = 0.0,
    sqrt: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by SANIA's Polyak-type step along a diagonally preconditioned gradient.

  .. math::
    B_t = \max(D_t, \epsilon),\quad s_t = g_t / B_t,\quad q_t = \langle g_t, s_t \rangle,\quad
    c_t = \max(f_t - f^*, 0) / q_t,\\
    \tau_t = 1 - \sqrt{1 - 2 c_t}\ \text{if}\ 2 c_t \le 1\ \text{else}\ 1,\qquad u_t = \tau_t s_t,

  with :math:`D_t = \sum_{s \le t} g_s^2` (AdaGrad-SQR, ``"adagrad"``) or
  :math:`D_t = \hat v_t` (Adam-SQR, ``"adam"``: the bias-corrected EMA of :math:`g^2`), no square
  root unless ``sqrt=True``. :math:`\tau_t` is the smallest root of the model
  :math:`f_t - \tau q_t + \tfrac{\tau^2}{2} q_t = f^*` along :math:`-s_t`, or the model's
  minimiser :math:`\tau = 1` when it has no root. :math:`q` is global over all leaves.

  Args:
    preconditioner: ``"adam"`` (default) or ``"adagrad"``.
    b2: decay of the second moment for ``"adam"``, in [0, 1) (ignored for ``"adagrad"``).
    eps: floor of the preconditioner, > 0 (the authors' torch code uses 0.1).
    f_star: the optimal (or target) loss :math:`f^*`; 0 assumes interpolation.
    sqrt: use :math:`\sqrt{D_t}` (AdaGrad/Adam proper; loses scale invariance).

  Returns:
    A gradient transformation whose ``update`` needs ``value=``, the loss at the current params
    on the current batch; apply ``scale_by_learning_rate(1.0)`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_sania(), gradtx.scale_by_learning_rate(1.0))
    >>> loss, grads = jax.value_and_grad(loss_fn)(params)
    >>> updates, state = tx.update(grads, state, params, value=loss)

  References:
    Abdukhakimov, Xiang, Kamzolov, Gower & Takac, "SANIA: Polyak-type Optimization Framework
    Leads to Scale Invariant Stochastic Algorithms", arXiv:2312.17369.

  Notes:
    The floor :math:`\max(D, \epsilon)` follows the authors' torch code (their numpy code adds
    eps instead). A loss below ``f_star`` is treated as ``f_star`` (:math:`c = 0`, no step) rather
    than giving a negative :math:`\tau`, so :math:`0 \le \tau \le 1` always. A zero gradient gives
    a zero update. The Hutchinson preconditioner of the paper needs Hessian-vector products and
    lives with the curvature family.
  """
  validate.one_of("preconditioner", preconditioner, PRECONDITIONERS)
  validate.beta("b2", b2)
  validate.positive("eps", eps)
  validate.finite("f_star", f_star)

  def init_fn(params):
    return ScaleBySaniaState(
        count=jnp.zeros([], jnp.int32),
        nu=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.asarray(p).dtype), params),
    )

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del params, extra_args
    value = errors.require(
        "scale_by_sania", "value", value,
        "the loss at the current params on the current batch",
        "loss, grads = jax.value_and_grad(loss_fn)(params); tx.update(grads, state, params, value=loss)",
    )
    check_matching("scale_by_sania", updates, state.nu, ("updates", "state"))
    # Every scalar in one dtype (float32 for float32 grads), so that Python-float and array
    # hyperparameters (optax.inject_hyperparams) give the same rounding: tau = 1 - sqrt(1 - 2c)
    # amplifies it near 2c = 1.
    dt = scalar_dtype(updates)
    e = jnp.asarray(resolve(eps, state.count), dt)
    t = state.count + 1
    if preconditioner == "adagrad":
      nu = jax.tree.map(lambda g, v: (v.astype(dt) + jnp.square(g.astype(dt))).astype(v.dtype), updates, state.nu)
      corr = jnp.asarray(1.0, dt)
    else:
      beta2 = jnp.asarray(resolve(b2, state.count), dt)
      nu = jax.tree.map(
          lambda g, v: (beta2 * v.astype(dt) + (1.0 - beta2) * jnp.square(g.astype(dt))).astype(v.dtype),
          updates, state.nu,
      )
      corr = 1.0 / (1.0 - power(beta2, t).astype(dt))

    def direction(g, v):
      d = corr * v.astype(dt)
      if sqrt:
        d = jnp.sqrt(d)
      return g.astype(dt) / jnp.maximum(d, e)

    s = jax.tree.map(direction, updates, nu)
    pairs = zip(jax.tree.leaves(updates), jax.tree.leaves(s))
    q = jnp.asarray(sum(jnp.sum(g.astype(dt) * x) for g, x in pairs), dt)
    gap = jnp.maximum(jnp.asarray(value, dt) - jnp.asarray(resolve(f_star, state.count), dt), 0.0)
    two_c = jnp.where(q > 0, 2.0 * gap / jnp.where(q > 0, q, 1.0), jnp.inf)
    tau = jnp.where(two_c <= 1.0, 1.0 - jnp.sqrt(jnp.maximum(1.0 - two_c, 0.0)), 1.0)
    out = jax.tree.map(lambda g, x: (tau * x).astype(g.dtype), updates, s)
    return out, ScaleBySaniaState(optax.safe_int32_increment(state.count), nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
