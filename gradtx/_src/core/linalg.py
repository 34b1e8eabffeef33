"""Matrix decompositions that are safe to run many at once on XLA's CPU backend.

jaxlib's CPU LAPACK kernels split a *batched* decomposition over XLA's intra-op thread pool and
block until the pieces finish. When several such kernels run concurrently (independent leaves,
or inside ``lax.cond``), each can hold a pool thread while waiting for work queued behind the
others: on a machine with few cores the step deadlocks (seen with jaxlib 0.10.2 on 2 cores).
These wrappers run the batch as a sequential ``lax.map`` of unbatched decompositions, which never
use the pool; on accelerators they call the batched kernel directly.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def _unbatched(fn: Callable[[jax.Array], Any], a: jax.Array) -> Any:
  if a.ndim <= 2 or jax.default_backend() != "cpu":
    return fn(a)
  batch = a.shape[:-2]
  flat = a.reshape((-1,) + a.shape[-2:])
  out = jax.lax.map(fn, flat)
  return jax.tree.map(lambda x: x.reshape(batch + x.shape[1:]), out)


def map_matrices(fn: Callable[..., Any], *xs: jax.Array) -> Any:
  """``fn`` of unbatched matrices over a shared leading batch axis: ``lax.map`` on CPU, ``vmap`` elsewhere."""
  if jax.default_backend() == "cpu":
    return jax.lax.map(lambda a: fn(*a), xs)
  return jax.vmap(fn)(*xs)


def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``jnp.linalg.eigh`` over leading batch axes, without the CPU thread-pool deadlock."""
  return _unbatched(jnp.linalg.eigh, a)


def svd(a: jax.Array, full_matrices: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``jnp.linalg.svd`` over leading batch axes, without the CPU thread-pool deadlock."""
  return _unbatched(lambda x: jnp.linalg.svd(x, full_matrices=full_matrices), a)


def qr(a: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``jnp.linalg.qr`` over leading batch axes, without the CPU thread-pool deadlock."""
  return _unbatched(jnp.linalg.qr, a)
