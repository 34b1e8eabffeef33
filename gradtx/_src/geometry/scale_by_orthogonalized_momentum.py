"""Muon's direction: EMA momentum (Nesterov by default), orthogonalized per matrix and rescaled."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.geometry.gather import gathered, path_name, spec_lookup
from gradtx._src.geometry.orthogonalize import (
    NS_COEFFS,
    as_matrix,
    fans,
    orthogonalize_newton_schulz,
    orthogonalize_polar,
)

SHAPE_SCALINGS = ("max_ratio", "match_rms", "rms_to_rms", "none")


class ScaleByOrthogonalizedMomentumState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # EMA momentum, in mu_dtype


def shape_scale(shape: tuple[int, ...], shape_scaling: str) -> float:
  """The per-matrix factor multiplying the orthogonalized update (JAX ``(in, out)`` layout).

  ``"max_ratio"``: :math:`\\sqrt{\\max(1, \\text{fan\\_out}/\\text{fan\\_in})}` (Muon reference);
  ``"match_rms"``: :math:`0.2\\sqrt{\\max(\\text{fan\\_in}, \\text{fan\\_out})}` (Moonlight, update
  RMS about 0.2 like AdamW); ``"rms_to_rms"``: :math:`\\sqrt{\\text{fan\\_out}/\\text{fan\\_in}}`
  (dual of the RMS-to-RMS operator norm); ``"none"``: 1.
  """
  fan_in, fan_out = fans(shape)
  if shape_scaling == "max_ratio":
    return math.sqrt(max(1.0, fan_out / fan_in))
  if shape_scaling == "match_rms":
    return 0.2 * math.sqrt(max(fan_in, fan_out))
  if shape_scaling == "rms_to_rms":
    return math.sqrt(fan_out / fan_in)
  return 1.0


def _global_shape(local: tuple[int, ...], spec: Any) -> tuple[int, ...]:
  """The global shape of a leaf whose local block inside shard_map has shape ``local``."""
  out = list(local)
  for dim, names in enumerate(spec):
    if names is not None:
      for name in (names,) if isinstance(names, str) else names:
        out[dim] *= jax.lax.axis_size(name)
  return tuple(out)


def orthogonalize(x: jax.Array, method: str, ns_steps: int, coeffs: Any, ns_dtype: Any) -> jax.Array:
  """Orthogonalize one leaf viewed as a ``(fan_in, fan_out)`` matrix; returns ``x``'s shape."""
  m = as_matrix(x)
  if method == "newton_schulz":
    o = orthogonalize_newton_schulz(m, ns_steps, coeffs, dtype=ns_dtype)
  else:
    o = orthogonalize_polar(m, method)
  return o.reshape(x.shape)


def scale_by_orthogonalized_momentum(
    b1: Any = 0.95,
    *,
    nesterov: bool = True,
    ns_steps: int = 5,
    coeffs: tuple[float, float, float] = NS_COEFFS,
    method: str = "newton_schulz",
    shape_scaling: str = "max_ratio",
    ns_dtype: Any = None,
    mu_dtype: Any = None,
    shard_map_specs: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Muon's direction: orthogonalize the (Nesterov) EMA momentum of every matrix leaf.

  .. math::
    M_t = \beta M_{t-1} + (1-\beta) G_t,\quad
    N_t = (1-\beta) G_t + \beta M_t \ \text{(nesterov)}\ \text{else}\ M_t,\quad
    u_t = s(\text{shape})\, \mathrm{NS}_k(N_t)

  where :math:`\mathrm{NS}_k` is :func:`orthogonalize_newton_schulz` (or the exact polar factor)
  on the leaf viewed as a ``(fan_in, fan_out)`` matrix and :math:`s` is :func:`shape_scale`.

  Args:
    b1: momentum :math:`\beta`, in [0, 1).
    nesterov: use the look-ahead :math:`N_t`.
    ns_steps: Newton-Schulz iterations, an int >= 1.
    coeffs: the quintic's coefficients (a, b, c).
    method: ``"newton_schulz"`` (default), or ``"svd"`` / ``"eigh"`` for the exact polar factor.
    shape_scaling: ``"max_ratio"`` (Muon), ``"match_rms"`` (Moonlight), ``"rms_to_rms"`` or
      ``"none"``; see :func:`shape_scale`.
    ns_dtype: dtype of the iteration; None is float32 or wider.
    mu_dtype: dtype of the momentum; None keeps the gradients' dtype.
    shard_map_specs: only for ``update`` called inside ``jax.shard_map``: the params'
      ``PartitionSpec`` tree (the ``in_specs`` of the shard_map) or a rule
      ``(path, leaf) -> PartitionSpec``. Each sharded leaf is all-gathered, orthogonalized as
      the whole matrix and sliced back, instead of orthogonalizing the local block. Not needed
      under plain ``jit`` with sharded arrays, where XLA partitions the global computation.

  Returns:
    A gradient transformation for trees whose leaves all have at least 2 axes (2-D ``(in, out)``
    matrices; conv kernels ``(H, W, I, O)`` are flattened to ``(H*W*I, O)``). Route other
    leaves elsewhere, as :func:`muon` does.

  Example:
    >>> tx = optax.chain(gradtx.geometry.scale_by_orthogonalized_momentum(),
    ...                  gradtx.scale_by_learning_rate(0.02))

  References:
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024);
    Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982.

  Notes:
    The shape factor is defined on fan_out/fan_in of the JAX ``(in, out)`` layout, i.e.
    ``shape[1] / shape[0]`` for a dense kernel: the reference's torch ``(out, in)``
    ``size(-2)/size(-1)``. A literal port to JAX arrays would invert it. Leaves with more than
    two axes are kernels, not batches of matrices (use :func:`orthogonalize_newton_schulz`
    directly for stacked matrices).
  """
  validate.beta("b1", b1)
  validate.positive_int("ns_steps", ns_steps)
  validate.one_of("method", method, ("newton_schulz", "svd", "eigh"))
  validate.one_of("shape_scaling", shape_scaling, SHAPE_SCALINGS)
  specs = spec_lookup(shard_map_specs)

  def init_fn(params):
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
      if jnp.ndim(p) < 2:
        raise ValueError(
            f"scale_by_orthogonalized_momentum: leaf '{jax.tree_util.keystr(path)}' has shape "
            f"{jnp.shape(p)}; every leaf must have at least 2 axes. Use muon(), which sends other "
            f"leaves to its fallback, or optax.partition."
        )
    return ScaleByOrthogonalizedMomentumState(count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_orthogonalized_momentum", updates, state.mu, ("updates", "state"))
    beta = resolve(b1, state.count)

    def moment(g, m):
      dt = compute_dtype(m.dtype)
      return (beta * m.astype(dt) + (1.0 - beta) * g.astype(dt)).astype(m.dtype)

    mu = jax.tree.map(moment, updates, state.mu)

    def direction(path, g, m):
      dt = compute_dtype(g.dtype)
      n = m.astype(dt)
      if nesterov:
        n = (1.0 - beta) * g.astype(dt) + beta * n
      spec = specs(path_name(path), g)
      o = gathered(lambda v: orthogonalize(v, method, ns_steps, coeffs, ns_dtype), n, spec)
      full_shape = o.shape if spec is None else _global_shape(g.shape, spec)
      return (shape_scale(full_shape, shape_scaling) * o).astype(g.dtype)

    out = jax.tree_util.tree_map_with_path(direction, updates, mu)
    return out, ScaleByOrthogonalizedMomentumState(count=optax.safe_int32_increment(state.count), mu=mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
