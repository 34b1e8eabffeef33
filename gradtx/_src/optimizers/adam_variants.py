"""Adam variants from recent papers: AdEMAMix, MARS, EXAdam, FAdam, Ano and AdamP."""

from typing import Any

import jax
import optax

from gradtx._src.core.registry import register
from gradtx._src.core.tree import mask_tree
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_adamp import scale_by_adamp
from gradtx._src.moments.scale_by_ademamix import scale_by_ademamix
from gradtx._src.moments.scale_by_ano import scale_by_ano
from gradtx._src.moments.scale_by_exadam import scale_by_exadam
from gradtx._src.moments.scale_by_fadam import scale_by_fadam
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.moments.scale_by_mars import is_mars_leaf, scale_by_mars


@register(
    family="moments",
    paper="The AdEMAMix Optimizer: Better, Faster, Older",
    arxiv="2409.03137",
    test_kwargs={"learning_rate": 0.01, "b3": 0.999, "alpha": 2.0},
    race_kwargs={"learning_rate": 2e-3, "b3": 0.999, "alpha": 5.0},
    static_args=("mask",),
)
def ademamix(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    *,
    b3: Any,
    alpha: Any,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    alpha_schedule: Any = None,
    b3_schedule: Any = None,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdEMAMix: Adam with a slow EMA mixed into the numerator, and decoupled weight decay.

  .. math::
    u_t = -\eta_t \left( \frac{\hat m^{(1)}_t + \alpha_t m^{(2)}_t}{\sqrt{\hat v_t} + \epsilon}
    + \lambda p_{t-1} \right)\quad\text{(see :func:`scale_by_ademamix`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: fast-EMA decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    b3: slow-EMA decay, in [0, 1); required (paper: 0.999 to 0.9999).
    alpha: slow-EMA weight, >= 0; required (paper: 5 or 8).
    eps: added outside the square root, >= 0.
    weight_decay: :math:`\lambda`, >= 0, decoupled and multiplied by the learning rate.
    alpha_schedule: optional schedule of :math:`\alpha_t` (off unless given); see
      :func:`ademamix_alpha_schedule`.
    b3_schedule: optional schedule of :math:`\beta_{3,t}` (off unless given); see
      :func:`ademamix_b3_schedule`.
    mask: which leaves decay (see :func:`add_decayed_weights`).
    mu_dtype: dtype of both EMAs of the gradient.

  Returns:
    ``chain(scale_by_ademamix, add_decayed_weights, scale_by_learning_rate)``.

  Example:
    >>> T = 10_000
    >>> opt = gradtx.ademamix(1e-3, b3=0.9999, alpha=8.0, weight_decay=0.1,
    ...                       alpha_schedule=gradtx.ademamix_alpha_schedule(8.0, T),
    ...                       b3_schedule=gradtx.ademamix_b3_schedule(0.9, 0.9999, T))

  References:
    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
    arXiv:2409.03137.

  Notes:
    ``b3`` and ``alpha`` are keyword-only and required because published defaults disagree
    (official PyTorch alpha 2, official optax code and ``optax.contrib`` 5). With ``alpha=0``
    this is AdamW exactly. Schedules are evaluated at the 0-based step (official optax code);
    the official PyTorch code uses the 1-based step.
  """
  return optax.chain(
      scale_by_ademamix(
          b1, b2, b3=b3, alpha=alpha, eps=eps, alpha_schedule=alpha_schedule,
          b3_schedule=b3_schedule, mu_dtype=mu_dtype,
      ),
      add_decayed_weights(weight_decay, mask=mask),
      scale_by_learning_rate(learning_rate),
  )


def _and_mask(mask: Any, keep: Any) -> Any:
  """A callable mask: the user's ``mask`` (None, tree or callable) AND ``keep(leaf)``."""
  return lambda params: jax.tree.map(lambda m, p: bool(m) and keep(p), mask_tree(mask, params), params)


@register(
    family="moments",
    paper="MARS: Unleashing the Power of Variance Reduction for Training Large Models",
    arxiv="2411.10438",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 3e-3},
    static_args=("mask",),
)
def mars(
    learning_rate: Any,
    b1: Any = 0.95,
    b2: Any = 0.99,
    gamma: Any = 0.025,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    variant: str = "adamw",
    approximate: bool = True,
    optimize_1d: bool = False,
    learning_rate_1d: Any = None,
    b1_1d: Any = 0.9,
    b2_1d: Any = 0.95,
    weight_decay_1d: Any = 0.1,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""MARS-AdamW: AdamW on a variance-reduced, per-leaf unit-norm-clipped gradient.

  .. math::
    c_t = \mathrm{clip}_1\Big(g_t + \gamma \tfrac{\beta_1}{1-\beta_1}(g_t - \tilde g_{t-1})\Big),\quad
    u_t = -\eta_t \left( \frac{\hat m_t(c)}{\sqrt{\hat v_t(c)} + \epsilon} + \lambda p_{t-1} \right)
    \quad\text{(see :func:`scale_by_mars`)}.

  Leaves that are not 2-D use plain AdamW with ``b1_1d``, ``b2_1d``, ``weight_decay_1d`` and
  ``learning_rate_1d`` unless ``optimize_1d=True`` (official routing).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    gamma: variance-reduction scale, >= 0; 0 gives AdamW on clipped gradients.
    eps: added outside the square root, >= 0.
    weight_decay: :math:`\lambda` for MARS leaves, >= 0, decoupled (multiplied by the lr).
    variant: ``"adamw"`` (MARS-AdamW, the default) or ``"lion"`` (MARS-Lion:
      :math:`u_t = -\eta_t(\mathrm{sign}(m_t) + \lambda p_{t-1})`, wants a ~10x smaller lr).
      MARS-Shampoo is not implemented.
    approximate: True (default) uses the previous step's gradient; False is exact MARS and
      needs ``grad_fn=`` (the gradient on the current batch as a function of params) in
      ``update``.
    optimize_1d: apply MARS to the leaves that are not 2-D too.
    learning_rate_1d: learning rate of the AdamW leaves; None uses ``learning_rate``.
    b1_1d: first-moment decay of the AdamW leaves.
    b2_1d: second-moment decay of the AdamW leaves.
    weight_decay_1d: decoupled decay of the AdamW leaves (official default 0.1).
    mask: which leaves decay at all (see :func:`add_decayed_weights`).
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_mars, add_decayed_weights x2, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.mars(3e-3, weight_decay=0.1)
    >>> exact = gradtx.mars(3e-3, approximate=False)
    >>> updates, state = exact.update(grads, state, params, grad_fn=lambda p: jax.grad(loss)(p, batch))

  References:
    Yuan, Liu, Wu, Zhou & Gu, "MARS: Unleashing the Power of Variance Reduction for Training
    Large Models", arXiv:2411.10438.

  Notes:
    The exact variant takes the existing ``grad_fn`` input and evaluates it at the previous
    params it keeps in state, rather than a separate "previous gradient" input: the training
    loop then needs nothing MARS-specific. The official ``lr_1d`` defaults to 3e-3, the same
    as the official ``lr``; here it follows ``learning_rate`` unless given, and when given it
    is its own constant or schedule (the official code scales the main learning rate by the
    constant factor ``lr_1d / lr``, so the two differ only under a learning-rate schedule). Step 1 uses
    :math:`c_1 = g_1` (see :func:`scale_by_mars`).
  """
  mars_leaf = lambda x: is_mars_leaf(x, optimize_1d)
  other_leaf = lambda x: not is_mars_leaf(x, optimize_1d)
  stages = [
      scale_by_mars(
          b1, b2, gamma, eps, variant=variant, approximate=approximate, optimize_1d=optimize_1d, b1_1d=b1_1d,
          b2_1d=b2_1d, mu_dtype=mu_dtype,
      ),
      add_decayed_weights(weight_decay, mask=_and_mask(mask, mars_leaf)),
      add_decayed_weights(weight_decay_1d, mask=_and_mask(mask, other_leaf)),
  ]
  if learning_rate_1d is None:
    stages.append(scale_by_learning_rate(learning_rate))
  else:
    stages.append(optax.masked(scale_by_learning_rate(learning_rate), _and_mask(None, mars_leaf)))
    stages.append(optax.masked(scale_by_learning_rate(learning_rate_1d), _and_mask(None, other_leaf)))
  return optax.chain(*stages)


@register(
    family="moments",
    paper="EXAdam: The Power of Adaptive Cross-Moments",
    arxiv="2412.20302",
    test_kwargs={"learning_rate": 0.005},
    race_kwargs={"learning_rate": 1e-3},
    static_args=("mask",),
)
def exadam(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    log_step_size: bool = False,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""EXAdam: cross-moment debiasing, a gradient-acceleration term and decoupled weight decay.

  .. math::
    u_t = -\eta_t \left( s_t \frac{\tilde m_t + \tilde g_t}{\sqrt{\tilde v_t} + \epsilon}
    + \lambda p_{t-1} \right)\quad\text{(see :func:`scale_by_exadam`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: > 0, used in the debiasing ratios and the denominator.
    weight_decay: :math:`\lambda`, >= 0, decoupled, multiplied by the base learning rate only
      (not by the log factor).
    log_step_size: the first release's growing factor :math:`s_t = \ln\sqrt{2(t+1)}`.
    mask: which leaves decay (see :func:`add_decayed_weights`).
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_exadam, add_decayed_weights, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.exadam(1e-3)

  References:
    Adly, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302.

  Notes:
    Follows the revised paper / current official code (no log factor) by default;
    ``log_step_size=True`` gives the first arXiv release. Its first steps are about 16x an
    Adam step (see :func:`scale_by_exadam`), so it wants a smaller learning rate than Adam.
  """
  return optax.chain(
      scale_by_exadam(b1, b2, eps, log_step_size=log_step_size, mu_dtype=mu_dtype),
      add_decayed_weights(weight_decay, mask=mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="FAdam: Adam is a natural gradient optimizer using diagonal empirical Fisher information",
    arxiv="2405.12807",
    test_kwargs={"learning_rate": 0.05, "weight_decay": 0.0},
    race_kwargs={"learning_rate": 1e-2, "weight_decay": 0.0},
    static_args=("mask",),
)
def fadam(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    weight_decay: Any,
    clip: Any = 1.0,
    p: Any = 0.5,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""FAdam: momentum on the RMS-clipped natural gradient, with weight decay in natural scale.

  .. math::
    u_t = -\eta_t (m_t + \lambda \bar w_t)\quad\text{(see :func:`scale_by_fadam`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: momentum decay, in [0, 1).
    b2: Fisher decay, in [0, 1).
    eps: adaptive-epsilon scale, >= 0.
    weight_decay: :math:`\lambda`, >= 0; required (published values: 0.1, 0.01, 0.001).
    clip: RMS bound :math:`c` of the natural gradient and the decay term, > 0.
    p: Fisher exponent, in (0, 1].
    mask: which leaves decay (None, a bool tree or a callable of params).
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain(scale_by_fadam, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.fadam(1e-3, weight_decay=0.1)

  References:
    Hwang, "FAdam: Adam is a natural gradient optimizer using diagonal empirical Fisher
    information", arXiv:2405.12807.

  Notes:
    ``weight_decay`` is keyword-only and required because the community implementations
    disagree and the paper's value is unconfirmed. The decay is divided by the Fisher term, so
    it lives inside :func:`scale_by_fadam`. The momentum is not bias-corrected: the first
    update is about :math:`-0.1\eta\,\mathrm{sign}(g)`.
  """
  return optax.chain(
      scale_by_fadam(
          b1, b2, eps, weight_decay=weight_decay, clip=clip, p=p, mask=mask, mu_dtype=mu_dtype
      ),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="ANO: Faster is Better in Noisy Landscape",
    test_kwargs={"learning_rate": 0.01},
    race_kwargs={"learning_rate": 1e-3},
    static_args=("mask",),
)
def ano(
    learning_rate: Any,
    b1: Any = 0.92,
    b2: Any = 0.99,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Ano: sign of the momentum times the current gradient's normalised magnitude.

  .. math::
    u_t = -\eta_t \left( \frac{|g_t|}{\sqrt{\hat v_t + \epsilon}} \mathrm{sign}(m_t)
    + \lambda p_{t-1} \right)\quad\text{(see :func:`scale_by_ano`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0 (official default 1e-4).
    b1: momentum decay, in [0, 1).
    b2: second-moment decay, in [0.5, 1).
    eps: added inside the square root, >= 0.
    weight_decay: :math:`\lambda`, >= 0, decoupled (multiplied by the learning rate).
    mask: which leaves decay (see :func:`add_decayed_weights`).
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain(scale_by_ano, add_decayed_weights, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.ano(1e-4)

  References:
    "ANO: Faster is Better in Noisy Landscape" (2025), Zenodo doi:10.5281/zenodo.16422081;
    official code Adrienkgz/ano-experiments.

  Notes:
    ``eps`` sits inside the square root, as in the official code (see :func:`scale_by_ano`).
  """
  return optax.chain(
      scale_by_ano(b1, b2, eps, mu_dtype=mu_dtype),
      add_decayed_weights(weight_decay, mask=mask),
      scale_by_learning_rate(learning_rate),
  )


@register(
    family="moments",
    paper="AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    arxiv="2006.08217",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 3e-3},
    static_args=("mask",),
)
def adamp(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    delta: Any = 0.1,
    wd_ratio: Any = 0.1,
    nesterov: bool = False,
    *,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdamP: AdamW whose step loses its radial component on scale-invariant weights.

  .. math::
    u_t = -\eta_t \left( \frac{\Pi(d_t)}{1-\beta_1^t} + \lambda r\, p_{t-1} \right)
    \quad\text{(see :func:`scale_by_adamp`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root and to the norms, >= 0.
    weight_decay: :math:`\lambda`, >= 0, decoupled (multiplied by the learning rate).
    delta: cosine threshold for scale invariance, >= 0.
    wd_ratio: decay factor on projected leaves, in [0, 1].
    nesterov: Nesterov numerator.
    mask: which leaves decay (None, a bool tree or a callable of params).
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(scale_by_adamp, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.adamp(1e-3, weight_decay=1e-2)

  References:
    Heo, Chun, Oh, Han, Yun, Kim, Uh & Ha, "AdamP: Slowing Down the Slowdown for Momentum
    Optimizers on Scale-invariant Weights", arXiv:2006.08217.

  Notes:
    Matches clovaai/AdamP up to the layout: output units are the last axis in JAX. On leaves
    with ``ndim <= 1``, and on leaves that do not look scale-invariant, it is AdamW exactly.
  """
  return optax.chain(
      scale_by_adamp(
          b1, b2, eps, weight_decay, delta, wd_ratio, nesterov, mask=mask, mu_dtype=mu_dtype
      ),
      scale_by_learning_rate(learning_rate),
  )
