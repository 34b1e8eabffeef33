"""Adaptive-step optimizers from recent papers: AdaMomentum, optimistic AMSGrad, Subset-Norm, DoG,
SANIA and XGrad, each a short chain of moment transformations."""

from typing import Any

import optax

from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_adamomentum import scale_by_adamomentum
from gradtx._src.moments.scale_by_dog import scale_by_dog
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.moments.scale_by_optimistic_amsgrad import scale_by_optimistic_amsgrad
from gradtx._src.moments.scale_by_sania import scale_by_sania
from gradtx._src.moments.scale_by_subset_norm import scale_by_subset_norm
from gradtx._src.moments.weight_prediction import predict_params, weight_prediction
from gradtx._src.optimizers.moments import adam


def _decay(weight_decay: Any, mask: Any) -> list[Any]:
  return [] if is_static_zero(weight_decay) else [add_decayed_weights(weight_decay, mask=mask)]


@register(
    family="moments",
    paper="Rethinking Adam: A Twofold Exponential Moving Average Approach",
    arxiv="2106.11514",
    test_kwargs={"learning_rate": 0.01},
    race_kwargs={"learning_rate": 3e-3},
    static_args=("mask",),
)
def adamomentum(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdaMomentum (twofold-EMA Adam): the second moment tracks the momentum, with decoupled decay.

  .. math::
    u_t = -\eta_t \left( \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)}} + \lambda p_{t-1}
    \right),\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) m_t^2 + \epsilon
    \quad\text{(see :func:`scale_by_adamomentum`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: decay of the momentum's second moment, in [0, 1).
    eps: added to the second-moment state each step, >= 0.
    weight_decay: decoupled decay :math:`\lambda` (multiplied by the learning rate), >= 0; a
      Python 0 leaves the stage out.
    mask: which leaves decay (see :func:`add_decayed_weights`).
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_adamomentum, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.adamomentum(1e-3, weight_decay=5e-4)

  References:
    Wang et al., "Rethinking Adam: A Twofold Exponential Moving Average Approach",
    arXiv:2106.11514.

  Notes:
    The issue's working name was ``adam_twofold``; gradtx uses the paper's name. Its first steps
    are about 10x Adam's at the same learning rate (see :func:`scale_by_adamomentum`), so it wants
    a smaller learning rate than Adam. Decay is decoupled, the default of the public
    AdaBelief-derived code; for its L2 mode chain :func:`add_decayed_weights` before
    :func:`scale_by_adamomentum`.
  """
  return optax.chain(
      scale_by_adamomentum(b1, b2, eps, mu_dtype=mu_dtype),
      *_decay(weight_decay, mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="An Optimistic Acceleration of AMSGrad for Nonconvex Optimization",
    arxiv="1903.01435",
    test_kwargs={"learning_rate": 0.01},
    race_kwargs={"learning_rate": 3e-3},
    static_args=("predictor", "mask"),
)
def optimistic_amsgrad(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    predictor: str = "last",
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Optimistic AMSGrad: an AMSGrad step plus an extra step along the predicted next momentum.

  .. math::
    u_t = -\eta_t \left( \theta_t/\sqrt{\hat v_t} + q_{t+1} - q_t + \lambda p_{t-1} \right)
    \quad\text{(see :func:`scale_by_optimistic_amsgrad`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: initial :math:`\hat v`, > 0.
    weight_decay: decoupled decay (multiplied by the learning rate), >= 0; not in the paper, off
      by default.
    predictor: guess of the next gradient, ``"last"`` or ``"zero"``.
    mask: which leaves decay.
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_optimistic_amsgrad, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.optimistic_amsgrad(1e-3)

  References:
    Wang, Li, Karimi & Li, "An Optimistic Acceleration of AMSGrad for Nonconvex Optimization",
    arXiv:1903.01435.

  Notes:
    No bias correction (as in the paper): with b1 = 0.9 the early steps are about 3x an Adam
    step at the same learning rate. See :func:`scale_by_optimistic_amsgrad` for the predictor.
  """
  return optax.chain(
      scale_by_optimistic_amsgrad(b1, b2, eps, predictor=predictor, mu_dtype=mu_dtype),
      *_decay(weight_decay, mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast, "
    "Memory-Reduced Training with Convergence Guarantees",
    arxiv="2411.07120",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 1e-2, "momentum": "subspace", "rank": 8, "update_proj_gap": 50},
    static_args=("subset_size", "momentum", "rank", "update_proj_gap", "mask"),
)
def subset_norm(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-6,
    weight_decay: Any = 0.0,
    *,
    subset_size: Any = "heuristic",
    momentum: str = "ema",
    rank: int | None = None,
    update_proj_gap: int = 200,
    correct_bias: bool = True,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Subset-Norm adaptive steps (optionally with Subspace-Momentum), with decoupled decay.

  .. math::
    u_t = -\eta_t \left( \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{n_t}{\sqrt{s_S}+\epsilon}
    + \lambda p_{t-1} \right)\quad\text{(see :func:`scale_by_subset_norm`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: momentum decay, in [0, 1).
    b2: second-moment decay, in [0, 1] (1: AdaGrad accumulation).
    eps: added outside the square root, >= 0.
    weight_decay: decoupled decay (multiplied by the learning rate), >= 0.
    subset_size: ``"heuristic"`` (rows or columns of each matrix), a non-zero integer, or None.
    momentum: ``"ema"``, ``"subspace"`` (Subspace-Momentum, needs ``rank``) or ``"none"``.
    rank: subspace rank, an integer >= 1 (for ``momentum="subspace"``).
    update_proj_gap: steps between subspace refreshes, an integer >= 1.
    correct_bias: fold the bias correction into the step size.
    mask: which leaves decay.
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain(scale_by_subset_norm, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.subset_norm(1e-3, momentum="subspace", rank=64, update_proj_gap=200)

  References:
    Nguyen & Nguyen, "Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast,
    Memory-Reduced Training with Convergence Guarantees", arXiv:2411.07120.

  Notes:
    The reference code decays the already-updated params; gradtx decays :math:`p_{t-1}` (standard
    decoupled decay; the difference is :math:`O(\eta^2\lambda)`). State per (a, b) matrix,
    a >= b, against Adam's 2ab: ``momentum="ema"``: ab + a; ``"subspace"``: r(a + b) + a;
    ``"none"``: a. E.g. 1024 x 1024 with r = 128: 0.25 + 0.001 floats per parameter against
    Adam's 2.
  """
  return optax.chain(
      scale_by_subset_norm(
          b1, b2, eps, subset_size=subset_size, momentum=momentum, rank=rank,
          update_proj_gap=update_proj_gap, correct_bias=correct_bias, mu_dtype=mu_dtype,
      ),
      *_decay(weight_decay, mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule",
    arxiv="2302.12022",
    test_kwargs={"learning_rate": 1.0},
    race_kwargs={"learning_rate": 1.0},
    static_args=("mask",),
)
def dog(
    learning_rate: Any = 1.0,
    reps_rel: Any = 1e-6,
    eps: Any = 1e-8,
    *,
    layerwise: bool = False,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DoG (or LDoG with ``layerwise=True``): SGD with the parameter-free distance-over-gradients step.

  .. math::
    u_t = -c_t\, \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, (g_t + \lambda p_{t-1})
    \quad\text{(see :func:`scale_by_dog`)}.

  Args:
    learning_rate: the multiplier :math:`c` (1 is DoG proper), a float or a schedule, >= 0.
    reps_rel: relative initial movement, > 0 (1e-6; 1e-4 with batch norm).
    eps: added to :math:`G` inside the square root, >= 0.
    layerwise: LDoG: one step size per leaf.
    weight_decay: coupled L2 coefficient added to the gradient first (as the authors' torch code
      and ``optax.contrib.dog``), >= 0.
    mask: which leaves decay.

  Returns:
    ``chain([add_decayed_weights], scale_by_dog, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.dog()
    >>> updates, state = opt.update(grads, state, params)  # params are required

  References:
    Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
    Schedule", arXiv:2302.12022.

  Notes:
    Matches ``optax.contrib.dog(learning_rate, init_step=("heuristic", reps_rel), eps,
    weight_decay, mask)`` step for step when ``init`` gets the real starting params (tested);
    gradtx reads :math:`x_0` at the first ``update`` instead (see :func:`scale_by_dog`), and adds
    LDoG, which optax lacks. The authors recommend iterate averaging on top.
  """
  return optax.chain(
      *_decay(weight_decay, mask),
      scale_by_dog(reps_rel, eps, layerwise=layerwise),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="SANIA: Polyak-type Optimization Framework Leads to Scale Invariant Stochastic Algorithms",
    arxiv="2312.17369",
    extra_inputs=("value",),
    test_kwargs={"learning_rate": 1.0, "preconditioner": "adam"},
    race_kwargs={"learning_rate": 1.0, "preconditioner": "adam"},
    static_args=("preconditioner",),
)
def sania(
    learning_rate: Any = 1.0,
    preconditioner: str = "adam",
    b2: Any = 0.999,
    eps: Any = 0.1,
    *,
    f_star: Any = 0.0,
    sqrt: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""SANIA: a Polyak-type, scale-invariant step along an AdaGrad- or Adam-SQR direction.

  .. math::
    u_t = -\eta_t\, \tau_t\, g_t / \max(D_t, \epsilon)\quad\text{(see :func:`scale_by_sania`)}.

  Args:
    learning_rate: multiplier of the Polyak step (1 in the paper), a float or a schedule, >= 0.
    preconditioner: ``"adam"`` (Adam-SQR, default) or ``"adagrad"`` (AdaGrad-SQR).
    b2: second-moment decay for ``"adam"``, in [0, 1).
    eps: floor of the preconditioner, > 0.
    f_star: target loss :math:`f^*` (0: interpolation).
    sqrt: take square roots of the preconditioner (not scale invariant).

  Returns:
    ``chain(scale_by_sania, scale_by_learning_rate)``; ``update`` needs ``value=``, the loss at
    the current params on the current batch.

  Example:
    >>> opt = gradtx.sania()
    >>> loss, grads = jax.value_and_grad(loss_fn)(params)
    >>> updates, state = opt.update(grads, state, params, value=loss)

  References:
    Abdukhakimov, Xiang, Kamzolov, Gower & Takac, "SANIA: Polyak-type Optimization Framework
    Leads to Scale Invariant Stochastic Algorithms", arXiv:2312.17369.

  Notes:
    The paper fixes no default preconditioner; gradtx defaults to Adam-SQR because AdaGrad-SQR's
    un-rooted accumulator shrinks the full step like 1/t (on the contract quadratic it removes
    only 13% of the loss in 3000 steps, Adam-SQR all of it). No weight decay: a decay term
    would change the loss whose value drives the step; put the regulariser in the loss instead.
  """
  return optax.chain(
      scale_by_sania(preconditioner, b2, eps, f_star=f_star, sqrt=sqrt),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="XGrad: Boosting Gradient-Based Optimizers With Weight Prediction",
    arxiv="2305.18240",
    test_kwargs={"base": adam(0.02)},
    race_kwargs={"base": adam(3e-3)},
    static_args=("base",),
    gradient_point=predict_params,
)
def xgrad(
    base: optax.GradientTransformation,
    steps: Any = 1,
) -> optax.GradientTransformationExtraArgs:
  r"""XGrad: the base optimizer, with gradients meant to be taken at predicted future weights.

  .. math::
    \hat w_t = w_t + s\,U(S_t),\quad g_t = \nabla f(\hat w_t),\quad w_{t+1} = w_t + u_t(g_t)
    \quad\text{(see :func:`weight_prediction`)}.

  Args:
    base: the optimizer to boost, e.g. ``gradtx.adam(1e-3)``, ``gradtx.sgd(0.1, momentum=0.9)``
      or ``gradtx.adamw(1e-3)``.
    steps: :math:`s`, steps to predict ahead, >= 0.

  Returns:
    ``weight_prediction(base, steps)``; the training loop evaluates the gradient at
    ``gradtx.predict_params(params, state)``.

  Example:
    >>> opt = gradtx.xgrad(gradtx.adam(1e-3))
    >>> state = opt.init(params)
    >>> grads = jax.grad(loss_fn)(gradtx.predict_params(params, state), batch)
    >>> updates, state = opt.update(grads, state, params)

  References:
    Guan et al., "XGrad: Boosting Gradient-Based Optimizers With Weight Prediction",
    arXiv:2305.18240.

  Notes:
    A loop that ignores :func:`predict_params` (and takes gradients at ``params``) runs the base
    optimizer unchanged.
  """
  return weight_prediction(base, steps)
