"""Random probe directions regenerated from a key, so that only the key is ever stored."""

from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core import keys
from gradtx._src.core.tree import compute_dtype

DISTRIBUTIONS = ("normal", "rademacher")


def state_key(key: Any) -> jax.Array:
  """A fresh raw ``uint32[2]`` key for a new state, from an int seed, a PRNG key or an integer scalar array."""
  return keys.fresh(keys.as_key(key))


def probe(key: jax.Array, k: Any, params: Any, distribution: str) -> Any:
  """Probe ``k`` for ``key``: leaf ``i`` is drawn from ``fold_in(fold_in(key, k), i)``.

  Leaves are drawn in float32 or wider (the params' compute dtype); ``normal`` is N(0, I),
  ``rademacher`` is +-1 with probability 1/2.
  """
  pk = jax.random.fold_in(key, k)
  leaves, treedef = jax.tree.flatten(params)
  out = []
  for i, p in enumerate(leaves):
    lk = jax.random.fold_in(pk, i)
    dt = compute_dtype(jnp.asarray(p).dtype)
    if distribution == "normal":
      out.append(jax.random.normal(lk, jnp.shape(p), dt))
    else:
      out.append(jax.random.rademacher(lk, jnp.shape(p), dt))
  return jax.tree.unflatten(treedef, out)


def shifted(params: Any, z: Any, scale: Any) -> Any:
  """``params + scale * z`` leafwise, computed in float32 or wider, in each leaf's dtype."""

  def one(p, v):
    return (p.astype(v.dtype) + jnp.asarray(scale, v.dtype) * v).astype(p.dtype)

  return jax.tree.map(one, params, z)


def template(updates: Any, params: Any) -> Any:
  """The tree whose structure and dtypes the estimate takes: the updates, or params if None."""
  return params if updates is None else updates
