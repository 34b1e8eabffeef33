"""Hessian-diagonal optimizers: AdaHessian, Sophia-H, Sophia-G and OASIS."""

from typing import Any

import optax

from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.curvature.scale_by_adahessian import scale_by_adahessian
from gradtx._src.curvature.scale_by_oasis import scale_by_oasis
from gradtx._src.curvature.scale_by_sophia import scale_by_sophia
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate


def _decay_and_lr(learning_rate: Any, weight_decay: Any, mask: Any) -> list[Any]:
  stages = []
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay, mask=mask))
  stages.append(scale_by_learning_rate(learning_rate))
  return stages


@register(
    family="curvature",
    paper="ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning",
    arxiv="2006.00719",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.5, "key": 0, "probe": "gaussian"},
    race_kwargs={"learning_rate": 0.02, "key": 0},
    static_args=("spatial_averaging", "probe", "num_probes", "key", "mask", "axis_name"),
)
def adahessian(
    learning_rate: Any = 0.15,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-4,
    hessian_power: Any = 1.0,
    weight_decay: Any = 0.0,
    *,
    spatial_averaging: str | None = None,
    probe: str = "rademacher",
    num_probes: int = 1,
    key: Any = 0,
    mask: Any = None,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdaHessian: Adam-style steps preconditioned by the RMS of Hutchinson Hessian diagonals.

  .. math::
    u_t = -\eta_t\left(\frac{m_t/(1-\beta_1^t)}{(\sqrt{v_t/(1-\beta_2^t)})^k + \epsilon}
      + \lambda p_{t-1}\right)\quad\text{(see :func:`scale_by_adahessian`)}.

  ``update`` needs ``obj_fn=`` (loss of params on the current batch) or ``hessian_diag=``.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (official default 0.15).
    b1: gradient EMA decay, in [0, 1).
    b2: Hessian EMA decay, in [0, 1).
    eps: added to the denominator, >= 0 (official 1e-4).
    hessian_power: :math:`k`, in [0, 1].
    weight_decay: decoupled decay :math:`\lambda`, multiplied by the learning rate (official).
    spatial_averaging: None or "official" (see :func:`scale_by_adahessian`).
    probe: "rademacher" or "gaussian".
    num_probes: Hutchinson probes per step.
    key: int seed or PRNG key, kept in the state.
    mask: which leaves decay.
    mu_dtype: dtype of the first moment.
    axis_name: average the estimate over this mapped axis.

  Returns:
    ``chain(scale_by_adahessian, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.curvature.adahessian(0.15, key=0)
    >>> updates, state = opt.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Yao et al., "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning",
    arXiv:2006.00719.

  Notes:
    Spatial averaging is off by default (official code: always on); see
    :func:`scale_by_adahessian`.
  """
  return optax.chain(
      scale_by_adahessian(
          b1, b2, eps, hessian_power, spatial_averaging=spatial_averaging, probe=probe,
          num_probes=num_probes, key=key, mu_dtype=mu_dtype, axis_name=axis_name,
      ),
      *_decay_and_lr(learning_rate, weight_decay, mask),
  )


@register(
    family="curvature",
    paper="Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
    arxiv="2305.14342",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.05, "key": 0, "weight_decay": 0.0, "rho": 0.2, "b2": 0.5, "probe": "gaussian"},
    race_kwargs={"learning_rate": 3e-3, "key": 0, "weight_decay": 1e-4},
    static_args=("update_interval", "probe", "num_probes", "key", "mask", "axis_name"),
)
def sophia_h(
    learning_rate: Any = 1e-4,
    b1: Any = 0.965,
    b2: Any = 0.99,
    rho: Any = 0.01,
    eps: Any = 1e-12,
    weight_decay: Any = 0.1,
    update_interval: int = 10,
    *,
    probe: str = "rademacher",
    num_probes: int = 1,
    key: Any = 0,
    mask: Any = None,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Sophia-H: clipped momentum over an EMA of Hutchinson Hessian diagonals.

  .. math::
    u_t = -\eta_t\left(\operatorname{clip}(m_t / \max(\rho h_t, \epsilon), -1, 1)
      + \lambda p_{t-1}\right)\quad\text{(see :func:`scale_by_sophia`)}.

  ``update`` needs ``obj_fn=`` (loss of params on the current batch) or ``hessian_diag=``; the
  Hessian-vector product runs only on refresh steps (every ``update_interval``).
  ``update_hessian=True`` / ``False`` (a Python bool) refreshes or skips without a ``lax.cond``
  when the training loop knows the step statically (see :func:`scale_by_sophia`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    b1: gradient EMA decay, in [0, 1).
    b2: Hessian EMA decay, in [0, 1).
    rho: :math:`\rho` (paper's :math:`\gamma`), > 0.
    eps: floor of the denominator, > 0.
    weight_decay: decoupled decay, multiplied by the learning rate (official ``p *= 1 - lr wd``).
    update_interval: refresh the estimate every this many steps (Python int).
    probe: "rademacher" or "gaussian".
    num_probes: Hutchinson probes per refresh.
    key: int seed or PRNG key, kept in the state.
    mask: which leaves decay.
    mu_dtype: dtype of the gradient EMA.
    axis_name: average the estimate over this mapped axis.

  Returns:
    ``chain(scale_by_sophia, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.curvature.sophia_h(1e-4, key=0)
    >>> updates, state = opt.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
    Model Pre-training", arXiv:2305.14342.

  Notes:
    ``rho`` 0.01 is the paper's Sophia-H value (unverified); betas and weight decay follow the
    official SophiaG. See :func:`scale_by_sophia` for the refresh timing.
  """
  return optax.chain(
      scale_by_sophia(
          b1, b2, rho, eps, update_interval, estimator="hutchinson", probe=probe,
          num_probes=num_probes, key=key, mu_dtype=mu_dtype, axis_name=axis_name,
      ),
      *_decay_and_lr(learning_rate, weight_decay, mask),
  )


@register(
    family="curvature",
    paper="Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
    arxiv="2305.14342",
    extra_inputs=("logits_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.05, "key": 0, "weight_decay": 0.0, "rho": 0.05, "b2": 0.9},
    race_kwargs={"learning_rate": 3e-3, "key": 0, "weight_decay": 1e-4},
    static_args=("update_interval", "key", "mask", "axis_name"),
)
def sophia_g(
    learning_rate: Any = 1e-4,
    b1: Any = 0.965,
    b2: Any = 0.99,
    rho: Any = 0.04,
    eps: Any = 1e-12,
    weight_decay: Any = 0.1,
    update_interval: int = 10,
    *,
    key: Any = 0,
    mask: Any = None,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Sophia-G: clipped momentum over an EMA of Gauss-Newton-Bartlett Hessian diagonals.

  .. math::
    \hat h = B\,\nabla\hat L \odot \nabla\hat L\ \text{(labels sampled from the model)},\quad
    u_t = -\eta_t\left(\operatorname{clip}(m_t / \max(\rho h_t, \epsilon), -1, 1)
      + \lambda p_{t-1}\right).

  ``update`` needs ``logits_fn=`` (the logits of params on the current batch, shape
  ``(..., num_classes)``) or ``hessian_diag=``; the estimate runs only on refresh steps.
  ``update_hessian=True`` / ``False`` (a Python bool) refreshes or skips without a ``lax.cond``
  when the training loop knows the step statically (see :func:`scale_by_sophia`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    b1: gradient EMA decay, in [0, 1).
    b2: Hessian EMA decay, in [0, 1).
    rho: :math:`\rho`, > 0 (official 0.04; with :math:`B` in the estimator it means the same).
    eps: floor of the denominator, > 0.
    weight_decay: decoupled decay, multiplied by the learning rate.
    update_interval: refresh the estimate every this many steps (Python int).
    key: int seed or PRNG key for the sampled labels, kept in the state.
    mask: which leaves decay.
    mu_dtype: dtype of the gradient EMA.
    axis_name: average the estimate over this mapped axis.

  Returns:
    ``chain(scale_by_sophia(estimator="gauss_newton"), [add_decayed_weights],
    scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.curvature.sophia_g(1e-4, key=0)
    >>> updates, state = opt.update(grads, state, params,
    ...                             logits_fn=lambda p: model.apply(p, batch["x"]))

  References:
    Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
    Model Pre-training", arXiv:2305.14342.

  Notes:
    ``rho`` 0.04 and the other defaults follow the official SophiaG; the factor :math:`B` sits in
    the estimator, not in the step (see :func:`estimate_gauss_newton_diagonal`), and the official
    loop's clipping of the sampled-loss gradient is left out. The loss the gradients come from
    should be the softmax cross-entropy of ``logits_fn`` (the estimate is its Gauss-Newton
    diagonal); training loops build both with
    ``gradtx.build_extra_args(spec.extra_inputs, loss_fn, params, batch, logits_fn=...)``.
  """
  return optax.chain(
      scale_by_sophia(
          b1, b2, rho, eps, update_interval, estimator="gauss_newton", key=key,
          mu_dtype=mu_dtype, axis_name=axis_name,
      ),
      *_decay_and_lr(learning_rate, weight_decay, mask),
  )


@register(
    family="curvature",
    paper="Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order Information",
    arxiv="2109.05198",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.1, "key": 0, "probe": "gaussian"},
    # The adaptive (Malitsky-Mishchenko) step size diverges on the minibatch race; a fixed one does not.
    race_kwargs={"learning_rate": 0.2, "key": 0, "adaptive": False, "alpha": 0.1},
    static_args=("num_init_probes", "probe", "key", "axis_name"),
)
def oasis(
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
  r"""OASIS: a truncated Hutchinson-diagonal preconditioner with an adaptive step size.

  .. math::
    w_{k+1} = w_k - \eta_k \hat D_k^{-1} g_k,\quad \hat D_k = \max(|D_k|, \alpha)
    \quad\text{(see :func:`scale_by_oasis`)}.

  ``update`` needs ``params`` and ``obj_fn=`` (loss of params on the current batch) or
  ``hessian_diag=``.

  Args:
    learning_rate: the first step size :math:`\eta_0` (adaptive) or the fixed step size.
    b2: decay of the Hessian-diagonal EMA, in [0, 1).
    alpha: truncation floor, > 0.
    adaptive: adaptive (Malitsky-Mishchenko) step size, or fixed ``learning_rate``.
    num_init_probes: probes averaged for the first estimate.
    exact_prev_grad: recompute :math:`g_{k-1}` on the current batch (one extra gradient).
    probe: "rademacher" or "gaussian".
    key: int seed or PRNG key, kept in the state.
    axis_name: average the estimate over this mapped axis.

  Returns:
    ``chain(scale_by_oasis(...), optax.scale(-1.0))``.

  Example:
    >>> opt = gradtx.curvature.oasis(0.1, key=0)
    >>> updates, state = opt.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Jahani, Rusakov, Shi, Richtarik, Mahoney & Takac, "Doubly Adaptive Scaled Algorithm for
    Machine Learning Using Second-Order Information", arXiv:2109.05198.

  Notes:
    Defaults of ``b2``, ``alpha`` and ``num_init_probes`` are not confirmed against the paper.
  """
  return optax.chain(
      scale_by_oasis(
          learning_rate, b2, alpha, adaptive=adaptive, num_init_probes=num_init_probes,
          exact_prev_grad=exact_prev_grad, probe=probe, key=key, axis_name=axis_name,
      ),
      optax.scale(-1.0),
  )
