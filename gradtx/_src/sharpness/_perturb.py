"""The ascent step shared by SAM, ASAM and GAM: a point at distance rho in the gradient direction."""

from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core.tree import _leaf_name, compute_dtype, global_norm, mask_tree


def not_bias(params: Any) -> Any:
  """ASAM's default mask: True for every leaf whose path does not end in ``bias``."""
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  return jax.tree_util.tree_unflatten(treedef, [not _leaf_name(p).endswith("bias") for p, _ in flat])


def ascent_point(
    grads: Any,
    params: Any,
    rho: Any,
    *,
    adaptive: bool,
    eta: Any,
    mask: Any,
    normalize: bool,
    eps: Any,
) -> Any:
  r"""``params + e`` with :math:`e = \rho\, T^2 g / (\lVert T g \rVert_2 + \epsilon)`.

  :math:`T = |w| + \eta` on the leaves ``mask`` selects when ``adaptive``, else :math:`T = 1`; the
  norm is global (all leaves together). Without ``normalize`` :math:`e = \rho\, T^2 g`. The
  arithmetic runs in float32 or wider and the point is cast to each leaf's dtype.
  """
  scaled = mask_tree(not_bias if mask is None else mask, params) if adaptive else None

  def t_of(p, m):
    dt = compute_dtype(p.dtype)
    if not m:
      return jnp.ones([], dt)
    return jnp.abs(p.astype(dt)) + jnp.asarray(eta, dt)

  if adaptive:
    ts = jax.tree.map(t_of, params, scaled)
  else:
    ts = jax.tree.map(lambda p: jnp.ones([], compute_dtype(p.dtype)), params)

  scaled_g = jax.tree.map(lambda g, t: t * g.astype(t.dtype), grads, ts)
  factor = rho / (global_norm(scaled_g) + eps) if normalize else rho

  def point(p, sg, t):
    dt = compute_dtype(p.dtype)
    return (p.astype(dt) + jnp.asarray(factor, dt) * (t * sg).astype(dt)).astype(p.dtype)

  return jax.tree.map(point, params, scaled_g, ts)
