"""Hutchinson estimate of the Hessian trace, with its standard error and per-leaf parts."""

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp

from gradtx._src.core import validate
from gradtx._src.core.tree import compute_dtype
from gradtx._src.curvature.hessian_diagonal import mean_over_axis
from gradtx._src.curvature.probes import PROBES, probe_key, probe_like


def leaf_trace_samples(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_probes: int,
    probe: str = "rademacher",
    axis_name: Any = None,
) -> Any:
  r"""Per-probe, per-leaf samples :math:`\sum_{i \in \text{leaf}} z_i (Hz)_i`.

  Returns:
    A tree like ``params`` whose leaves have shape ``(num_probes,)`` (float32 or wider).
  """
  validate.positive_int("num_probes", num_probes)
  validate.one_of("probe", probe, tuple(PROBES))
  _, lin = jax.linearize(jax.grad(mean_over_axis(fn, axis_name)), params)

  def one(k):
    z = probe_like(probe_key(key, k), params, probe)
    hz = lin(z)
    return jax.tree.map(
        lambda a, b: jnp.sum(a.astype(compute_dtype(a.dtype)) * b.astype(compute_dtype(b.dtype))), z, hz
    )

  samples = jax.lax.map(one, jnp.arange(num_probes))
  return samples if axis_name is None else jax.lax.pmean(samples, axis_name)


def mean_and_stderr(samples: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sample mean and its standard error (NaN for a single sample)."""
  k = samples.shape[0]
  mean = jnp.mean(samples)
  if k == 1:
    return mean, jnp.full_like(mean, jnp.nan)
  return mean, jnp.std(samples, ddof=1) / jnp.sqrt(jnp.asarray(k, mean.dtype))


def estimate_hessian_trace(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_probes: int = 10,
    *,
    probe: str = "rademacher",
    axis_name: Any = None,
) -> tuple[jax.Array, jax.Array]:
  r"""Hutchinson's estimate of :math:`\operatorname{tr} \nabla^2 f(p)` and its standard error.

  .. math::
    \widehat{\operatorname{tr}} = \frac1K \sum_k z_k^\top H z_k,\qquad
    \mathrm{se} = \operatorname{std}_k(z_k^\top H z_k) / \sqrt K.

  Args:
    fn: scalar function of ``params``.
    params: the point, any pytree of floating arrays.
    key: PRNG key; probe ``k`` is ``probe_like(fold_in(key, k), params, probe)``.
    num_probes: :math:`K`, a Python int >= 1 (the gradient is linearized once, then one tangent
      pass per probe, run sequentially).
    probe: "rademacher" (default; variance :math:`2(\lVert H\rVert_F^2 - \sum_i H_{ii}^2)`, zero
      for a diagonal Hessian) or "gaussian" (variance :math:`2\lVert H\rVert_F^2`).
    axis_name: average every per-probe sample over this mapped axis (data parallelism).

  Returns:
    ``(trace, stderr)``, scalars; ``stderr`` (sample standard deviation with ``ddof=1`` over
    :math:`\sqrt K`) is NaN when ``num_probes == 1``.

  Example:
    >>> tr, se = gradtx.curvature.estimate_hessian_trace(loss, params, jax.random.key(0), 100)

  References:
    Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines", Comm. Statist. Simulation Comput. 18 (1989).
    Avron & Toledo, "Randomized algorithms for estimating the trace of an implicit symmetric
    positive semi-definite matrix", J. ACM 58 (2011).
  """
  samples = leaf_trace_samples(fn, params, key, num_probes, probe, axis_name)
  # cast: sum() of the leaves is typed as possibly its int start 0, which only an empty tree returns.
  total = cast(jax.Array, sum(jax.tree.leaves(samples)))
  return mean_and_stderr(total)
