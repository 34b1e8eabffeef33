"""GAM: sharpness-aware update that also penalises the gradient norm near the point (first-order flatness)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import cast_like, check_matching, compute_dtype, global_sq_norm
from gradtx._src.curvature.hvp import hvp
from gradtx._src.sharpness._perturb import ascent_point


class GamState(NamedTuple):
  # int32 step counter (schedules are evaluated at it)
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
  base_state: optax.OptState  # the wrapped transformation's state


def _vdot(a: Any, b: Any) -> jax.Array | int:  # int 0 for empty trees
  leaves = jax.tree.leaves(jax.tree.map(
      lambda x, y: jnp.sum(x.astype(compute_dtype(x.dtype)) * y.astype(compute_dtype(y.dtype))), a, b))
  return sum(leaves)


def gam(
    base: optax.GradientTransformation,
    rho: Any = 0.02,
    rho2: Any = 0.2,
    *,
    b1: Any = 1.0,
    b2: Any = -1.0,
    b3: Any = 1.0,
    gamma: Any = 0.03,
    adaptive: bool = False,
    eta: Any = 0.01,
    mask: Any = None,
    eps: Any = 1e-12,
    hessian: str = "difference",
) -> optax.GradientTransformationExtraArgs:
  r"""Gradient norm aware minimization: SAM plus an ascent on the gradient norm, then ``base``.

  With :math:`\hat x = x / (\lVert x \rVert + \epsilon)` (global norms) and :math:`g_0` the
  incoming gradient at :math:`\theta`:

  .. math::
    g_1 = \nabla L(\theta + \rho \hat g_0),\quad d = g_1 - g_0 \approx \rho H g_0/\lVert g_0\rVert,\\
    \theta_2 = \theta + \rho_2 \hat d,\quad g_2 = \nabla L(\theta_2),\quad
    g_3 = \nabla L(\theta_2 + \rho \hat g_2),\\
    c = b_1 g_1 + b_3 g_3,\quad r = g_0 + |b_2| g_2,\quad
    c \leftarrow c - \gamma\left(r - \frac{\langle r, c\rangle}{\lVert c\rVert^2 + \epsilon} c\right),
    \quad u = \mathrm{base}(c)\ \text{at}\ \theta.

  Args:
    base: any gradient transformation.
    rho: SAM radius :math:`\rho` (the code's ``grad_rho``), >= 0; float, array or schedule.
    rho2: radius of the gradient-norm ascent :math:`\rho_2` (``grad_norm_rho``), >= 0.
    b1: weight of the SAM gradient :math:`g_1` (``grad_beta_1``).
    b2: weight of :math:`g_2` in the reference direction, used as :math:`|b_2|`
      (``grad_beta_2``).
    b3: weight of :math:`g_3` (``grad_beta_3``).
    gamma: strength :math:`\gamma` of the correction orthogonal to :math:`c` (``grad_gamma``).
    adaptive: ASAM-style scaling :math:`T = |w| + \eta` in each ascent step (see :func:`sam`).
    eta: ASAM's offset, >= 0.
    mask: with ``adaptive``, which leaves are scaled (see :func:`sam`).
    eps: added to every norm, >= 0.
    hessian: ``"difference"`` takes :math:`d = g_1 - g_0` (the official code, 3 extra gradient
      evaluations, needs ``grad_fn=``); ``"hvp"`` takes the exact direction :math:`d = H g_0`
      from a forward-over-reverse Hessian-vector product (needs ``obj_fn=`` as well).

  Returns:
    A gradient transformation whose ``update`` needs ``params`` and ``grad_fn=`` (and ``obj_fn=``
    with ``hessian="hvp"``); every keyword is forwarded to ``base``.

  Example:
    >>> tx = gradtx.gam(gradtx.sgd(0.1, momentum=0.9), rho=0.02, rho2=0.2)
    >>> updates, state = tx.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))

  References:
    Zhang, Xu, Yang & Cui, "Gradient Norm Aware Minimization Seeks First-Order Flatness and
    Improves Generalization", arXiv:2303.03108.

  Notes:
    Follows the official code's step, not a closed form of the paper's
    :math:`L + \alpha R^{(1)}`; the mapping of ``(b1, b2, b3, gamma)`` to the paper's
    :math:`\alpha` is not stated in the paper. Norms are guarded with ``eps`` as in the code.
    With ``adaptive`` the scaling :math:`T` is taken at the start of each ascent step
    (:math:`\theta` for the first two, :math:`\theta_2` for the third). The ``"hvp"`` option is
    a gradtx addition: on a quadratic it gives the same direction as ``"difference"``.
  """
  validate.non_negative("rho", rho)
  validate.non_negative("rho2", rho2)
  for name, value in (("b1", b1), ("b2", b2), ("b3", b3), ("gamma", gamma)):
    validate.finite(name, value)
  validate.non_negative("eta", eta)
  validate.non_negative("eps", eps)
  validate.one_of("hessian", hessian, ("difference", "hvp"))
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    return GamState(count=jnp.zeros([], jnp.int32), base_state=base.init(params))

  def update_fn(updates, state, params=None, *, grad_fn=None, obj_fn=None, **extra_args):
    params = errors.require(
        "gam", "params", params, "the current parameters (the ascent steps start there)",
        "tx.update(grads, state, params, grad_fn=grad_fn)",
    )
    grad_fn = errors.require(
        "gam", "grad_fn", grad_fn, "the gradient on the current batch as a function of params",
        "tx.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))",
    )
    if hessian == "hvp":
      errors.require(
          "gam", "obj_fn", obj_fn, "the loss on the current batch as a function of params "
          "(hessian='hvp' differentiates it twice)",
          "tx.update(grads, state, params, grad_fn=grad_fn, obj_fn=lambda p: loss(p, batch))",
      )
    check_matching("gam", updates, params, ("updates", "params"))
    c = state.count
    r1, r2, e = resolve(rho, c), resolve(rho2, c), resolve(eps, c)
    kw = dict(adaptive=adaptive, eta=resolve(eta, c), mask=mask, normalize=True, eps=e)

    def up(x):
      return jax.tree.map(lambda v: v.astype(compute_dtype(v.dtype)), x)

    g0 = up(updates)
    g1 = up(grad_fn(ascent_point(updates, params, r1, **kw)))
    if hessian == "hvp":
      d = up(hvp(obj_fn, params, cast_like(g0, params)))
    else:
      d = jax.tree.map(jnp.subtract, g1, g0)
    theta2 = ascent_point(d, params, r2, **kw)
    g2 = up(grad_fn(theta2))
    g3 = up(grad_fn(ascent_point(g2, theta2, r1, **kw)))
    w1, w2, w3, gm = resolve(b1, c), jnp.abs(resolve(b2, c)), resolve(b3, c), resolve(gamma, c)
    comb = jax.tree.map(lambda x, y: w1 * x + w3 * y, g1, g3)
    ref = jax.tree.map(lambda x, y: x + w2 * y, g0, g2)
    proj = _vdot(ref, comb) / (global_sq_norm(comb) + e)
    comb = jax.tree.map(lambda x, y: x - gm * (y - proj * x), comb, ref)
    out, base_state = base.update(
        cast_like(comb, updates), state.base_state, params, grad_fn=grad_fn, obj_fn=obj_fn,
        **extra_args,
    )
    return out, GamState(count=optax.safe_int32_increment(c), base_state=base_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
