"""SAM and ASAM: the base optimizer's update of the gradient at an adversarially perturbed point."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import cast_like, check_matching
from gradtx._src.sharpness._perturb import ascent_point


class SamState(NamedTuple):
  count: jax.Array  # int32 step counter (schedules of rho are evaluated at it)
  base_state: optax.OptState  # the wrapped transformation's state


def sam(
    base: optax.GradientTransformation,
    rho: Any = 0.05,
    *,
    adaptive: bool = False,
    normalize: bool = True,
    eta: Any = 0.01,
    mask: Any = None,
    eps: Any = 1e-12,
) -> optax.GradientTransformationExtraArgs:
  r"""Sharpness-aware minimization: apply ``base`` to the gradient at the ascent point.

  .. math::
    e = \rho\, \frac{T^2 g}{\lVert T g \rVert_2 + \epsilon},\qquad
    g_{sam} = \nabla L_B(w + e),\qquad u = \mathrm{base}(g_{sam})\ \text{at}\ w,

  with :math:`T = 1` (SAM) or, with ``adaptive=True`` (ASAM), :math:`T = |w| + \eta` on the
  leaves ``mask`` selects and :math:`T = 1` elsewhere. The norm is global. ``g`` is the incoming
  update (the gradient at ``w``); :math:`g_{sam}` comes from the ``grad_fn=`` extra input,
  evaluated on the same batch.

  Args:
    base: any gradient transformation (optax or gradtx, with or without extra arguments).
    rho: neighbourhood radius :math:`\rho`, >= 0; a float, array or schedule.
    adaptive: ASAM's elementwise scaling :math:`T = |w| + \eta`.
    normalize: divide by :math:`\lVert T g \rVert`; ``False`` gives unnormalized SAM,
      :math:`e = \rho T^2 g`.
    eta: ASAM's offset :math:`\eta`, >= 0 (only with ``adaptive``).
    mask: with ``adaptive``, which leaves are scaled: a bool tree or a callable of params; None
      scales every leaf whose path does not end in ``bias`` (the ASAM code's choice).
    eps: added to the norm, >= 0.

  Returns:
    A gradient transformation whose ``update`` needs ``params`` and ``grad_fn=``, the gradient
    on the current batch as a function of params. Every other keyword (including ``grad_fn``)
    is forwarded to ``base``.

  Example:
    >>> tx = gradtx.sam(gradtx.sgd(0.1, momentum=0.9), rho=0.05)
    >>> grad_fn = jax.grad(lambda p: loss(p, batch))
    >>> updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)

  References:
    Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
    Generalization", arXiv:2010.01412.
    Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
    Learning of Deep Neural Networks", arXiv:2102.11600.

  Notes:
    The norm is guarded with ``eps = 1e-12`` (davda54/sam); the official JAX code divides by the
    bare norm and the ASAM code adds 1e-16. ASAM's paper default is ``rho=0.5``; this wrapper
    keeps SAM's 0.05 for both. davda54/sam's ``adaptive=True`` uses :math:`T=|w|` on every
    leaf: pass ``eta=0.0, mask=lambda p: jax.tree.map(lambda _: True, p)``. m-sharpness (one
    perturbation per device or sub-batch) is the caller's choice of ``grad_fn``; statistics such
    as batch-norm averages must not be updated inside ``grad_fn``. The gradient at ``w + e`` is
    cast to the dtype of the incoming updates.
  """
  validate.non_negative("rho", rho)
  validate.non_negative("eta", eta)
  validate.non_negative("eps", eps)
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    return SamState(count=jnp.zeros([], jnp.int32), base_state=base.init(params))

  def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
    params = errors.require(
        "sam", "params", params, "the current parameters (the ascent step starts there)",
        "tx.update(grads, state, params, grad_fn=grad_fn)",
    )
    grad_fn = errors.require(
        "sam", "grad_fn", grad_fn, "the gradient on the current batch as a function of params",
        "tx.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))",
    )
    check_matching("sam", updates, params, ("updates", "params"))
    r = resolve(rho, state.count)
    point = ascent_point(
        updates, params, r, adaptive=adaptive, eta=resolve(eta, state.count), mask=mask,
        normalize=normalize, eps=resolve(eps, state.count),
    )
    g_sam = cast_like(grad_fn(point), updates)
    out, base_state = base.update(g_sam, state.base_state, params, grad_fn=grad_fn, **extra_args)
    return out, SamState(count=optax.safe_int32_increment(state.count), base_state=base_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
