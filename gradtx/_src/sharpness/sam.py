"""SAM and ASAM: the base optimizer's update of the gradient at an adversarially perturbed point."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import cast_like, check_matching
from gradtx._src.sharpness._perturb import ascent_point
from gradtx._src.sharpness._sub_batches import mean_of_perturbed_gradients, split_batch


class SamState(NamedTuple):
  # int32 step counter (schedules of rho are evaluated at it)
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
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
    m: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Sharpness-aware minimization: apply ``base`` to the gradient at the ascent point.

  .. math::
    e = \rho\, \frac{T^2 g}{\lVert T g \rVert_2 + \epsilon},\qquad
    g_{sam} = \nabla L_B(w + e),\qquad u = \mathrm{base}(g_{sam})\ \text{at}\ w,

  with :math:`T = 1` (SAM) or, with ``adaptive=True`` (ASAM), :math:`T = |w| + \eta` on the
  leaves ``mask`` selects and :math:`T = 1` elsewhere. The norm is global. ``g`` is the incoming
  update (the gradient at ``w``); :math:`g_{sam}` comes from the ``grad_fn=`` extra input,
  evaluated on the same batch.

  With ``m`` set (m-sharpness, Foret et al. section 4.1) the batch :math:`B` is split into
  :math:`k = |B|/m` disjoint sub-batches :math:`S_1, \dots, S_k` of :math:`m` consecutive
  examples, each gets its own ascent point, and the gradients there are averaged:

  .. math::
    e_j = \rho\, \frac{T^2 g_j}{\lVert T g_j \rVert_2 + \epsilon},\quad
    g_j = \nabla L_{S_j}(w),\qquad
    g_{sam} = \frac1k \sum_{j=1}^k \nabla L_{S_j}(w + e_j).

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
    m: the sub-batch size of m-sharpness, an int >= 1 that divides the batch size; None (the
      default) perturbs once for the whole batch, which equals ``m`` = batch size.

  Returns:
    A gradient transformation whose ``update`` needs ``params`` and ``grad_fn=``, the gradient
    on the current batch as a function of params. With ``m`` set it needs ``loss_fn=``,
    ``loss_fn(params, batch) -> scalar`` (the mean loss over the batch's examples), and
    ``batch=``, the current batch as a tree of arrays with a leading example axis, instead of
    ``grad_fn``; the incoming updates are then only a template for structure and dtypes (pass
    ``None`` to skip computing the full-batch gradient). Every keyword is forwarded to ``base``.

  Example:
    >>> tx = gradtx.sam(gradtx.sgd(0.1, momentum=0.9), rho=0.05)
    >>> grad_fn = jax.grad(lambda p: loss(p, batch))
    >>> updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
    >>> tx = gradtx.sam(gradtx.sgd(0.1, momentum=0.9), rho=0.05, m=16)  # m-sharpness
    >>> updates, state = tx.update(None, state, params, loss_fn=loss, batch=batch)

  References:
    Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
    Generalization", arXiv:2010.01412.
    Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
    Learning of Deep Neural Networks", arXiv:2102.11600.

  Notes:
    The norm is guarded with ``eps = 1e-12`` (davda54/sam); the official JAX code divides by the
    bare norm and the ASAM code adds 1e-16. ASAM's paper default is ``rho=0.5``; this wrapper
    keeps SAM's 0.05 for both. davda54/sam's ``adaptive=True`` uses :math:`T=|w|` on every
    leaf: pass ``eta=0.0, mask=lambda p: jax.tree.map(lambda _: True, p)``. Statistics such
    as batch-norm averages must not be updated inside ``grad_fn`` or ``loss_fn``. The gradient
    at ``w + e`` is cast to the dtype of the incoming updates. The official code realises
    m-sharpness by perturbing per device (m = the per-device batch); here the sub-batches are
    consecutive slices of the batch, evaluated under ``vmap``, so ``|B|/m`` gradients are held
    at once (for large ``|B|/m``, perturb per device instead: run a plain ``sam`` per device
    and average its gradients across devices before the base). With ``m`` each sub-batch's
    gradient at ``w`` is computed inside, so a step costs two gradient passes over the batch
    plus whatever the caller spends on the incoming updates.
  """
  validate.non_negative("rho", rho)
  validate.non_negative("eta", eta)
  validate.non_negative("eps", eps)
  if m is not None:
    validate.positive_int("m", m)
  base = optax.with_extra_args_support(base)

  def init_fn(params):
    return SamState(count=jnp.zeros([], jnp.int32), base_state=base.init(params))

  def update_fn(updates, state, params=None, *, grad_fn=None, loss_fn=None, batch=None, **extra_args):
    params = errors.require(
        "sam", "params", params, "the current parameters (the ascent step starts there)",
        "tx.update(grads, state, params, grad_fn=grad_fn)",
    )
    c = state.count
    kw = dict(
        adaptive=adaptive, eta=resolve(eta, c), mask=mask, normalize=normalize, eps=resolve(eps, c)
    )
    r = resolve(rho, c)
    if m is None:
      grad_fn = errors.require(
          "sam", "grad_fn", grad_fn, "the gradient on the current batch as a function of params",
          "tx.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))",
      )
      check_matching("sam", updates, params, ("updates", "params"))
      g_sam = cast_like(grad_fn(ascent_point(updates, params, r, **kw)), updates)
    else:
      example = "tx.update(None, state, params, loss_fn=loss, batch=batch) with loss(params, batch) -> mean loss"
      loss_fn = errors.require(
          "sam", "loss_fn", loss_fn, "the mean loss of a batch as a function (params, batch) -> scalar "
          "(m-sharpness evaluates it on each sub-batch)", example,
      )
      batch = errors.require(
          "sam", "batch", batch, "the current batch, a tree of arrays with a leading example axis",
          example,
      )
      template = params if updates is None else updates
      check_matching("sam", template, params, ("updates", "params"))
      g_sam = mean_of_perturbed_gradients(
          loss_fn, params, split_batch("sam", batch, m), lambda g, w: ascent_point(g, w, r, **kw)
      )
      g_sam = cast_like(g_sam, template)
    given = {k: v for k, v in (("grad_fn", grad_fn), ("loss_fn", loss_fn), ("batch", batch)) if v is not None}
    out, base_state = base.update(g_sam, state.base_state, params, **given, **extra_args)
    return out, SamState(count=optax.safe_int32_increment(c), base_state=base_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
