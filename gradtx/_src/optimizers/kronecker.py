"""Kronecker-factored preconditioned optimizers: Shampoo, SOAP and PSGD-Kron."""

from typing import Any

import jax
import optax

from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.curvature.psgd_kron import scale_by_psgd_kron
from gradtx._src.curvature.shampoo import scale_by_shampoo
from gradtx._src.curvature.soap import add_decayed_weights_after_step, scale_by_soap
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate


@register(
    family="curvature",
    paper="Scalable Second Order Optimization for Deep Learning",
    arxiv="2002.09018",
    # eps 1e-4: the float32 statistics of the contract quadratic reach condition ~1e4, where
    # rounding differences between two compilations of the same step move the roots by ~1e-4.
    test_kwargs={"learning_rate": 0.3, "eps": 1e-4, "precondition_every": 2, "block_size": 8},
    race_kwargs={"learning_rate": 3e-3, "graft": "adam", "precondition_every": 10},
    static_args=(
        "precondition_every",
        "start_preconditioning_step",
        "block_size",
        "max_precond_dim",
        "graft",
        "matrix_root_method",
        "inverse_root",
        "mask",
        "root_sharding",
    ),
)
def shampoo(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-12,
    weight_decay: Any = 0.0,
    *,
    precondition_every: int = 10,
    start_preconditioning_step: int | None = None,
    block_size: int | None = 1024,
    max_precond_dim: int = 8192,
    graft: str | None = "adagrad",
    graft_eps: Any = 1e-8,
    matrix_root_method: str = "eigh",
    inverse_root: int = 4,
    nesterov: bool = False,
    mask: Any = None,
    root_sharding: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Shampoo with blocking, grafting, momentum and decoupled weight decay.

  .. math::
    u_t = -\eta_t \left( m_t + \lambda p_{t-1} \right),\quad m_t = \beta_1 m_{t-1} + (1-\beta_1)
    \frac{\lVert D_{\text{graft}} \rVert}{\lVert P_L G P_R \rVert} P_L G P_R
    \quad\text{(see :func:`scale_by_shampoo`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: momentum decay, in [0, 1).
    b2: statistics decay, in [0, 1).
    eps: absolute damping before the inverse roots, >= 0.
    weight_decay: decoupled decay :math:`\lambda`, >= 0 (multiplied by the learning rate).
    precondition_every: root refresh period.
    start_preconditioning_step: 0-based count before which the grafting direction is used;
      None means ``precondition_every``.
    block_size: largest block side; None for whole matrices.
    max_precond_dim: matrix leaves with a side above this use the diagonal rule.
    graft: "adagrad", "adam", "sgd" or None.
    graft_eps: epsilon of the grafting direction.
    matrix_root_method: "eigh" or "newton".
    inverse_root: root of each factor (4).
    nesterov: Nesterov momentum.
    mask: decay mask (bool tree or callable of params).
    root_sharding: None, or a ``NamedSharding(mesh, P(axes))`` / mesh axis name(s) over which
      the roots of a refresh are spread (see :func:`scale_by_shampoo`).

  Returns:
    ``chain(scale_by_shampoo, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.shampoo(1e-3, block_size=256, graft="adam")

  References:
    Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
    arXiv:1802.09568; Anil et al., "Scalable Second Order Optimization for Deep Learning",
    arXiv:2002.09018.

  Notes:
    See :func:`scale_by_shampoo`. Defaults follow Meta's implementation where libraries differ
    (absolute eps 1e-12, AdaGrad grafting); Google's ``distributed_shampoo`` uses a relative
    eps, RMSProp grafting and starts preconditioning later.
  """
  stages = [
      scale_by_shampoo(
          b1, b2, eps,
          precondition_every=precondition_every,
          start_preconditioning_step=start_preconditioning_step,
          block_size=block_size,
          max_precond_dim=max_precond_dim,
          graft=graft,
          graft_eps=graft_eps,
          matrix_root_method=matrix_root_method,
          inverse_root=inverse_root,
          nesterov=nesterov,
          root_sharding=root_sharding,
      )
  ]
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay, mask=mask))
  stages.append(scale_by_learning_rate(learning_rate))
  return optax.chain(*stages)


# test_kwargs rotate only the short side of the contract quadratic's (4, 3) leaf: rotating both
# makes the second (full-batch, equal to the first) gradient diagonal in the eigenbasis, and its
# rounding-level off-diagonal entries divided by sqrt(v) + eps differ between two compilations.
@register(
    family="curvature",
    paper="SOAP: Improving and Stabilizing Shampoo using Adam",
    arxiv="2409.11321",
    test_kwargs={"learning_rate": 0.03, "weight_decay": 0.0, "precondition_frequency": 2, "max_precond_dim": 3},
    race_kwargs={"learning_rate": 3e-3},
    static_args=("precondition_frequency", "max_precond_dim", "root_sharding"),
)
def soap(
    learning_rate: Any = 3e-3,
    b1: Any = 0.95,
    b2: Any = 0.95,
    eps: Any = 1e-8,
    weight_decay: Any = 0.01,
    *,
    shampoo_beta: Any = -1.0,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    root_sharding: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""SOAP: Adam in the eigenbasis of Shampoo's statistics, with decoupled weight decay.

  .. math::
    p_t = p' - \eta_t \lambda p',\quad p' = p_{t-1} - \eta_t \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
    Q_L \frac{m_t}{\sqrt{v_t}+\epsilon} Q_R^\top \quad\text{(see :func:`scale_by_soap`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    weight_decay: :math:`\lambda`, >= 0; applied to the updated parameters, from the second call.
    shampoo_beta: decay of the statistics; negative means ``b2``.
    precondition_frequency: basis refresh period.
    max_precond_dim: sides longer than this are not rotated.
    root_sharding: None, or a ``NamedSharding(mesh, P(axes))`` / mesh axis name(s) over which
      the eigh / QR of the basis refreshes are spread (see :func:`scale_by_soap`).

  Returns:
    ``chain(scale_by_soap, scale_by_learning_rate, [add_decayed_weights_after_step])``.

  Example:
    >>> opt = gradtx.soap(3e-3)

  References:
    Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321.

  Notes:
    The first call only sets the basis: its update is exactly zero (no decay either), as in the
    official code. The decay acts on the updated parameters (the official order), which differs
    from decaying :math:`p_{t-1}` by :math:`O(\eta^2)`.
  """
  stages = [
      scale_by_soap(
          b1, b2, eps,
          shampoo_beta=shampoo_beta,
          precondition_frequency=precondition_frequency,
          max_precond_dim=max_precond_dim,
          root_sharding=root_sharding,
      ),
      scale_by_learning_rate(learning_rate),
  ]
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights_after_step(weight_decay, learning_rate))
  return optax.chain(*stages)


def _matrices(params: Any) -> Any:
  return jax.tree.map(lambda p: p.ndim >= 2, params)


@register(
    family="curvature",
    paper="Curvature-Informed SGD via General Purpose Lie-Group Preconditioners",
    arxiv="2402.04553",
    needs_key=True,
    test_kwargs={"learning_rate": 0.01, "key": 0},
    race_kwargs={"learning_rate": 1e-3, "key": 0},
    static_args=("preconditioner_update", "max_size_triangular", "precond_init_scale", "clip_rms", "mask"),
)
def psgd_kron(
    learning_rate: Any = 3e-4,
    b1: Any = 0.9,
    weight_decay: Any = 0.0,
    *,
    preconditioner_update: str = "whitening",
    preconditioner_update_probability: Any = None,
    max_size_triangular: int = 8192,
    precond_lr: Any = 0.1,
    precond_init_scale: float = 1.0,
    clip_rms: float | None = 1.1,
    mask: Any = None,
    key: Any = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""PSGD-Kron: momentum preconditioned by a Kronecker-factored whitening (or HVP-fitted) preconditioner.

  .. math::
    u_t = -\eta_t \left( \operatorname{clip}_{RMS}(Q^\top Q \hat m_t) + \lambda p_{t-1} \right)
    \quad\text{(see :func:`scale_by_psgd_kron`; decay on matrices only by default)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: momentum decay, in [0, 1).
    weight_decay: decoupled decay :math:`\lambda`, >= 0 (multiplied by the learning rate).
    preconditioner_update: "whitening" (default) or "hvp" (fit on Hessian-vector pairs; then
      ``update`` needs ``obj_fn=`` or ``hvp_pair=``, see :func:`psgd_kron_hvp`).
    preconditioner_update_probability: a float in (0, 1] or a schedule; None for the kron
      ports' schedule (1 for 500 steps, then decaying to 0.03).
    max_size_triangular: largest side with a triangular factor.
    precond_lr: step size of the preconditioner fit.
    precond_init_scale: initial :math:`P = s I`.
    clip_rms: per-leaf RMS cap of the preconditioned update; None disables it.
    mask: decay mask; None decays leaves with ``ndim >= 2`` only, as the kron ports.
    key: int seed or PRNG key.

  Returns:
    ``chain(scale_by_psgd_kron, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.psgd_kron(3e-4, key=0)

  References:
    Pooladzandi & Li, "Curvature-Informed SGD via General Purpose Lie-Group Preconditioners",
    arXiv:2402.04553; Li, "Preconditioner on Matrix Lie Group for SGD", arXiv:1809.10232.

  Notes:
    See :func:`scale_by_psgd_kron` for the deviations from the kron ports.
  """
  stages = [
      scale_by_psgd_kron(
          b1,
          preconditioner_update=preconditioner_update,
          preconditioner_update_probability=preconditioner_update_probability,
          max_size_triangular=max_size_triangular,
          precond_lr=precond_lr,
          precond_init_scale=precond_init_scale,
          clip_rms=clip_rms,
          key=key,
      )
  ]
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay, mask=_matrices if mask is None else mask))
  stages.append(scale_by_learning_rate(learning_rate))
  return optax.chain(*stages)


@register(
    family="curvature",
    paper="Preconditioned Stochastic Gradient Descent",
    arxiv="1512.04202",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.1, "key": 0},
    race_kwargs={"learning_rate": 3e-3, "key": 0},
    static_args=("max_size_triangular", "precond_init_scale", "clip_rms", "mask"),
)
def psgd_kron_hvp(
    learning_rate: Any = 0.01,
    b1: Any = 0.9,
    weight_decay: Any = 0.0,
    *,
    preconditioner_update_probability: Any = None,
    max_size_triangular: int = 8192,
    precond_lr: Any = 0.1,
    precond_init_scale: float = 1.0,
    clip_rms: float | None = 1.1,
    mask: Any = None,
    key: Any = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""PSGD-Kron in Hessian-vector mode: momentum preconditioned by a Kronecker fit of :math:`|H|^{-1}`.

  .. math::
    u_t = -\eta_t \left( \operatorname{clip}_{RMS}(Q^\top Q \hat m_t) + \lambda p_{t-1} \right),\quad
    Q \text{ fitted on } (v, H v),\ v \sim \mathcal N(0, I),\ \text{so } Q^\top Q \to |H|^{-1}

  (``psgd_kron(..., preconditioner_update="hvp")``; see :func:`scale_by_psgd_kron`). ``update``
  needs ``obj_fn=``, the loss of params on the current batch; the Hessian-vector product is
  computed (forward over reverse) only on the steps that refit the preconditioner.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0 (the preconditioned step is
      Newton-scaled, so larger rates than whitening mode's suit it).
    b1: momentum decay, in [0, 1).
    weight_decay: decoupled decay :math:`\lambda`, >= 0 (multiplied by the learning rate).
    preconditioner_update_probability: a float in (0, 1] or a schedule; None for the kron
      ports' schedule (1 for 500 steps, then decaying to 0.03).
    max_size_triangular: largest side with a triangular factor.
    precond_lr: step size of the preconditioner fit.
    precond_init_scale: initial :math:`P = s I`.
    clip_rms: per-leaf RMS cap of the preconditioned update; None disables it.
    mask: decay mask; None decays leaves with ``ndim >= 2`` only, as the kron ports.
    key: int seed or PRNG key (update coin and probes).

  Returns:
    ``chain(scale_by_psgd_kron, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.psgd_kron_hvp(0.01, key=0)
    >>> updates, state = opt.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Li, "Preconditioned Stochastic Gradient Descent", arXiv:1512.04202; Pooladzandi & Li,
    "Curvature-Informed SGD via General Purpose Lie-Group Preconditioners", arXiv:2402.04553.

  Notes:
    See :func:`scale_by_psgd_kron`. The step around the fit is the kron ports' (momentum, RMS
    cap, update schedule), not psgd_torch's Newton class (gradient-norm clipping, no momentum by
    default); the defaults here are unverified against the paper.
  """
  return psgd_kron(
      learning_rate, b1, weight_decay,
      preconditioner_update="hvp",
      preconditioner_update_probability=preconditioner_update_probability,
      max_size_triangular=max_size_triangular,
      precond_lr=precond_lr,
      precond_init_scale=precond_init_scale,
      clip_rms=clip_rms,
      mask=mask,
      key=key,
  )
