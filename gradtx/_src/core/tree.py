"""Tree helpers shared by every family."""

from typing import Any, cast

import jax
import jax.numpy as jnp


def _leaf_name(path: tuple[Any, ...]) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path) or "<root>"


def check_matching(where: str, updates: Any, reference: Any, names: tuple[str, str]) -> None:
  """Raise a ValueError naming the first leaf where two trees differ in structure or shape.

  Runs on shapes only, so under ``jit`` it costs nothing after tracing.
  """
  a_name, b_name = names
  a_paths = jax.tree_util.tree_flatten_with_path(updates)[0]
  b_paths = jax.tree_util.tree_flatten_with_path(reference)[0]
  a = {_leaf_name(p): x for p, x in a_paths}
  b = {_leaf_name(p): x for p, x in b_paths}
  if a.keys() != b.keys():
    only_a = sorted(a.keys() - b.keys())
    only_b = sorted(b.keys() - a.keys())
    detail = []
    if only_a:
      detail.append(f"leaves only in {a_name}: {only_a[:5]}")
    if only_b:
      detail.append(f"leaves only in {b_name}: {only_b[:5]}")
    if not detail:
      detail.append("same leaf names in a different container structure")
    raise ValueError(f"{where}: {a_name} and {b_name} have different tree structures; {'; '.join(detail)}.")
  for name, x in a.items():
    y = b[name]
    if jnp.shape(x) != jnp.shape(y):
      raise ValueError(
          f"{where}: {a_name} and {b_name} differ at leaf '{name}': shapes {jnp.shape(x)} and {jnp.shape(y)}."
      )


def compute_dtype(dtype: Any) -> jnp.dtype:
  """The dtype elementwise optimizer math runs in: float32 or wider."""
  return jnp.promote_types(dtype, jnp.float32)


def scalar_dtype(tree: Any) -> jnp.dtype:
  """float32, or the widest float dtype among the leaves: the dtype for scalar statistics."""
  return jnp.result_type(jnp.float32, *[jnp.asarray(x).dtype for x in jax.tree.leaves(tree)])


def zeros_like(tree: Any, dtype: Any = None) -> Any:
  """Zeros shaped like ``tree``, in ``dtype`` if given, else in each leaf's own dtype."""
  return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.asarray(x).dtype), tree)


def full_like(tree: Any, value: Any, dtype: Any = None) -> Any:
  """A constant tree shaped like ``tree``."""
  return jax.tree.map(lambda x: jnp.full(jnp.shape(x), value, dtype or jnp.asarray(x).dtype), tree)


def global_sq_norm(tree: Any) -> jax.Array:
  """Sum of squares over every leaf, accumulated in float32 or wider."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], jnp.float32)
  # cast: sum() is typed "Array | Literal[0]" for its start value, which only an empty tree returns.
  return cast(jax.Array, sum(jnp.sum(jnp.square(x.astype(compute_dtype(x.dtype)))) for x in leaves))


def global_norm(tree: Any) -> jax.Array:
  """Euclidean norm over all leaves concatenated, in float32 or wider."""
  return jnp.sqrt(global_sq_norm(tree))


def cast_like(tree: Any, like: Any) -> Any:
  """Cast every leaf of ``tree`` to the dtype of the matching leaf of ``like``."""
  return jax.tree.map(lambda x, y: x.astype(jnp.asarray(y).dtype), tree, like)


def mask_tree(mask: Any, params: Any) -> Any:
  """Resolve ``mask`` (None, a bool tree, or a callable of params) into a bool tree."""
  if mask is None:
    return jax.tree.map(lambda _: True, params)
  return mask(params) if callable(mask) else mask


def select(mask: Any, on: Any, off: Any) -> Any:
  """Leafwise ``on`` where ``mask`` is True, else ``off`` (mask is a Python-bool tree)."""
  return jax.tree.map(lambda m, a, b: a if m else b, mask, on, off)

