"""PRNG keys kept in transformation state."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_key(key: Any, name: str = "key") -> jax.Array:
  """Turn an int seed or a PRNG key into a raw ``uint32[2]`` key.

  Raw keys (not typed ``jax.random.key`` arrays) are kept in state so that checkpoints with
  flax.serialization, orbax or pickle round-trip them bit for bit.
  """
  if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
    return jax.random.PRNGKey(int(key))
  if isinstance(key, (jax.Array, np.ndarray)) and key.shape == () and jnp.issubdtype(key.dtype, jnp.integer):
    # optax.inject_hyperparams turns an int seed into a scalar array.
    return jax.random.PRNGKey(key)
  if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  if isinstance(key, (jax.Array, np.ndarray)) and key.shape == (2,) and key.dtype == np.uint32:
    return jnp.asarray(key)
  raise TypeError(
      f"{name} must be an int seed or a PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)), "
      f"got {type(key).__name__}."
  )


def split(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Split a raw key into (key to keep in state, key to use now)."""
  new, use = jax.random.split(key)
  return new, use


def fresh(key: jax.Array) -> jax.Array:
  """A new buffer holding ``key``, for the state ``init`` returns.

  A factory converts its ``key`` once; if every ``init`` put that same array in its state, donating
  one state to a jitted step would delete the factory's key and break every later ``init``.
  """
  return jnp.array(key, copy=True)

