"""Hutchinson trace of the Hessian with per-leaf (layer) traces, as in PyHessian and HAWQ-V2."""

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from gradtx._src.curvature.hessian_trace import leaf_trace_samples, mean_and_stderr


class HessianTrace(NamedTuple):
  trace: jax.Array  # estimate of tr(H)
  stderr: jax.Array  # its standard error (NaN for one probe)
  leaf_traces: Any  # tree like params: estimate of tr(H_l), the diagonal block of leaf l
  leaf_stderr: Any  # tree like params: standard errors of leaf_traces
  leaf_mean_traces: Any  # tree like params: tr(H_l) / n_l, HAWQ-V2's layer sensitivity


def hessian_trace(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_probes: int = 100,
    *,
    probe: str = "rademacher",
    axis_name: Any = None,
) -> HessianTrace:
  r"""Hutchinson's trace of the Hessian, in total and per leaf (layer sensitivity).

  .. math::
    \widehat{\operatorname{tr}}(H_l) = \frac1K\sum_k \sum_{i \in l} z_{k,i} (H z_k)_i,

  with one probe :math:`z_k` over all parameters, so the leaf traces add up to the total.

  Args:
    fn: scalar function of ``params`` (hold batch and model state fixed).
    params: the point, any pytree of floating arrays.
    key: PRNG key; probe ``k`` is ``probe_like(fold_in(key, k), params, probe)``.
    num_probes: :math:`K` (Python int >= 1).
    probe: "rademacher" or "gaussian".
    axis_name: average every per-probe sample over this mapped axis (data parallelism).

  Returns:
    A :class:`HessianTrace` (trace, stderr, leaf_traces, leaf_stderr, leaf_mean_traces).

  Example:
    >>> ht = gradtx.diagnostics.hessian_trace(loss, params, jax.random.key(0), 200)
    >>> ranking = sorted(jax.tree_util.tree_leaves_with_path(ht.leaf_mean_traces), key=lambda kv: -kv[1])

  References:
    Yao, Gholami, Keutzer & Mahoney, "PyHessian", arXiv:1912.07145.
    Dong et al., "HAWQ-V2: Hessian Aware trace-Weighted Quantization of Neural Networks",
    arXiv:1911.03852.

  Notes:
    A fixed number of probes (jit-able) instead of PyHessian's stop-at-relative-change-1e-3 loop.
  """
  samples = leaf_trace_samples(fn, params, key, num_probes, probe, axis_name)
  # cast: sum() of the leaves is typed as possibly its int start 0, which only an empty tree returns.
  total, stderr = mean_and_stderr(cast(jax.Array, sum(jax.tree.leaves(samples))))
  leaves, treedef = jax.tree.flatten(samples)
  pairs = [mean_and_stderr(s) for s in leaves]
  leaf_traces = jax.tree.unflatten(treedef, [m for m, _ in pairs])
  leaf_stderr = jax.tree.unflatten(treedef, [s for _, s in pairs])
  leaf_mean = jax.tree.map(lambda t, p: t / max(jnp.size(p), 1), leaf_traces, params)
  return HessianTrace(total, stderr, leaf_traces, leaf_stderr, leaf_mean)
