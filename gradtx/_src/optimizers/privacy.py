"""Differentially private optimizers: DP-SGD, DP-Adam and DP-FTRL, private aggregation then the base method."""

from typing import Any

import optax

from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_adam import scale_by_adam
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.optimizers.moments import sgd
from gradtx._src.privacy.dp_aggregate import dp_aggregate
from gradtx._src.privacy.dp_tree_aggregate import dp_tree_aggregate

_TEST = {"l2_clip": 100.0, "noise_multiplier": 1e-5, "expected_batch_size": 1, "key": 0}
_RACE = {"l2_clip": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 128, "key": 0}  # the race batch
_STATIC = ("key", "denominator", "rng")


@register(
    family="privacy",
    paper="Deep Learning with Differential Privacy",
    arxiv="1607.00133",
    extra_inputs=("per_example_grads",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "momentum": 0.9, **_TEST},
    race_kwargs={"learning_rate": 0.5, **_RACE},
    static_args=_STATIC,
)
def dp_sgd(
    learning_rate: Any,
    l2_clip: Any = 1.0,
    noise_multiplier: Any = 1.0,
    *,
    key: Any = None,
    expected_batch_size: Any = None,
    momentum: Any = 0.0,
    nesterov: bool = False,
    weight_decay: Any = 0.0,
    denominator: str = "expected",
    rng: str = "threefry",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DP-SGD: per-example clipping and Gaussian noise, then SGD (optionally with momentum).

  .. math::
    \bar g_t = \tfrac{1}{qN}\big(\textstyle\sum_i g_i \min(1, C/\lVert g_i\rVert)
      + \mathcal N(0, \sigma^2 C^2 I)\big),\qquad u_t = \mathrm{sgd}(\bar g_t)
    \quad\text{(see :func:`gradtx.privacy.dp_aggregate`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    l2_clip: :math:`C`, > 0, the per-example norm bound.
    noise_multiplier: :math:`\sigma`, >= 0 (from
      :func:`gradtx.privacy.calibrate_noise_multiplier` for a target epsilon).
    key: an int seed or PRNG key (required).
    expected_batch_size: :math:`qN`, > 0 (required unless ``denominator="actual"``).
    momentum: heavy-ball momentum in [0, 1) (post-processing: costs no privacy).
    nesterov: Nesterov momentum.
    weight_decay: coupled L2 coefficient, >= 0, added to the private gradient.
    denominator: ``"expected"`` or ``"actual"`` (see :func:`gradtx.privacy.dp_aggregate`).
    rng: ``"threefry"`` or ``"fast"``.
    mu_dtype: dtype of the momentum buffer.

  Returns:
    ``chain(dp_aggregate(...), sgd(...))``; ``update`` needs ``per_example_grads=`` and takes
    ``example_mask=`` for padded Poisson batches.

  Example:
    >>> opt = gradtx.dp_sgd(0.5, l2_clip=1.0, noise_multiplier=1.1, key=0, expected_batch_size=256)
    >>> g_i = gradtx.clipping.per_example_gradients(loss, params, batch)
    >>> updates, state = opt.update(grads, state, params, per_example_grads=g_i, example_mask=mask)

  References:
    Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang, "Deep Learning with Differential
    Privacy", arXiv:1607.00133.

  Notes:
    The weight decay is added after the noise (post-processing), so it changes no privacy
    guarantee. Privacy is accounted with :class:`gradtx.privacy.PrivacyAccountant` from
    :math:`(\sigma, q)` and the step count in :func:`gradtx.privacy.dp_steps`.
  """
  return optax.chain(
      dp_aggregate(
          l2_clip, noise_multiplier, key=key, expected_batch_size=expected_batch_size,
          denominator=denominator, rng=rng,
      ),
      sgd(learning_rate, momentum, nesterov, weight_decay, mu_dtype=mu_dtype),
  )


@register(
    family="privacy",
    paper="Deep Learning with Differential Privacy",
    arxiv="1607.00133",
    extra_inputs=("per_example_grads",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.02, **_TEST},
    race_kwargs={"learning_rate": 3e-3, **_RACE},
    static_args=_STATIC,
)
def dp_adam(
    learning_rate: Any,
    l2_clip: Any = 1.0,
    noise_multiplier: Any = 1.0,
    *,
    key: Any = None,
    expected_batch_size: Any = None,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    denominator: str = "expected",
    rng: str = "threefry",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DP-Adam: per-example clipping and Gaussian noise, then Adam (AdamW with ``weight_decay``).

  .. math::
    \bar g_t = \tfrac{1}{qN}\big(\textstyle\sum_i g_i \min(1, C/\lVert g_i\rVert)
      + \mathcal N(0, \sigma^2 C^2 I)\big),\qquad
    u_t = -\eta_t\big(\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda p_{t-1}\big),

  with Adam's moments of :math:`\bar g_t`.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    l2_clip: :math:`C`, > 0, the per-example norm bound.
    noise_multiplier: :math:`\sigma`, >= 0.
    key: an int seed or PRNG key (required).
    expected_batch_size: :math:`qN`, > 0 (required unless ``denominator="actual"``).
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    weight_decay: decoupled decay :math:`\lambda`, >= 0, multiplied by the learning rate.
    denominator: ``"expected"`` or ``"actual"`` (see :func:`gradtx.privacy.dp_aggregate`).
    rng: ``"threefry"`` or ``"fast"``.
    mu_dtype: dtype of the first moment.

  Returns:
    ``chain(dp_aggregate, scale_by_adam, [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.dp_adam(1e-3, l2_clip=1.0, noise_multiplier=1.1, key=0, expected_batch_size=256)

  References:
    Abadi et al., "Deep Learning with Differential Privacy", arXiv:1607.00133.
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980.

  Notes:
    Adam runs on the privatised gradient only (post-processing), so the accountant's epsilon
    for DP-SGD applies unchanged. With noise the second moment is dominated by
    :math:`(\sigma C / qN)^2`; a larger ``eps`` than in non-private training is common.
  """
  stages = [
      dp_aggregate(
          l2_clip, noise_multiplier, key=key, expected_batch_size=expected_batch_size,
          denominator=denominator, rng=rng,
      ),
      scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype),
  ]
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay))
  stages.append(scale_by_learning_rate(learning_rate))
  return optax.chain(*stages)


