"""Adam-family and adaptive-step optimizers, each a short chain of moment transformations."""

from typing import Any

import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_adagrad import scale_by_adagrad
from gradtx._src.moments.scale_by_adagrad_norm import scale_by_adagrad_norm
from gradtx._src.moments.scale_by_adam import scale_by_adam
from gradtx._src.moments.scale_by_amsgrad import scale_by_amsgrad
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.moments.scale_by_rms import scale_by_rms
from gradtx._src.moments.trace import trace


@register(
    family="moments",
    paper="Adam: A Method for Stochastic Optimization",
    arxiv="1412.6980",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 3e-3},
)
def adam(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    eps_root: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adam: bias-corrected first over second moment, times the learning rate.

  .. math::
    u_t = -\eta_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)
    \quad\text{(see :func:`scale_by_adam`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    eps_root: added inside the square root, >= 0.
    nesterov: NAdam's Nesterov momentum.
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> opt = gradtx.adam(1e-3)
    >>> state = opt.init(params)
    >>> updates, state = opt.update(grads, state, params)

  References:
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980.

  Notes:
    Equals ``torch.optim.Adam(weight_decay=0)`` and ``optax.adam``. For torch's coupled
    ``weight_decay`` chain :func:`add_decayed_weights` before :func:`scale_by_adam`.
  """
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root=eps_root, nesterov=nesterov, mu_dtype=mu_dtype),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="Decoupled Weight Decay Regularization",
    arxiv="1711.05101",
    test_kwargs={"learning_rate": 0.02, "weight_decay": 1e-4},
    race_kwargs={"learning_rate": 3e-3, "weight_decay": 1e-2},
    static_args=("mask",),
)
def adamw(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 1e-2,
    *,
    mask: Any = None,
    eps_root: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdamW: Adam with decoupled weight decay.

  .. math::
    u_t = -\eta_t \left( \hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda p_{t-1} \right).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    weight_decay: :math:`\lambda`, >= 0 (multiplied by the learning rate, as in torch).
    mask: which leaves decay (see :func:`add_decayed_weights`).
    eps_root: added inside the square root, >= 0.
    nesterov: NAdam's Nesterov momentum.
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.adamw(1e-3, weight_decay=1e-2, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))

  References:
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.

  Notes:
    Default ``weight_decay`` is torch's 1e-2 (optax uses 1e-4). The decay is multiplied by the
    learning rate, as in ``torch.optim.AdamW`` and ``optax.adamw``; the paper's :math:`\lambda`
    is not (paper :math:`\lambda` = torch ``lr * weight_decay``). For the paper's fully decoupled
    form chain :func:`add_decayed_weights` after the learning rate, with its own schedule.
  """
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root=eps_root, nesterov=nesterov, mu_dtype=mu_dtype),
      add_decayed_weights(weight_decay, mask=mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="On the Convergence of Adam and Beyond",
    arxiv="1904.09237",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 3e-3},
)
def amsgrad(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AMSGrad: Adam with the running maximum of the raw second moment.

  .. math::
    u_t = -\eta_t \frac{m_t / (1-\beta_1^t)}{\sqrt{\max_{s \le t} v_s} / \sqrt{1-\beta_2^t} + \epsilon}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_amsgrad(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> opt = gradtx.amsgrad(1e-3)

  References:
    Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", arXiv:1904.09237.

  Notes:
    Matches ``torch.optim.Adam(amsgrad=True)``, not ``optax.amsgrad`` (which takes the maximum of
    the bias-corrected moment); see :func:`scale_by_amsgrad`.
  """
  return optax.chain(
      scale_by_amsgrad(b1, b2, eps, mu_dtype=mu_dtype),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="Lecture 6.5 - RMSProp (Tieleman & Hinton, 2012)",
    test_kwargs={"learning_rate": 0.005, "momentum": 0.5},
    race_kwargs={"learning_rate": 1e-3},
)
def rmsprop(
    learning_rate: Any,
    decay: Any = 0.99,
    eps: Any = 1e-8,
    *,
    momentum: Any = 0.0,
    centered: bool = False,
    nesterov: bool = False,
    initial_scale: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
  r"""RMSProp with torch semantics, optional momentum and centering.

  .. math::
    v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad d_t = g_t / (\sqrt{v_t} + \epsilon),\quad
    b_t = \mu b_{t-1} + d_t,\quad u_t = -\eta_t b_t.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    decay: :math:`\rho`, in [0, 1).
    eps: added outside the square root, >= 0.
    momentum: :math:`\mu`, in [0, 1); a Python 0 leaves out the momentum buffer.
    centered: divide by an estimate of the standard deviation instead of the RMS.
    nesterov: Nesterov look-ahead on the momentum buffer.
    initial_scale: initial value of :math:`v`.

  Returns:
    ``chain(scale_by_rms, [trace], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.rmsprop(1e-3, momentum=0.9)

  References:
    Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning
    (2012).

  Notes:
    Matches ``torch.optim.RMSprop`` (decay 0.99, eps outside the square root, momentum buffer of
    unscaled steps). ``optax.rmsprop`` defaults to decay 0.9, puts eps inside the square root and
    keeps its momentum buffer after the learning rate (different under a schedule).
  """
  stages = [scale_by_rms(decay, eps, initial_scale=initial_scale, centered=centered)]
  if not is_static_zero(momentum) or nesterov:
    stages.append(trace(momentum, nesterov=nesterov))
  stages.append(scale_by_learning_rate(learning_rate))
  return optax.chain(*stages)


@register(
    family="moments",
    paper="Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
    test_kwargs={"learning_rate": 0.5},
    race_kwargs={"learning_rate": 3e-2},
)
def adagrad(
    learning_rate: Any,
    initial_accumulator_value: float = 0.0,
    eps: Any = 1e-10,
) -> optax.GradientTransformationExtraArgs:
  r"""AdaGrad with torch semantics.

  .. math::
    s_t = s_{t-1} + g_t^2,\qquad u_t = -\eta_t g_t / (\sqrt{s_t} + \epsilon).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    initial_accumulator_value: initial :math:`s`, >= 0.
    eps: added outside the square root, >= 0.

  Returns:
    ``chain(scale_by_adagrad(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> opt = gradtx.adagrad(1e-2)

  References:
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization", JMLR 12 (2011).

  Notes:
    Matches ``torch.optim.Adagrad``; ``optax.adagrad`` starts at 0.1 with eps inside the root.
  """
  return optax.chain(
      scale_by_adagrad(initial_accumulator_value, eps),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="SGD with AdaGrad Stepsizes: Full Adaptivity with High Probability to Unknown "
    "Parameters, Unbounded Gradients and Affine Variance",
    arxiv="2302.08783",
    test_kwargs={"learning_rate": 1.0},
    race_kwargs={"learning_rate": 1.0},
)
def adagrad_norm(
    learning_rate: Any,
    initial_accumulator_value: float = 0.0,
    eps: Any = 0.0,
    *,
    delayed: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""SGD with AdaGrad-Norm's scalar step size.

  .. math::
    b_t^2 = b_{t-1}^2 + \lVert g_t \rVert^2,\qquad u_t = -\eta_t g_t / (b_t + \epsilon).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    initial_accumulator_value: :math:`b_0^2`, >= 0.
    eps: added to :math:`b_t`, >= 0.
    delayed: use :math:`b_{t-1}` (needs ``initial_accumulator_value > 0``).

  Returns:
    ``chain(scale_by_adagrad_norm(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> opt = gradtx.adagrad_norm(1.0)

  References:
    Attia & Koren, "SGD with AdaGrad Stepsizes: Full Adaptivity with High Probability to Unknown
    Parameters, Unbounded Gradients and Affine Variance", arXiv:2302.08783.

  Notes:
    The norm is global (all leaves together), as in the paper; optax has no counterpart.
  """
  return optax.chain(
      scale_by_adagrad_norm(initial_accumulator_value, eps, delayed=delayed),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="On the importance of initialization and momentum in deep learning",
    test_kwargs={"learning_rate": 0.002, "momentum": 0.9},
    race_kwargs={"learning_rate": 0.05, "momentum": 0.9},
)
def sgd(
    learning_rate: Any,
    momentum: Any = 0.0,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
    *,
    dampening: Any = 0.0,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

  .. math::
    g_t \leftarrow g_t + \lambda p_{t-1},\quad b_t = \mu b_{t-1} + (1-\tau) g_t,\quad
    u_t = -\eta_t (g_t + \mu b_t) \ \text{(nesterov)}\ \text{else}\ -\eta_t b_t.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    momentum: :math:`\mu`, in [0, 1); a Python 0 leaves out the buffer.
    nesterov: Nesterov look-ahead (needs momentum > 0).
    weight_decay: coupled L2 coefficient :math:`\lambda`, >= 0, added to the gradient first.
    dampening: :math:`\tau`, in [0, 1).
    mu_dtype: dtype of the momentum buffer.

  Returns:
    ``chain([add_decayed_weights], [trace], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.sgd(0.1, momentum=0.9, nesterov=True)

  References:
    Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
    learning", ICML 2013.

  Notes:
    Matches ``torch.optim.SGD`` (coupled weight decay, first-step rule for dampening).
  """
  if nesterov and is_static_zero(momentum):
    raise ValueError("sgd: nesterov=True needs momentum > 0, got momentum=0.")
  validate.beta("momentum", momentum)
  stages = []
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay))
  if not is_static_zero(momentum):
    stages.append(trace(momentum, dampening=dampening, nesterov=nesterov, mu_dtype=mu_dtype))
  stages.append(scale_by_learning_rate(learning_rate))
  return optax.chain(*stages)
