"""Differentially private optimizers: DP-SGD, DP-Adam and DP-FTRL, private aggregation then the base method."""

from typing import Any

import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_adam import scale_by_adam
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.optimizers.moments import sgd
from gradtx._src.privacy.banded_coefficients import banded_sqrt_coefficients
from gradtx._src.privacy.dp_aggregate import dp_aggregate
from gradtx._src.privacy.dp_banded_aggregate import dp_banded_aggregate
from gradtx._src.privacy.dp_tree_aggregate import dp_tree_aggregate

MECHANISMS = ("tree", "banded")

_TEST = {"l2_clip": 100.0, "noise_multiplier": 1e-5, "expected_batch_size": 1, "key": 0}
_RACE = {"l2_clip": 1.0, "noise_multiplier": 1.0, "expected_batch_size": 128, "key": 0}  # the race batch
_STATIC = ("key", "denominator", "rng", "axis_name")


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
    axis_name: Any = None,
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
    axis_name: the data-parallel axis name(s) over which devices hold shards of the batch (see
      :func:`gradtx.privacy.dp_aggregate`); None on one device.

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
          denominator=denominator, rng=rng, axis_name=axis_name,
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
    axis_name: Any = None,
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
    axis_name: the data-parallel axis name(s) over which devices hold shards of the batch (see
      :func:`gradtx.privacy.dp_aggregate`); None on one device.

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
          denominator=denominator, rng=rng, axis_name=axis_name,
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
    static_args=("key", "restart_every", "mechanism", "bands", "nu", "coefficients", "axis_name"),
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
    mechanism: str = "tree",
    bands: int | None = None,
    nu: float = 0.0,
    coefficients: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DP-FTRL: correlated noise (tree aggregation or a banded factorisation) on clipped per-example sums, then SGD.

  .. math::
    \tilde g_t = \big(x_t + N_t - N_{t-1}\big)/B \ \text{(tree)}
    \quad\text{or}\quad \tilde g_t = \big(x_t + (C^{-1} w)_t\big)/B \ \text{(banded)},
    \qquad u_t = \mathrm{sgd}(\tilde g_t)

  (see :func:`gradtx.privacy.dp_tree_aggregate` and
  :func:`gradtx.privacy.dp_banded_aggregate`); with momentum 0 and a constant :math:`\eta`
  the tree mechanism is FTRL, :math:`\theta_t = \theta_0 - \eta\,(\sum_{s\le t} x_s + N_t)/B`,
  and the banded one the matrix mechanism for prefix sums with a b-banded strategy :math:`C`.

  Args:
    learning_rate: :math:`\eta = 1/\lambda`, a float or a schedule, >= 0.
    l2_clip: :math:`C`, > 0, the per-example norm bound.
    noise_multiplier: :math:`\sigma`, >= 0, per tree node.
    key: an int seed or PRNG key (required).
    batch_size: :math:`B`, > 0, the batch size the sum is divided by (with ``"banded"`` and
      cyclic Poisson sampling: the expected batch size :math:`qN/b`).
    restart_every: restart the tree every this many steps (once per epoch, as in the paper);
      tree mechanism only.
    momentum: heavy-ball momentum on :math:`\tilde g_t`, in [0, 1) (the paper's DP-FTRLM).
    nesterov: Nesterov momentum.
    mu_dtype: dtype of the momentum buffer.
    mechanism: ``"tree"`` (tree aggregation) or ``"banded"`` (BandMF: a b-banded Toeplitz
      strategy :math:`C`, noise state of ``bands - 1`` parameter-sized trees).
    bands: :math:`b` >= 1 for ``"banded"`` (1: DP-SGD's independent noise); the default
      coefficients are :func:`gradtx.privacy.banded_sqrt_coefficients` ``(bands, nu)``.
    nu: the damping of the default banded coefficients, in [0, 1].
    coefficients: explicit strategy coefficients for ``"banded"`` (instead of ``bands``/``nu``),
      e.g. :func:`gradtx.privacy.optimal_banded_coefficients` ``(bands, steps)``.
    axis_name: the data-parallel axis name(s) over which devices hold shards of the batch (see
      :func:`gradtx.privacy.dp_aggregate`); None on one device.

  Returns:
    ``chain(dp_tree_aggregate(...) or dp_banded_aggregate(...), sgd(...))``; ``update`` needs
    ``per_example_grads=`` and takes ``example_mask=``.

  Example:
    >>> opt = gradtx.dp_ftrl(0.5, l2_clip=1.0, noise_multiplier=4.0, key=0, batch_size=250,
    ...                      restart_every=240, momentum=0.9)
    >>> banded = gradtx.dp_ftrl(0.5, 1.0, 1.0, key=0, batch_size=250, mechanism="banded", bands=8)

  References:
    Kairouz, McMahan, Song, Thakkar, Thakurta & Xu, "Practical and Private (Deep) Learning
    without Sampling or Shuffling", arXiv:2103.00039.
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.

  Notes:
    The momentum acts on the noisy per-step gradient (the increment of the noisy prefix sums),
    as in the paper's DP-FTRLM; a learning-rate schedule turns FTRL into SGD with correlated
    noise. The banded coefficients are optimised for SGD without momentum (the square root of
    the prefix-sum matrix), not for the momentum workload. Account the tree with
    :func:`gradtx.privacy.tree_aggregation_epsilon` and the banded mechanism with
    :func:`gradtx.privacy.banded_epsilon` (same coefficients).
  """
  validate.one_of("mechanism", mechanism, MECHANISMS)
  if mechanism == "tree":
    if bands is not None or coefficients is not None:
      raise ValueError("dp_ftrl: bands and coefficients apply to mechanism='banded' only, got mechanism='tree'.")
    private = dp_tree_aggregate(
        l2_clip, noise_multiplier, key=key, batch_size=batch_size, restart_every=restart_every,
        axis_name=axis_name,
    )
  else:
    if restart_every is not None:
      raise ValueError("dp_ftrl: restart_every applies to mechanism='tree' only; a banded factor needs no restart.")
    if batch_size is None:
      raise ValueError("dp_ftrl: batch_size is required (the divisor of the noisy sum), e.g. batch_size=256.")
    if coefficients is None:
      if bands is None:
        raise ValueError("dp_ftrl: mechanism='banded' needs bands (e.g. bands=8) or coefficients.")
      coefficients = banded_sqrt_coefficients(bands, nu)
    elif bands is not None and len(coefficients) != bands:
      raise ValueError(f"dp_ftrl: bands={bands} but {len(coefficients)} coefficients were given.")
    private = dp_banded_aggregate(
        l2_clip, noise_multiplier, coefficients=coefficients, key=key, expected_batch_size=batch_size,
        axis_name=axis_name,
    )
  return optax.chain(private, sgd(learning_rate, momentum, nesterov, mu_dtype=mu_dtype))


@register(
    family="privacy",
    paper="(Amplified) Banded Matrix Factorizations: A unified approach to private training",
    arxiv="2306.08153",
    extra_inputs=("per_example_grads",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "momentum": 0.9, "l2_clip": 100.0, "noise_multiplier": 1e-5,
                 "batch_size": 1, "bands": 3, "key": 0},
    race_kwargs={"learning_rate": 0.5, "l2_clip": 1.0, "noise_multiplier": 1.0, "batch_size": 128, "bands": 4,
                 "key": 0},
    static_args=("key", "bands", "nu", "coefficients", "axis_name"),
)
def dp_bandmf(
    learning_rate: Any,
    l2_clip: Any = 1.0,
    noise_multiplier: Any = 1.0,
    *,
    key: Any = None,
    batch_size: Any = None,
    bands: int = 4,
    nu: float = 0.0,
    coefficients: Any = None,
    momentum: Any = 0.0,
    nesterov: bool = False,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""BandMF: SGD on clipped per-example sums with b-banded correlated noise.

  .. math::
    \tilde g_t = \big(x_t + \zeta_t\big)/B,\quad
    \zeta_t = \Big(w_t - \sum_{j=1}^{b-1} c_j\,\zeta_{t-j}\Big)/c_0,\quad
    w_t \sim \mathcal N(0, \sigma^2 C^2 I),\qquad u_t = \mathrm{sgd}(\tilde g_t)

  that is, the noise is :math:`C^{-1}w` for a b-banded lower-triangular Toeplitz strategy
  :math:`C` with coefficients :math:`c_0, \dots, c_{b-1}`. It is
  ``dp_ftrl(..., mechanism="banded")``, registered on its own so the contract and sharding suites
  drive the banded path.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    l2_clip: :math:`C`, > 0, the per-example norm bound.
    noise_multiplier: :math:`\sigma`, >= 0.
    key: an int seed or PRNG key (required).
    batch_size: :math:`B`, > 0, the (expected) batch size the noisy sum is divided by.
    bands: :math:`b` >= 1 (1: DP-SGD's independent noise); the default coefficients are
      :func:`gradtx.privacy.banded_sqrt_coefficients` ``(bands, nu)``.
    nu: the damping of the default coefficients, in [0, 1].
    coefficients: explicit strategy coefficients (instead of ``bands``/``nu``), e.g.
      :func:`gradtx.privacy.optimal_banded_coefficients` ``(bands, steps)``.
    momentum: heavy-ball momentum on :math:`\tilde g_t`, in [0, 1).
    nesterov: Nesterov momentum.
    mu_dtype: dtype of the momentum buffer.
    axis_name: the data-parallel axis name(s) over which devices hold shards of the batch (see
      :func:`gradtx.privacy.dp_aggregate`); None on one device.

  Returns:
    ``chain(dp_banded_aggregate(...), sgd(...))``; ``update`` needs ``per_example_grads=`` and
    takes ``example_mask=``. The state holds ``bands - 1`` parameter-sized noise trees.

  Example:
    >>> opt = gradtx.privacy.dp_bandmf(0.5, l2_clip=1.0, noise_multiplier=1.0, key=0,
    ...                                batch_size=256, bands=8)

  References:
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.
    Koloskova, McKenna, Charles, Rush & McMahan, "Correlated Noise Provably Beats Independent
    Noise for Differentially Private Learning", arXiv:2310.06771.

  Notes:
    Amplification by sampling needs cyclic Poisson sampling over ``bands`` partitions
    (:func:`gradtx.privacy.poisson_batches` with ``partitions=bands``); account it with
    :func:`gradtx.privacy.banded_epsilon`.
  """
  return dp_ftrl(
      learning_rate, l2_clip, noise_multiplier, key=key, batch_size=batch_size, momentum=momentum,
      nesterov=nesterov, mu_dtype=mu_dtype, mechanism="banded", bands=None if coefficients is not None else bands,
      nu=nu, coefficients=coefficients, axis_name=axis_name,
  )