@register(
    family="privacy",
    paper="Practical and Private (Deep) Learning without Sampling or Shuffling",
    arxiv="2103.00039",
    extra_inputs=("per_example_grads",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "momentum": 0.9, "l2_clip": 100.0, "noise_multiplier": 1e-5,
                 "batch_size": 1, "key": 0},
    race_kwargs={"learning_rate": 0.5, "l2_clip": 1.0, "noise_multiplier": 1.0, "batch_size": 128, "key": 0},
    static_args=("key", "restart_every"),
)
def dp_ftrl(
    learning_rate: Any,
    l2_clip: Any = 1.0,
    noise_multiplier: Any = 1.0,
    *,
    key: Any = None,
    batch_size: Any = None,
    restart_every: int | None = None,
    momentum: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DP-FTRL: tree-aggregation noise on clipped per-example sums, no sampling needed (DP-FTRLM with momentum).

  .. math::
    \tilde g_t = \big(x_t + N_t - N_{t-1}\big)/B,\qquad u_t = \mathrm{sgd}(\tilde g_t)
    \quad\text{(see :func:`gradtx.privacy.dp_tree_aggregate`)};

  with momentum 0 and a constant :math:`\eta` this is FTRL,
  :math:`\theta_t = \theta_0 - \eta\,(\sum_{s\le t} x_s + N_t)/B`.

  Args:
    learning_rate: :math:`\eta = 1/\lambda`, a float or a schedule, >= 0.
    l2_clip: :math:`C`, > 0, the per-example norm bound.
    noise_multiplier: :math:`\sigma`, >= 0, per tree node.
    key: an int seed or PRNG key (required).
    batch_size: :math:`B`, > 0, the fixed batch size.
    restart_every: restart the tree every this many steps (once per epoch, as in the paper).
    momentum: heavy-ball momentum on :math:`\tilde g_t`, in [0, 1) (the paper's DP-FTRLM).
    nesterov: Nesterov momentum.
    mu_dtype: dtype of the momentum buffer.

  Returns:
    ``chain(dp_tree_aggregate(...), sgd(...))``; ``update`` needs ``per_example_grads=``.

  Example:
    >>> opt = gradtx.dp_ftrl(0.5, l2_clip=1.0, noise_multiplier=4.0, key=0, batch_size=250,
    ...                      restart_every=240, momentum=0.9)

  References:
    Kairouz, McMahan, Song, Thakkar, Thakurta & Xu, "Practical and Private (Deep) Learning
    without Sampling or Shuffling", arXiv:2103.00039.

  Notes:
    The momentum acts on the noisy per-step gradient (the increment of the noisy prefix sums),
    as in the paper's DP-FTRLM; a learning-rate schedule turns FTRL into SGD with correlated
    noise. Banded matrix-factorisation noise is not implemented.
  """
  return optax.chain(
      dp_tree_aggregate(l2_clip, noise_multiplier, key=key, batch_size=batch_size, restart_every=restart_every),
      sgd(learning_rate, momentum, nesterov, mu_dtype=mu_dtype),
  )
