"""Optimizers that never backpropagate: forward-gradient descent, MeZO, SPSA and DeepZero."""

from typing import Any

import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero, resolve
from gradtx._src.core.registry import register
from gradtx._src.estimators.coordinate_gradient import coordinate_gradient
from gradtx._src.estimators.forward_gradient import forward_gradient
from gradtx._src.estimators.two_point_gradient import two_point_gradient
from gradtx._src.moments.add_decayed_weights import add_decayed_weights
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.moments.trace import trace


def _tail(learning_rate: Any, momentum: Any, weight_decay: Any) -> list[optax.GradientTransformation]:
  validate.beta("momentum", momentum)
  stages = []
  if not is_static_zero(weight_decay):
    stages.append(add_decayed_weights(weight_decay))
  if not is_static_zero(momentum):
    stages.append(trace(momentum))
  stages.append(scale_by_learning_rate(learning_rate))
  return stages


@register(
    family="estimators",
    paper="Gradients without Backpropagation",
    arxiv="2202.08587",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "key": 0},
    race_kwargs={"learning_rate": 5e-3, "key": 0},
    static_args=("key", "num_tangents", "distribution"),
)
def forward_gradient_sgd(
    learning_rate: Any,
    momentum: Any = 0.0,
    weight_decay: Any = 0.0,
    *,
    key: Any,
    num_tangents: int = 1,
    distribution: str = "normal",
) -> optax.GradientTransformationExtraArgs:
  r"""Forward gradient descent: SGD on the forward-gradient estimate, no backpropagation.

  .. math::
    \hat g = \frac1K\sum_k (\nabla f \cdot v_k) v_k,\qquad u = -\eta\, \hat g
    \ \text{(with optional momentum and L2 decay, as in :func:`sgd`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    momentum: heavy-ball momentum, in [0, 1); a Python 0 leaves out the buffer.
    weight_decay: L2 coefficient added to the estimate, >= 0.
    key: int seed or PRNG key for the tangents.
    num_tangents: tangents averaged per step, an int >= 1.
    distribution: ``"normal"`` or ``"rademacher"``.

  Returns:
    ``chain(forward_gradient, [add_decayed_weights], [trace], scale_by_learning_rate)``;
    ``update`` needs ``params`` and ``obj_fn=`` (or ``value_and_jvp_fn=``, see
    :func:`forward_gradient`) and ignores the incoming updates' values. A step costs
    ``num_tangents`` forward-mode evaluations.

  Example:
    >>> opt = gradtx.forward_gradient_sgd(1e-3, key=0)
    >>> updates, state = opt.update(None, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Baydin, Pearlmutter, Syme, Wood & Torr, "Gradients without Backpropagation", arXiv:2202.08587.

  Notes:
    The paper's forward gradient descent is plain SGD with one Gaussian tangent per step.
  """
  return optax.chain(
      forward_gradient(key=key, num_tangents=num_tangents, distribution=distribution),
      *_tail(learning_rate, momentum, weight_decay),
  )


