"""Sharpness-aware optimizers: SAM, ASAM and GAM around SGD with momentum, as in their papers."""

from typing import Any

import optax

from gradtx._src.core.registry import register
from gradtx._src.optimizers.moments import sgd
from gradtx._src.sharpness.gam import gam
from gradtx._src.sharpness.sam import sam


@register(
    family="sharpness",
    paper="Sharpness-Aware Minimization for Efficiently Improving Generalization",
    arxiv="2010.01412",
    extra_inputs=("grad_fn",),
    test_kwargs={"learning_rate": 0.002, "rho": 0.005},
    race_kwargs={"learning_rate": 0.05, "rho": 0.05},
    static_args=("m",),
)
def sam_sgd(
    learning_rate: Any,
    rho: Any = 0.05,
    momentum: Any = 0.9,
    *,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
    m: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""SAM around SGD with momentum: the SGD step of the gradient at the ascent point.

  .. math::
    g_{sam} = \nabla L_B\!\left(w + \rho\, g / (\lVert g\rVert_2 + 10^{-12})\right),\qquad
    u = \mathrm{sgd}(g_{sam})\ \text{(see :func:`sam`, :func:`sgd`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    rho: neighbourhood radius, >= 0.
    momentum: heavy-ball momentum, in [0, 1).
    nesterov: Nesterov momentum.
    weight_decay: coupled L2 coefficient added to :math:`g_{sam}` (torch SGD's ``weight_decay``).
    m: m-sharpness sub-batch size (see :func:`sam`); None perturbs once per batch.

  Returns:
    ``sam(sgd(learning_rate, momentum, nesterov, weight_decay), rho, m=m)``; ``update`` needs
    ``params`` and ``grad_fn=`` (with ``m``: ``loss_fn=`` and ``batch=``).

  Example:
    >>> opt = gradtx.sam_sgd(0.1, rho=0.05)
    >>> updates, state = opt.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))

  References:
    Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
    Generalization", arXiv:2010.01412.

  Notes:
    The paper's experiments use SGD with momentum 0.9 as the base; any base works with
    :func:`sam`.
  """
  return sam(sgd(learning_rate, momentum, nesterov, weight_decay), rho, m=m)


@register(
    family="sharpness",
    paper="ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural "
    "Networks",
    arxiv="2102.11600",
    extra_inputs=("grad_fn",),
    test_kwargs={"learning_rate": 0.001, "rho": 0.01},
    race_kwargs={"learning_rate": 0.05, "rho": 0.5},
    static_args=("mask", "m"),
)
def asam_sgd(
    learning_rate: Any,
    rho: Any = 0.5,
    momentum: Any = 0.9,
    *,
    eta: Any = 0.01,
    mask: Any = None,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
    m: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""ASAM around SGD with momentum: SAM with the elementwise scaling :math:`T = |w| + \eta`.

  .. math::
    e = \rho\, T^2 g / \lVert T g\rVert_2,\qquad u = \mathrm{sgd}(\nabla L_B(w + e)).

  Args:
    learning_rate: :math:`\eta_{lr}`, a float or a schedule, >= 0.
    rho: neighbourhood radius, >= 0 (the paper's default 0.5).
    momentum: heavy-ball momentum, in [0, 1).
    eta: offset of the scaling, >= 0.
    mask: which leaves are scaled; None: every leaf whose path does not end in ``bias``.
    nesterov: Nesterov momentum.
    weight_decay: coupled L2 coefficient added to the perturbed gradient.
    m: m-sharpness sub-batch size (see :func:`sam`); None perturbs once per batch.

  Returns:
    ``sam(sgd(...), rho, adaptive=True, eta=eta, mask=mask, m=m)``; ``update`` needs ``params``
    and ``grad_fn=`` (with ``m``: ``loss_fn=`` and ``batch=``).

  Example:
    >>> opt = gradtx.asam_sgd(0.1, rho=0.5)

  References:
    Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
    Learning of Deep Neural Networks", arXiv:2102.11600.

  Notes:
    The norm guard is 1e-12 (the ASAM code adds 1e-16); see :func:`sam`.
  """
  return sam(
      sgd(learning_rate, momentum, nesterov, weight_decay), rho, adaptive=True, eta=eta, mask=mask, m=m
  )


@register(
    family="sharpness",
    paper="Gradient Norm Aware Minimization Seeks First-Order Flatness and Improves Generalization",
    arxiv="2303.03108",
    extra_inputs=("grad_fn",),
    test_kwargs={"learning_rate": 0.0005, "rho": 0.002, "rho2": 0.005},
    race_kwargs={"learning_rate": 0.025, "rho": 0.02, "rho2": 0.2},
)
def gam_sgd(
    learning_rate: Any,
    rho: Any = 0.02,
    rho2: Any = 0.2,
    momentum: Any = 0.9,
    *,
    b1: Any = 1.0,
    b2: Any = -1.0,
    b3: Any = 1.0,
    gamma: Any = 0.03,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
) -> optax.GradientTransformationExtraArgs:
  r"""GAM around SGD with momentum (see :func:`gam` for the combined gradient).

  .. math::
    u = \mathrm{sgd}\big(b_1 g_1 + b_3 g_3 - \gamma\,(r - \mathrm{proj}_c\, r)\big).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    rho: SAM radius, >= 0.
    rho2: gradient-norm ascent radius, >= 0.
    momentum: heavy-ball momentum, in [0, 1).
    b1: weight of the SAM gradient.
    b2: weight of the gradient at the gradient-norm ascent point (used as ``|b2|``).
    b3: weight of the SAM gradient taken from that point.
    gamma: strength of the orthogonal correction.
    nesterov: Nesterov momentum.
    weight_decay: coupled L2 coefficient added to the combined gradient.

  Returns:
    ``gam(sgd(...), rho, rho2, ...)``; ``update`` needs ``params`` and ``grad_fn=``.

  Example:
    >>> opt = gradtx.gam_sgd(0.1)

  References:
    Zhang, Xu, Yang & Cui, "Gradient Norm Aware Minimization Seeks First-Order Flatness and
    Improves Generalization", arXiv:2303.03108.

  Notes:
    Each step costs four gradient evaluations (one of them the incoming gradient). With the
    default weights the combined gradient is about twice the gradient, so the effective step is
    about twice SGD's at the same learning rate (the official code behaves the same way).
  """
  return gam(
      sgd(learning_rate, momentum, nesterov, weight_decay), rho, rho2, b1=b1, b2=b2, b3=b3, gamma=gamma
  )
