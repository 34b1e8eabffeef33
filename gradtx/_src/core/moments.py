"""Elementwise moment arithmetic shared by the Adam-like transformations."""

from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core.tree import compute_dtype


def ema(updates: Any, moments: Any, decay: Any, order: int) -> Any:
  """``decay * moment + (1 - decay) * g**order`` leafwise, kept in each moment's dtype."""

  def one(g, m):
    dt = compute_dtype(m.dtype)
    g = g.astype(dt)
    gp = g if order == 1 else (jnp.square(g) if order == 2 else g**order)
    d = jnp.asarray(decay, dt)
    return (d * m.astype(dt) + (1 - d) * gp).astype(m.dtype)

  return jax.tree.map(one, updates, moments)


def init_moment(params: Any, dtype: Any = None) -> Any:
  """A zero moment like ``params``, in ``dtype`` when given (``mu_dtype``)."""
  return jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), dtype or jnp.asarray(p).dtype), params)
