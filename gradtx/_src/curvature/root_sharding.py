"""Spreading the factor-sized work of Kronecker preconditioners (roots, eigh, QR) over a mesh axis.

Shampoo and SOAP compute their statistics on the global matrices; without this option every
device then computes every inverse root, eigendecomposition or QR on replicated factors. With
``root_sharding`` set, the factor matrices of equal shape and dtype (all blocks of all leaves)
are stacked along a batch axis, padded with identities to a multiple of the number of shards,
constrained to be sharded over the named mesh axes, decomposed under ``jax.shard_map`` (each
device runs its ``padded / shards`` matrices), and constrained back to replicated.

``shard_map`` rather than a sharding constraint alone: GSPMD splits a batched ``eigh`` custom call
along its batch axis, but not the sequential ``lax.map`` that :mod:`gradtx._src.core.linalg` uses
on CPU, nor a ``while_loop`` whose stopping test reduces over the whole batch (every device would
run the full batch).
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

RootSharding = NamedSharding | str | tuple[str, ...] | None


def check(where: str, root_sharding: Any) -> None:
  """Raise ValueError unless ``root_sharding`` is None, mesh axis name(s) or a one-axis NamedSharding."""
  if root_sharding is None:
    return
  if isinstance(root_sharding, str) and root_sharding:
    return
  if (isinstance(root_sharding, tuple) and root_sharding
      and all(isinstance(a, str) and a for a in root_sharding)):
    return
  if isinstance(root_sharding, NamedSharding):
    spec = tuple(root_sharding.spec)
    if len(spec) == 1 and spec[0] is not None:
      return
  raise ValueError(
      f"{where}: root_sharding must be None, a mesh axis name (or tuple of names) of the mesh set "
      "with jax.set_mesh, or a NamedSharding whose spec names the axes of the stacking axis only, "
      f"e.g. NamedSharding(mesh, P('data')); got {root_sharding!r}."
  )


def _resolve(root_sharding: Any) -> tuple[Any, Any, int]:
  """(mesh, spec entry of the stacking axis, number of shards), at trace time."""
  if isinstance(root_sharding, NamedSharding):
    mesh, axes = root_sharding.mesh, root_sharding.spec[0]
  else:
    mesh, axes = jax.sharding.get_abstract_mesh(), root_sharding
    if mesh.empty:
      raise ValueError(
          f"root_sharding={root_sharding!r} names mesh axes, but no mesh is set: call the update "
          "under `with jax.set_mesh(mesh):`, or pass NamedSharding(mesh, P(axis)) instead."
      )
  names = (axes,) if isinstance(axes, str) else tuple(axes)
  missing = [a for a in names if a not in mesh.shape]
  if missing:
    raise ValueError(f"root_sharding: mesh axes {missing} are not in the mesh {dict(mesh.shape)}.")
  return mesh, axes, math.prod(mesh.shape[a] for a in names)


def _constrain(x: jax.Array, mesh: Any, spec: P) -> jax.Array:
  if isinstance(mesh, jax.sharding.Mesh):
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
  return jax.lax.with_sharding_constraint(x, spec)  # the context (abstract) mesh


def grouped_map(
    fn: Callable[..., Any],
    items: Sequence[tuple[jax.Array, ...]],
    root_sharding: Any,
    *consts: jax.Array,
    segmented: bool = False,
) -> list[Any]:
  """``fn`` over all items, grouped by shape and dtype, each group's batch split over the mesh.

  Args:
    fn: ``fn(*batched, *consts) -> pytree``, every input and output leaf with a leading batch axis
      except ``consts``; it must treat the batch elements independently (the group is padded).
    items: tuples of square matrices ``(k, n, n)``; the arrays in one tuple share ``k``.
    root_sharding: see :func:`check`.
    *consts: replicated arrays passed to every call of ``fn``.
    segmented: also pass int32 segment ids (one per item of the group, padding its own) as the
      last batched input, and ``num_segments=`` and ``axis_name=`` (the mesh axes) as keywords.

  Returns:
    One output pytree per item, each leaf with leading axis ``k`` of that item, replicated.
  """
  mesh, axes, shards = _resolve(root_sharding)
  keys = [tuple((a.shape[1:], a.dtype) for a in item) for item in items]
  results: list[Any] = [None] * len(items)
  for key in dict.fromkeys(keys):
    idx = [i for i, k in enumerate(keys) if k == key]
    counts = [items[i][0].shape[0] for i in idx]
    total = sum(counts)
    pad = -(-total // shards) * shards - total
    stacked = []
    for j, (shape, dtype) in enumerate(key):
      parts = [items[i][j] for i in idx]
      if pad:
        parts.append(jnp.broadcast_to(jnp.eye(shape[-1], dtype=dtype), (pad,) + shape))
      stacked.append(_constrain(jnp.concatenate(parts), mesh, P(axes)))
    local_fn = fn
    if segmented:
      ids = np.repeat(np.arange(len(idx) + 1, dtype=np.int32), counts + [pad])
      stacked.append(_constrain(jnp.asarray(ids), mesh, P(axes)))
      local_fn = functools.partial(fn, num_segments=len(idx) + 1, axis_name=axes)
    sharded = jax.shard_map(
        local_fn,
        mesh=mesh if isinstance(mesh, jax.sharding.Mesh) else None,
        in_specs=(P(axes),) * len(stacked) + (P(),) * len(consts),
        out_specs=P(axes),
        check_vma=False,
    )
    out = jax.tree.map(lambda o, t=total: _constrain(o, mesh, P())[:t], sharded(*stacked, *consts))
    start = 0
    for i, c in zip(idx, counts):
      results[i] = jax.tree.map(lambda o, s=start, c=c: o[s:s + c], out)
      start += c
  return results
