"""Hutchinson estimates of the Hessian diagonal, alone or fused with the value and gradient."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core import validate
from gradtx._src.core.tree import compute_dtype
from gradtx._src.curvature.probes import PROBES, probe_key, probe_like


def _check(num_probes: int, probe: str) -> None:
  validate.positive_int("num_probes", num_probes)
  validate.one_of("probe", probe, tuple(PROBES))


def _z_hz(z: Any, hz: Any) -> Any:
  return jax.tree.map(lambda a, b: a.astype(compute_dtype(a.dtype)) * b.astype(compute_dtype(b.dtype)), z, hz)


def _pmean(tree: Any, axis_name: Any) -> Any:
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def mean_over_axis(fn: Callable[[Any], jax.Array], axis_name: Any) -> Callable[[Any], jax.Array]:
  """``fn`` averaged over the mapped axis, so its derivatives are those of the global batch.

  Differentiating the averaged loss is right under every mapping: under ``jax.shard_map`` with
  its default replication checks, the gradient of a local loss with respect to replicated
  params is already summed over devices, so averaging derivatives afterwards would be off by
  the axis size.
  """
  if axis_name is None:
    return fn
  return lambda p: jax.lax.pmean(fn(p), axis_name)


def value_grad_and_hessian_diagonal(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_probes: int = 1,
    *,
    probe: str = "rademacher",
    axis_name: Any = None,
) -> tuple[jax.Array, Any, Any]:
  r"""The value, gradient and a Hutchinson estimate of the Hessian diagonal, from one pass.

  .. math::
    \hat D = \frac1K \sum_{k=1}^K z_k \odot (\nabla^2 f(p)\, z_k), \qquad
    \mathbb E[\hat D] = \operatorname{diag} \nabla^2 f(p).

  With one probe this is a single ``jvp`` of ``value_and_grad(fn)``; with ``K > 1`` probes the
  gradient is linearized once (``jax.linearize``) and each probe costs one extra
  tangent pass, accumulated in a loop so memory does not grow with ``K``.

  Args:
    fn: scalar function of ``params`` (for a training loss, close over the batch and hold
      non-parameter model state fixed).
    params: the point, any pytree of floating arrays.
    key: PRNG key; probe ``k`` is ``probe_like(fold_in(key, k), params, probe)``.
    num_probes: :math:`K`, a Python int >= 1.
    probe: "rademacher" (packed random bits; exact when the Hessian is diagonal) or "gaussian".
    axis_name: under ``pmap``/``shard_map``/``vmap`` with this axis name, the value, gradient and
      diagonal are averaged over the axis (data parallelism: each device holds its shard of the
      batch and all use the same key).

  Returns:
    ``(value, grad, diag)``; ``grad`` and ``diag`` are trees like ``params`` in its dtypes.

  Example:
    >>> loss, g, d = gradtx.curvature.value_grad_and_hessian_diagonal(
    ...     lambda p: loss_fn(p, batch), params, jax.random.key(0))

  References:
    Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
    smoothing splines", Comm. Statist. Simulation Comput. 18 (1989).
    Bekas, Kokiopoulou & Saad, "An estimator for the diagonal of a matrix", Appl. Numer. Math. 57
    (2007).

  Notes:
    Rademacher probes are the default because they make the estimate exact on a diagonal Hessian;
    they are drawn 32 to a random 32-bit word (see :func:`rademacher_like`), which makes them
    nearly free next to the Hessian-vector product.
  """
  _check(num_probes, probe)
  value_and_grad = jax.value_and_grad(mean_over_axis(fn, axis_name))
  if num_probes == 1:
    z = probe_like(probe_key(key, 0), params, probe)
    (value, grad), (_, hz) = jax.jvp(value_and_grad, (params,), (z,))
    diag = _z_hz(z, hz)
  else:
    (value, grad), lin = jax.linearize(value_and_grad, params)

    def body(k, acc):
      z = probe_like(probe_key(key, k), params, probe)
      return jax.tree.map(jnp.add, acc, _z_hz(z, lin(z)[1]))

    zero = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.asarray(p).dtype)), params)
    acc = jax.lax.fori_loop(0, num_probes, body, zero)
    diag = jax.tree.map(lambda a: a * (1.0 / num_probes), acc)
  diag = jax.tree.map(lambda d, p: d.astype(jnp.asarray(p).dtype), diag, params)
  return _pmean((value, grad, diag), axis_name)


def estimate_hessian_diagonal(
    fn: Callable[[Any], jax.Array],
    params: Any,
    key: jax.Array,
    num_probes: int = 1,
    *,
    probe: str = "rademacher",
    axis_name: Any = None,
) -> Any:
  r"""A Hutchinson estimate of the diagonal of the Hessian of ``fn`` at ``params``.

  .. math::
    \hat D = \frac1K \sum_{k=1}^K z_k \odot (\nabla^2 f(p)\, z_k).

  Args:
    fn: scalar function of ``params``.
    params: the point, any pytree of floating arrays.
    key: PRNG key; probe ``k`` is ``probe_like(fold_in(key, k), params, probe)``.
    num_probes: :math:`K`, a Python int >= 1.
    probe: "rademacher" (default, exact on diagonal Hessians) or "gaussian".
    axis_name: average the estimate over this mapped axis (data parallelism).

  Returns:
    A tree like ``params``.

  Example:
    >>> d = gradtx.curvature.estimate_hessian_diagonal(loss, params, jax.random.key(0), num_probes=4)

  References:
    Bekas, Kokiopoulou & Saad, "An estimator for the diagonal of a matrix", Appl. Numer. Math. 57
    (2007).

  Notes:
    Per-coordinate variance of one probe: Rademacher :math:`\sum_{j \ne i} H_{ij}^2`, Gaussian
    :math:`2H_{ii}^2 + \sum_{j \ne i} H_{ij}^2`; ``K`` probes divide it by ``K``.
  """
  return value_grad_and_hessian_diagonal(
      fn, params, key, num_probes, probe=probe, axis_name=axis_name
  )[2]