@register(
    family="estimators",
    paper="Fine-Tuning Language Models with Just Forward Passes",
    arxiv="2305.17333",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "key": 0},
    race_kwargs={"learning_rate": 5e-3, "key": 0},
    static_args=("key", "num_probes"),
)
def mezo(
    learning_rate: Any,
    eps: Any = 1e-3,
    weight_decay: Any = 0.0,
    *,
    key: Any,
    num_probes: int = 1,
    momentum: Any = 0.0,
) -> optax.GradientTransformationExtraArgs:
  r"""MeZO: zeroth-order SGD with Gaussian two-point estimates, memory of inference only.

  .. math::
    p = \frac{L(\theta + \epsilon z) - L(\theta - \epsilon z)}{2\epsilon},\qquad
    u = -\eta\,(p z + \lambda \theta),\qquad z \sim N(0, I)\ \text{regenerated from the key}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    eps: perturbation scale :math:`\epsilon`, > 0.
    weight_decay: :math:`\lambda`, >= 0.
    key: int seed or PRNG key for the probes.
    num_probes: probes averaged per step (MeZO's n), an int >= 1.
    momentum: heavy-ball momentum, in [0, 1); a Python 0 (the paper's MeZO-SGD) keeps no buffer,
      so the state stays at the size of a key.

  Returns:
    ``chain(two_point_gradient, [add_decayed_weights], [trace], scale_by_learning_rate)``;
    ``update`` needs ``params`` and ``obj_fn=``. A step costs ``2 * num_probes`` loss
    evaluations (:func:`function_evals_per_step`).

  Example:
    >>> opt = gradtx.mezo(1e-6, eps=1e-3, key=0)
    >>> updates, state = opt.update(None, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Malladi, Gao, Nichani, Damian, Lee, Chen & Arora, "Fine-Tuning Language Models with Just
    Forward Passes", arXiv:2305.17333.

  Notes:
    MeZO perturbs in place (+eps, -2 eps, +eps) and regenerates z from a seed; gradtx computes
    the same estimate functionally and regenerates z per leaf from the key (see
    :func:`two_point_gradient`). Weight decay enters the update as in the paper's algorithm.
  """
  return optax.chain(
      two_point_gradient(key=key, eps=eps, num_probes=num_probes, distribution="normal"),
      *_tail(learning_rate, momentum, weight_decay),
  )


@register(
    family="estimators",
    paper="Multivariate stochastic approximation using a simultaneous perturbation gradient "
    "approximation (Spall, 1992)",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.2, "key": 0, "stability": 1000.0},
    race_kwargs={"learning_rate": 0.1, "key": 0, "stability": 100.0},
    static_args=("key", "num_probes"),
)
def spsa(
    learning_rate: Any,
    eps: Any = 1e-3,
    *,
    key: Any,
    stability: Any = 0.0,
    alpha: Any = 0.602,
    gamma: Any = 0.101,
    num_probes: int = 1,
) -> optax.GradientTransformationExtraArgs:
  r"""SPSA: Rademacher two-point estimates with Spall's decaying gains.

  .. math::
    a_k = \frac{a}{(A + k + 1)^\alpha},\quad c_k = \frac{c}{(k + 1)^\gamma},\quad
    \hat g_i = \frac{L(\theta + c_k\Delta) - L(\theta - c_k\Delta)}{2 c_k \Delta_i},\quad
    u = -a_k \hat g,

  with :math:`k` the 0-based step and :math:`\Delta_i = \pm 1`.

  Args:
    learning_rate: :math:`a`, a float or a schedule (then :math:`a` is its value at step k), >= 0.
    eps: :math:`c`, > 0.
    key: int seed or PRNG key for the perturbations.
    stability: :math:`A`, >= 0 (Spall suggests about 10% of the number of steps).
    alpha: decay exponent of :math:`a_k`, >= 0 (0.602 in practice, 1 asymptotically optimal).
    gamma: decay exponent of :math:`c_k`, >= 0 (0.101 in practice, 1/6 asymptotically optimal).
    num_probes: perturbations averaged per step, an int >= 1.

  Returns:
    ``chain(two_point_gradient(distribution="rademacher", eps=c_k), scale_by_learning_rate(a_k))``;
    ``update`` needs ``params`` and ``obj_fn=``. A step costs ``2 * num_probes`` loss
    evaluations (:func:`function_evals_per_step`).

  Example:
    >>> opt = gradtx.spsa(0.1, eps=0.01, key=0, stability=10.0)

  References:
    Spall, "Multivariate stochastic approximation using a simultaneous perturbation gradient
    approximation", IEEE Trans. Automatic Control 37(3), 1992.
    Spall, "Implementation of the simultaneous perturbation algorithm for stochastic
    optimization", IEEE Trans. Aerospace and Electronic Systems 34(3), 1998 (gain exponents).
  """
  validate.non_negative("learning_rate", learning_rate)
  validate.positive("eps", eps)
  validate.non_negative("stability", stability)
  validate.non_negative("alpha", alpha)
  validate.non_negative("gamma", gamma)

  def step_of(count):
    return count.astype(jnp.result_type(float)) + 1.0

  def a_k(count):
    return resolve(learning_rate, count) / jnp.power(stability + step_of(count), alpha)

  def c_k(count):
    return resolve(eps, count) / jnp.power(step_of(count), gamma)

  return optax.chain(
      two_point_gradient(key=key, eps=c_k, num_probes=num_probes, distribution="rademacher"),
      scale_by_learning_rate(a_k),
  )


