"""Sign, orthogonal and dualized-norm optimizers, each a short chain of geometry transformations."""

from typing import Any

import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero
from gradtx._src.core.registry import register
from gradtx._src.core.tree import check_matching
from gradtx._src.geometry.ema_momentum import ema_momentum
from gradtx._src.geometry.orthogonalize import NS_COEFFS
from gradtx._src.geometry.partition import labeller
from gradtx._src.geometry.scale_by_auon import scale_by_auon
from gradtx._src.geometry.scale_by_dualized_norm import scale_by_dualized_norm
from gradtx._src.geometry.scale_by_lion import scale_by_lion
from gradtx._src.geometry.scale_by_orthogonalized_momentum import scale_by_orthogonalized_momentum
from gradtx._src.geometry.scale_by_sign import scale_by_sign
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.optimizers.moments import adamw


def _tail(learning_rate: Any, weight_decay: Any, mask: Any = None) -> list[Any]:
  """Decoupled decay (left out for a Python zero) followed by the learning rate."""
  stages = [] if is_static_zero(weight_decay) else [add_decayed_weights(weight_decay, mask=mask)]
  return stages + [scale_by_learning_rate(learning_rate)]


@register(
    family="geometry",
    paper="signSGD: Compressed Optimisation for Non-Convex Problems",
    arxiv="1802.04434",
    test_kwargs={"learning_rate": optax.exponential_decay(0.01, 3000, 0.01)},
    race_kwargs={"learning_rate": 1e-3},
    static_args=("mask",),
)
def sign_sgd(
    learning_rate: Any,
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""signSGD: step along the sign of the gradient.

  .. math::
    u_t = -\eta_t \left( \operatorname{sign}(g_t) + \lambda p_{t-1} \right),\qquad
    \operatorname{sign}(0) = 0.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    weight_decay: decoupled decay :math:`\lambda`, >= 0 (a Python 0 leaves it out).
    mask: which leaves decay (see :func:`add_decayed_weights`).

  Returns:
    ``chain(scale_by_sign(), [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.geometry.sign_sgd(1e-3)

  References:
    Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed Optimisation for
    Non-Convex Problems", arXiv:1802.04434.

  Notes:
    Steepest descent under the l-infinity norm in its trust-region form (see
    :func:`scale_by_dualized_norm`). The distributed majority vote is not included.
  """
  return optax.chain(scale_by_sign(), *_tail(learning_rate, weight_decay, mask))


@register(
    family="geometry",
    paper="signSGD: Compressed Optimisation for Non-Convex Problems",
    arxiv="1802.04434",
    test_kwargs={"learning_rate": 0.01},
    race_kwargs={"learning_rate": 1e-3},
    static_args=("mask", "mu_dtype"),
)
def signum(
    learning_rate: Any,
    b1: Any = 0.9,
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Signum: signSGD on an EMA of the gradients.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    u_t = -\eta_t \left( \operatorname{sign}(m_t) + \lambda p_{t-1} \right).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    b1: momentum :math:`\beta_1`, in [0, 1).
    weight_decay: decoupled decay :math:`\lambda`, >= 0.
    mask: which leaves decay.
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain(ema_momentum(b1), scale_by_sign(), [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.geometry.signum(1e-3, b1=0.9)

  References:
    Bernstein, Wang, Azizzadenesheli & Anandkumar, "signSGD: Compressed Optimisation for
    Non-Convex Problems", arXiv:1802.04434.

  Notes:
    The momentum is an EMA. Ports that reuse torch SGD's buffer compute
    ``sign(g + b1 * buf)``, which weights the current gradient differently. Signum(b) equals
    Lion with ``b1 = b2 = b``.
  """
  return optax.chain(
      ema_momentum(b1, mu_dtype=mu_dtype), scale_by_sign(), *_tail(learning_rate, weight_decay, mask)
  )


@register(
    family="geometry",
    paper="Symbolic Discovery of Optimization Algorithms",
    arxiv="2302.06675",
    test_kwargs={"learning_rate": 0.01, "weight_decay": 0.0},
    race_kwargs={"learning_rate": 1e-3, "weight_decay": 1e-2},
    static_args=("mask", "mu_dtype"),
)
def lion(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.99,
    weight_decay: Any = 1e-3,
    *,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Lion: the sign of an interpolated momentum, with decoupled weight decay.

  .. math::
    c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    u_t = -\eta_t (\operatorname{sign}(c_t) + \lambda p_{t-1}),\quad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0 (the paper suggests 3-10x smaller
      than AdamW's).
    b1: interpolation weight, in [0, 1).
    b2: momentum decay, in [0, 1).
    weight_decay: decoupled decay :math:`\lambda`, >= 0 (3-10x larger than AdamW's).
    mask: which leaves decay.
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain(scale_by_lion(b1, b2), [add_decayed_weights], scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.geometry.lion(1e-4, weight_decay=1e-2)

  References:
    Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675.

  Notes:
    Default ``weight_decay`` 1e-3 as ``optax.lion`` (lion-pytorch defaults to 0). The decay
    is added to the update (``-lr * wd * p``), as optax does; lion-pytorch applies
    ``p *= 1 - lr * wd`` before the step, which is the same.
  """
  return optax.chain(scale_by_lion(b1, b2, mu_dtype=mu_dtype), *_tail(learning_rate, weight_decay, mask))


@register(
    family="geometry",
    paper="Momentum Improves Normalized SGD",
    arxiv="2002.03305",
    test_kwargs={"learning_rate": 0.01, "momentum": 0.5},
    race_kwargs={"learning_rate": 0.05},
    static_args=("mask", "mu_dtype"),
)
def normalized_sgd(
    learning_rate: Any,
    momentum: Any = 0.9,
    weight_decay: Any = 0.0,
    *,
    per_leaf: bool = False,
    nesterov: bool = False,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Normalized SGD with momentum: a step of fixed length along the EMA of the gradients.

  .. math::
    m_t = \beta m_{t-1} + (1-\beta) g_t,\qquad
    u_t = -\eta_t \left( m_t / \lVert m_t \rVert_2 + \lambda p_{t-1} \right),\qquad (0 \mapsto 0).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0: the length of every step.
    momentum: :math:`\beta`, in [0, 1); a Python 0 leaves out the buffer (normalized GD).
    weight_decay: decoupled decay :math:`\lambda`, >= 0.
    per_leaf: normalize each leaf by its own norm instead of the global norm.
    nesterov: use :math:`(1-\beta) g_t + \beta m_t` in place of :math:`m_t`.
    mask: which leaves decay.
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain([ema_momentum], scale_by_dualized_norm("global_l2" | "l2"), [decay], lr)``.

  Example:
    >>> opt = gradtx.geometry.normalized_sgd(0.01, momentum=0.9)

  References:
    Cutkosky & Mehta, "Momentum Improves Normalized SGD", arXiv:2002.03305.

  Notes:
    The norm is global by default (all leaves concatenated), as in the paper; then
    :math:`\lVert u_t \rVert = \eta_t` exactly without decay.
  """
  validate.beta("momentum", momentum)
  stages = []
  if not is_static_zero(momentum):
    stages.append(ema_momentum(momentum, nesterov=nesterov, mu_dtype=mu_dtype))
  stages.append(scale_by_dualized_norm("l2" if per_leaf else "global_l2"))
  return optax.chain(*stages, *_tail(learning_rate, weight_decay, mask))


def _with_fallback(name: str, main: Any, fallback: Any, partition: Any) -> optax.GradientTransformationExtraArgs:
  """``optax.partition`` into ``name`` and ``"fallback"``, checking updates against params first."""
  inner = optax.partition({name: main, "fallback": fallback}, labeller(partition, name, "fallback"))

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      check_matching(name, updates, params, ("updates", "params"))
    return inner.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def _default_fallback(learning_rate: Any, adam_learning_rate: Any, weight_decay: Any, mu_dtype: Any) -> Any:
  lr = learning_rate if adam_learning_rate is None else adam_learning_rate
  return adamw(lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=weight_decay, mu_dtype=mu_dtype)


@register(
    family="geometry",
    paper="Muon: An optimizer for hidden layers in neural networks (Jordan et al., 2024); "
    "Muon is Scalable for LLM Training",
    arxiv="2502.16982",
    # ns_dtype float64 (the contract session enables x64): the suite compares jitted and eager
    # updates to rtol 1e-6 with atol 0, and NS5 amplifies float32 rounding in small singular
    # directions by up to 3.4445**5 ~ 486x (observed 3e-5 relative on near-zero entries).
    test_kwargs={"learning_rate": 0.02, "ns_dtype": jnp.float64},
    race_kwargs={"learning_rate": 0.02, "adam_learning_rate": 3e-3},
    static_args=("ns_steps", "coeffs", "method", "shape_scaling", "fallback", "partition",
                 "ns_dtype", "mu_dtype", "shard_map_specs"),
)
def muon(
    learning_rate: Any,
    b1: Any = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    weight_decay: Any = 0.0,
    *,
    shape_scaling: str = "max_ratio",
    method: str = "newton_schulz",
    coeffs: tuple[float, float, float] = NS_COEFFS,
    fallback: Any = None,
    partition: Any = None,
    adam_learning_rate: Any = None,
    ns_dtype: Any = None,
    mu_dtype: Any = None,
    shard_map_specs: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Muon: orthogonalized Nesterov momentum for hidden matrices, AdamW for every other leaf.

  On the leaves ``partition`` selects:

  .. math::
    M_t = \beta M_{t-1} + (1-\beta) G_t,\quad N_t = (1-\beta) G_t + \beta M_t,\quad
    u_t = -\eta_t \left( s\, \mathrm{NS}_5(N_t) + \lambda p_{t-1} \right),

  with :math:`s = \sqrt{\max(1, \text{fan\_out}/\text{fan\_in})}` (``"max_ratio"``) or
  :math:`0.2\sqrt{\max(\text{fan\_in}, \text{fan\_out})}` (``"match_rms"``); the other leaves get
  ``fallback``.

  Args:
    learning_rate: :math:`\eta` for the Muon leaves, a float or a schedule (reference 0.02).
    b1: momentum :math:`\beta`, in [0, 1).
    nesterov: Nesterov look-ahead (reference default).
    ns_steps: Newton-Schulz iterations.
    weight_decay: decoupled decay :math:`\lambda` (also the default fallback's).
    shape_scaling: ``"max_ratio"``, ``"match_rms"``, ``"rms_to_rms"`` or ``"none"``.
    method: ``"newton_schulz"``, or ``"svd"``/``"eigh"`` for the exact polar factor.
    coeffs: Newton-Schulz coefficients.
    fallback: the transformation for the other leaves; None means
      ``adamw(adam_learning_rate or learning_rate, b1=0.9, b2=0.95, eps=1e-8, weight_decay,
      mu_dtype=mu_dtype)``.
    partition: which leaves get Muon: a rule ``partition(path, leaf) -> bool`` over ``/``-joined
      leaf paths, or a tree of bools like the params; None is :func:`default_muon_partition`
      (2-D and conv kernels whose path names no embedding or head).
    adam_learning_rate: the default fallback's learning rate; None uses ``learning_rate``.
    ns_dtype: dtype of the Newton-Schulz iteration (None: float32 or wider).
    mu_dtype: dtype of the momentum.
    shard_map_specs: when ``update`` runs inside ``jax.shard_map``, the params' ``in_specs`` tree
      (or a rule ``(path, leaf) -> PartitionSpec``): each Muon matrix is all-gathered,
      orthogonalized whole and sliced back (see :func:`scale_by_orthogonalized_momentum`).
      Leave None under plain ``jit``.

  Returns:
    ``optax.partition({"muon": chain(scale_by_orthogonalized_momentum, [decay], lr),
    "fallback": fallback}, labels)``; the state structure depends only on the params' paths and
    shapes, never on values.

  Example:
    >>> opt = gradtx.geometry.muon(0.02, adam_learning_rate=3e-4,
    ...     partition=lambda path, x: x.ndim == 2 and not path.startswith("embed"))

  References:
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
    github.com/KellerJordan/Muon; Liu et al., "Muon is Scalable for LLM Training",
    arXiv:2502.16982.

  Notes:
    Newton-Schulz runs in float32 (reference: bfloat16; ``ns_dtype=jnp.bfloat16`` for that).
    The shape factor uses the JAX ``(in, out)`` layout (fan_out/fan_in), so it equals the
    reference's torch factor. Orthogonalization runs on each full logical matrix: under ``jit``
    with sharded params XLA adds the collectives. The default fallback shares Muon's learning
    rate unless ``adam_learning_rate`` is given (the reference uses a separate Adam lr 3e-4;
    Moonlight's ``"match_rms"`` is designed for one shared lr).
  """
  if fallback is None:
    fallback = _default_fallback(learning_rate, adam_learning_rate, weight_decay, mu_dtype)
  main = optax.chain(
      scale_by_orthogonalized_momentum(
          b1, nesterov=nesterov, ns_steps=ns_steps, coeffs=coeffs, method=method,
          shape_scaling=shape_scaling, ns_dtype=ns_dtype, mu_dtype=mu_dtype,
          shard_map_specs=shard_map_specs,
      ),
      *_tail(learning_rate, weight_decay),
  )
  return _with_fallback("muon", main, fallback, partition)


@register(
    family="geometry",
    paper="AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
    arxiv="2509.24320",
    test_kwargs={"learning_rate": 0.02},
    race_kwargs={"learning_rate": 0.05, "adam_learning_rate": 3e-3},
    static_args=("shape_scaling", "fallback", "partition", "mu_dtype"),
)
def auon(
    learning_rate: Any,
    b1: Any = 0.95,
    gamma: Any = 1.5,
    weight_decay: Any = 0.0,
    *,
    nesterov: bool = True,
    normalize: bool = True,
    hybrid: bool = False,
    shape_scaling: str = "none",
    fallback: Any = None,
    partition: Any = None,
    adam_learning_rate: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AuON: linear-time normalized momentum with a cosh-RMS brake, AdamW for the other leaves.

  On the leaves ``partition`` selects:

  .. math::
    G_n = N_t / (\lVert N_t \rVert_F + 10^{-7}),\quad r = \sqrt{\operatorname{mean}(\cosh(\gamma G_n)^2)},
    \quad u_t = -\eta_t \left( G_n / (r + 10^{-8}) + \lambda p_{t-1} \right)

  with :math:`N_t` Muon's Nesterov EMA momentum (see :func:`scale_by_auon`).

  Args:
    learning_rate: :math:`\eta`, a float or a schedule (code default 0.24, README example 0.08).
    b1: momentum, in [0, 1).
    gamma: cosh sharpness, >= 0.
    weight_decay: decoupled decay (also the default fallback's).
    nesterov: Nesterov look-ahead.
    normalize: gradtx's normalised reading (True) or the released code's (False).
    hybrid: one Newton-Schulz iteration before the brake (Hybrid-AuON).
    shape_scaling: per-leaf factor as in Muon; default ``"none"``.
    fallback: transformation for the other leaves; None is AdamW as in :func:`muon`.
    partition: leaf rule as in :func:`muon`.
    adam_learning_rate: the default fallback's learning rate; None uses ``learning_rate``.
    mu_dtype: dtype of the momentum.

  Returns:
    ``optax.partition({"auon": chain(scale_by_auon, [decay], lr), "fallback": fallback}, labels)``.

  Example:
    >>> opt = gradtx.geometry.auon(0.08, adam_learning_rate=3e-4)

  References:
    Maity, "AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
    arXiv:2509.24320.

  Notes:
    See :func:`scale_by_auon` for the reading of the formula gradtx takes and why.
  """
  if fallback is None:
    fallback = _default_fallback(learning_rate, adam_learning_rate, weight_decay, mu_dtype)
  main = optax.chain(
      scale_by_auon(b1, gamma, nesterov=nesterov, normalize=normalize, hybrid=hybrid,
                    shape_scaling=shape_scaling, mu_dtype=mu_dtype),
      *_tail(learning_rate, weight_decay),
  )
  return _with_fallback("auon", main, fallback, partition)


def default_norm(path: str, leaf: Any) -> str:
  """``steepest_descent``'s default norm rule: ``"spectral"`` for matrices, ``"l2"`` otherwise."""
  del path
  return "spectral" if getattr(leaf, "ndim", 0) >= 2 else "l2"


@register(
    family="geometry",
    paper="Old Optimizer, New Norm: An Anthology",
    arxiv="2409.20325",
    test_kwargs={"learning_rate": 0.002, "momentum": 0.5, "scale_by_dual_norm": True},
    race_kwargs={"learning_rate": 0.02, "momentum": 0.9},
    static_args=("norm", "method", "ns_steps", "mask", "mu_dtype"),
)
def steepest_descent(
    learning_rate: Any,
    norm: Any = default_norm,
    momentum: Any = 0.0,
    weight_decay: Any = 0.0,
    *,
    scale_by_dual_norm: bool = False,
    nesterov: bool = False,
    method: str = "newton_schulz",
    ns_steps: int = 5,
    mask: Any = None,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Steepest descent under a chosen norm per leaf (trust-region or steepest-descent step).

  .. math::
    m_t = \beta m_{t-1} + (1-\beta) g_t,\qquad
    u_t = -\eta_t \left( [\lVert m_t \rVert_*]\, d(m_t) + \lambda p_{t-1} \right),

  with :math:`d` the dual map of the leaf's norm (:func:`dualize`); the bracket only with
  ``scale_by_dual_norm=True``. With momentum this is Muon without its shape factor (spectral),
  Signum (``"linf"``) and normalized SGD (``"global_l2"``); without momentum and with the dual
  norm, ``"l2"`` is plain gradient descent.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule.
    norm: a norm name (``"l2"``, ``"global_l2"``, ``"linf"``, ``"spectral"``, ``"rms_to_rms"``), a
      tree of names, or a rule ``norm(path, leaf) -> name``; default spectral for matrices and
      l2 for other leaves.
    momentum: :math:`\beta`, in [0, 1); a Python 0 leaves out the buffer.
    weight_decay: decoupled decay :math:`\lambda`, >= 0.
    scale_by_dual_norm: the steepest-descent step (times the dual norm) instead of the
      normalised trust-region step.
    nesterov: Muon's look-ahead momentum.
    method: ``"newton_schulz"``, ``"svd"`` or ``"eigh"`` for the matrix norms.
    ns_steps: Newton-Schulz iterations.
    mask: which leaves decay.
    mu_dtype: dtype of the momentum.

  Returns:
    ``chain([ema_momentum], scale_by_dualized_norm, [decay], lr)``.

  Example:
    >>> opt = gradtx.geometry.steepest_descent(0.02, norm="rms_to_rms", momentum=0.9)

  References:
    Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325;
    Kovalev, "Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean
    Trust-Region Optimization", arXiv:2503.12645.

  Notes:
    Decay is decoupled and multiplied by the learning rate (gradtx's convention); Kovalev's
    constraint reading of weight decay is not reproduced.
  """
  validate.beta("momentum", momentum)
  stages = []
  if not is_static_zero(momentum):
    stages.append(ema_momentum(momentum, nesterov=nesterov, mu_dtype=mu_dtype))
  stages.append(scale_by_dualized_norm(norm, scale_by_dual_norm=scale_by_dual_norm, method=method,
                                       ns_steps=ns_steps))
  return optax.chain(*stages, *_tail(learning_rate, weight_decay, mask))
