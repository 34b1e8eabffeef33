"""Shared pieces of the clipping transformations: bound validation and scaling."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._src.core.tree import check_matching


def check_bound(where: str, name: str, value: Any) -> None:
  """Raise unless ``value > 0``; ``inf`` is allowed (it turns the clip into the identity)."""
  if value is None or callable(value) or isinstance(value, jax.core.Tracer):
    return
  try:
    array = np.asarray(value, dtype=float)
  except (TypeError, ValueError):
    return
  if array.size != 1:
    return
  x = float(array.reshape(()))
  if math.isinf(x) and x > 0:
    return
  if not (math.isfinite(x) and x > 0.0):
    raise ValueError(f"{where}: {name} must be > 0 (inf disables clipping), got {value!r}.")


def scale_leaf(g: jax.Array, factor: jax.Array) -> jax.Array:
  """``g * factor`` in float32 or wider, returned in ``g``'s dtype (one multiply per element)."""
  dt = jnp.promote_types(g.dtype, jnp.float32)
  return (g.astype(dt) * factor.astype(dt)).astype(g.dtype)


def clip_factor(norm: jax.Array, bound: Any) -> jax.Array:
  """``min(1, bound / norm)`` as a scalar (or array) factor; 1 where ``norm <= bound`` or norm = 0."""
  bound = jnp.asarray(bound, norm.dtype)
  return jnp.where(norm > bound, bound / jnp.where(norm > bound, norm, 1.0), jnp.ones_like(norm))


def check_structure(where: str, updates: Any, state_tree: Any) -> None:
  """Raise a ValueError naming the leaves if ``updates`` and a per-leaf state tree differ in structure."""
  # jaxlib ships no type stub for PyTreeDef, so mypy cannot see its __eq__.
  if jax.tree.structure(updates) != jax.tree.structure(state_tree):  # type: ignore[operator]
    check_matching(where, updates, state_tree, ("updates", "state"))