@register(
    family="estimators",
    paper="DeepZero: Scaling up Zeroth-Order Optimization for Deep Model Training",
    arxiv="2310.02025",
    extra_inputs=("obj_fn",),
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "key": 0, "density": 0.75, "momentum": 0.9, "mu": 5e-4},
    race_kwargs={"learning_rate": 0.5, "key": 0, "density": 0.02},
    static_args=("key", "density", "regenerate_every", "batch_size", "leaf_groups"),
)
def deepzero(
    learning_rate: Any,
    mu: Any = 5e-3,
    momentum: Any = 0.0,
    weight_decay: Any = 0.0,
    *,
    key: Any,
    density: Any = 0.1,
    regenerate_every: int = 1,
    rescale: bool = False,
    batch_size: int | None = None,
    leaf_groups: int = 8,
) -> optax.GradientTransformationExtraArgs:
  r"""DeepZero: SGD on sparse coordinate-wise zeroth-order estimates (CGE).

  .. math::
    \hat g_i = \frac{L(\theta + \mu e_i) - L(\theta)}{\mu}\ (i \in S_t),\ 0\ \text{elsewhere};
    \qquad u = -\eta\,\hat g\ \text{(see :func:`coordinate_gradient`)}.

  Args:
    learning_rate: :math:`\eta`, a float or a schedule, >= 0.
    mu: finite-difference step, > 0.
    momentum: heavy-ball momentum, in [0, 1); a Python 0 keeps no buffer.
    weight_decay: L2 coefficient added to the estimate, >= 0.
    key: int seed or PRNG key for the coordinate subsets.
    density: fraction of each leaf's coordinates estimated per step, in (0, 1], or a tree of
      per-leaf densities.
    regenerate_every: steps between re-draws of the subsets.
    rescale: divide by the density (unbiased estimate) instead of DeepZero's plain sparse one.
    batch_size: perturbed evaluations run at once (None: one after another).
    leaf_groups: at most this many evaluation loops, over contiguous groups of leaves (more
      compile longer; see :func:`coordinate_gradient`).

  Returns:
    ``chain(coordinate_gradient, [add_decayed_weights], [trace], scale_by_learning_rate)``;
    ``update`` needs ``params`` and ``obj_fn=``. A step costs about ``density * n + 1`` loss
    evaluations for ``n`` parameters (exactly: :func:`function_evals_per_step`).

  Example:
    >>> opt = gradtx.deepzero(0.1, key=0, density=0.1)
    >>> updates, state = opt.update(None, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Chen et al., "DeepZero: Scaling up Zeroth-Order Optimization for Deep Model Training",
    arXiv:2310.02025.

  Notes:
    The per-layer densities from ZO-GraSP pruning are left to the caller (``density`` tree);
    the default 0.1 is the paper's 90% sparsity. See :func:`coordinate_gradient`.
  """
  return optax.chain(
      coordinate_gradient(
          key=key, mu=mu, density=density, regenerate_every=regenerate_every, rescale=rescale,
          batch_size=batch_size, leaf_groups=leaf_groups,
      ),
      *_tail(learning_rate, momentum, weight_decay),
  )
