"""Sophia-G's Gauss-Newton-Bartlett estimate of the Hessian diagonal for softmax models."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def estimate_gauss_newton_diagonal(
    logits_fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    *,
    axis_name: Any = None,
) -> Any:
  r"""The Gauss-Newton-Bartlett (GNB) estimate of the Gauss-Newton diagonal of a softmax loss.

  .. math::
    \hat y_b \sim \operatorname{Categorical}(\operatorname{softmax}(\ell_b)),\quad
    \hat L(p) = \frac1B \sum_{b=1}^B \operatorname{CE}(\ell_b(p), \hat y_b),\quad
    \hat h = B\, \nabla \hat L \odot \nabla \hat L.

  The labels are sampled from the model's own predictive distribution, not taken from the data,
  so :math:`\mathbb E[\hat h]` is the mean per-example Gauss-Newton diagonal
  :math:`\frac1B\sum_b \operatorname{diag}(J_b^\top(\operatorname{diag}(\pi_b) - \pi_b\pi_b^\top)J_b)`.
  Costs one forward and one backward pass (``jax.vjp`` of ``logits_fn``), like a gradient.

  Args:
    logits_fn: function of ``params`` returning logits of shape ``(..., num_classes)`` on the
      current batch; every leading index (example, or token) counts as one of the :math:`B`.
    params: the point, any pytree of floating arrays.
    key: PRNG key for the sampled labels.
    axis_name: under data parallelism, the gradient of :math:`\hat L` is averaged over this
      mapped axis and :math:`B` is the total over the axis, so the estimate is that of the
      global batch; each device samples its labels from ``fold_in(key, axis_index)``.

  Returns:
    A tree like ``params``.

  Example:
    >>> h = gradtx.curvature.estimate_gauss_newton_diagonal(
    ...     lambda p: model.apply(p, batch["x"]), params, jax.random.key(0))

  References:
    Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer for Language
    Model Pre-training", arXiv:2305.14342.

  Notes:
    The factor :math:`B` sits in the estimator (paper form); the official code leaves it out of
    the estimate and multiplies it into the step (``rho * bs * h``) instead. The official loop
    also clips the sampled-loss gradient to norm 1 before squaring; gradtx does not.
  """
  logits, vjp_fn = jax.vjp(logits_fn, params)
  num_classes = logits.shape[-1]
  batch = int(np.prod(logits.shape[:-1], dtype=np.int64))
  dt = jnp.promote_types(logits.dtype, jnp.float32)
  z = jax.lax.stop_gradient(logits).astype(dt)
  if axis_name is not None:  # independent labels on every device
    key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
  labels = jax.random.categorical(key, z, axis=-1)
  probs = jax.nn.softmax(z, axis=-1)
  dlogits = (probs - jax.nn.one_hot(labels, num_classes, dtype=dt)) * (1.0 / batch)
  total = jnp.asarray(batch, dt)
  if axis_name is None:
    (grad,) = vjp_fn(dlogits.astype(logits.dtype))
  else:
    # Differentiate the device-averaged surrogate: under shard_map's replication checks a local
    # vjp with respect to replicated params is already summed over devices.
    cotangent = jax.lax.stop_gradient(dlogits.astype(logits.dtype))
    surrogate = lambda p: jax.lax.pmean(jnp.sum(cotangent * logits_fn(p)), axis_name)
    grad = jax.lax.pmean(jax.grad(surrogate)(params), axis_name)
    total = jax.lax.psum(total, axis_name)

  def square(g):
    gd = g.astype(jnp.promote_types(g.dtype, jnp.float32))
    return (total * gd * gd).astype(g.dtype)

  return jax.tree.map(square, grad)
