"""Hyperparameters that may be constants, arrays or schedules of the step count."""

from typing import Any

import jax
import jax.numpy as jnp


def resolve(value: Any, count: jax.Array) -> Any:
  """Evaluate ``value`` at the 0-based step ``count`` if it is a schedule, else return it."""
  return value(count) if callable(value) else value


def is_static_zero(value: Any) -> bool:
  """True for a Python number equal to zero.

  Transformations leave out a stage (and its state) only for a Python zero: an array or a
  schedule always takes the general path, so that ``optax.inject_hyperparams``, which turns
  numbers into arrays, sees the same state structure in ``init`` and ``update``.
  """
  return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def power(base: Any, t: jax.Array) -> jax.Array:
  """``base ** t`` in float32 or wider, for bias corrections with an int32 step ``t``."""
  base = jnp.asarray(base)
  dtype = jnp.promote_types(base.dtype, jnp.float32)
  return jnp.power(base.astype(dtype), t.astype(dtype))
