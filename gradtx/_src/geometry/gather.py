"""Inside ``shard_map``: gather a sharded matrix, apply a whole-matrix map, keep the local block."""

from collections.abc import Callable
from typing import Any

import jax
from jax import lax
from jax.sharding import PartitionSpec


def path_name(path: Any) -> str:
  """A tree path as ``/``-joined keys, e.g. ``"layer_0/mlp/kernel"``."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def spec_lookup(specs: Any) -> Callable[[str, Any], Any]:
  """A rule ``(path, leaf) -> PartitionSpec | None`` from a rule or a tree of PartitionSpecs."""
  if specs is None or callable(specs):
    return specs or (lambda path, leaf: None)
  flat = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda x: x is None or isinstance(x, PartitionSpec))[0]
  table = {path_name(p): s for p, s in flat}
  return lambda path, leaf: table.get(path)


def gathered(fn: Callable[[jax.Array], jax.Array], x: jax.Array, spec: Any) -> jax.Array:
  """``fn`` applied to the global array whose local block (inside ``shard_map``) is ``x``.

  ``spec`` is the leaf's ``PartitionSpec`` in the ``shard_map``'s ``in_specs``: every axis it
  shards is all-gathered (tiled) over its mesh axes, ``fn`` runs on the full array, and the
  block this device holds is sliced back out. With ``spec`` None this is ``fn(x)``.
  """
  if spec is None:
    return fn(x)
  entries = list(spec) + [None] * (x.ndim - len(spec))
  full = x
  for dim, names in enumerate(entries):
    if names is not None:
      full = lax.all_gather(full, names, axis=dim, tiled=True)
  out = fn(full)
  for dim, names in enumerate(entries):
    if names is not None:
      size = x.shape[dim]
      out = lax.dynamic_slice_in_dim(out, lax.axis_index(names) * size, size, axis=dim)
  return out
