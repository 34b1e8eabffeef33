"""Shardings for optimizer state, so state can be created already sharded on a pod."""

from typing import Any

import jax
from jax.sharding import NamedSharding, PartitionSpec


def _path_key(path: tuple[Any, ...]) -> tuple[Any, ...]:
  return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def state_shardings(tx: Any, params: Any, params_shardings: Any = None) -> Any:
  """The shardings of ``tx.init(params)``'s leaves: each like the parameter it mirrors.

  A state leaf mirrors a parameter when its tree path ends with that parameter's path and it has
  the parameter's shape (``state[0].mu['dense']['kernel']`` mirrors ``params['dense']['kernel']``).
  Every other leaf (step counts, scalars, keys, packed or factored statistics) is replicated.

  Args:
    tx: a gradient transformation.
    params: the parameters, or ``jax.ShapeDtypeStruct`` stand-ins for them (nothing is materialized).
    params_shardings: a tree of ``NamedSharding`` like ``params``; default: each leaf's own
      ``.sharding`` (params must then be arrays or structs carrying a ``NamedSharding``).

  Returns:
    A tree of ``NamedSharding`` shaped like the state, for ``jax.jit(tx.init, out_shardings=...)``.

  Example:
    >>> shardings = gradtx.sharding.state_shardings(tx, params)
    >>> state = jax.jit(tx.init, out_shardings=shardings)(params)

  References:
    JAX documentation, "Distributed arrays and automatic parallelization".
  """
  if params_shardings is None:
    params_shardings = jax.tree.map(lambda p: p.sharding, params)
  flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
  flat_shardings = jax.tree.leaves(params_shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  if len(flat_shardings) != len(flat_params):
    raise ValueError(
        f"state_shardings: params has {len(flat_params)} leaves but params_shardings has {len(flat_shardings)}."
    )
  meshes = {s.mesh for s in flat_shardings if isinstance(s, NamedSharding)}
  if len(meshes) != 1:
    raise ValueError(f"state_shardings: params must be sharded with NamedShardings on one mesh, got {len(meshes)}.")
  replicated = NamedSharding(meshes.pop(), PartitionSpec())
  by_path = {_path_key(path): (leaf.shape, s) for (path, leaf), s in zip(flat_params, flat_shardings)}

  state_shapes = jax.eval_shape(tx.init, params)

  def choose(path, leaf):
    key = _path_key(path)
    for start in range(len(key)):
      match = by_path.get(key[start:])
      if match is not None and tuple(match[0]) == tuple(leaf.shape):
        return match[1]
    return replicated

  return jax.tree_util.tree_map_with_path(choose, state_shapes)
