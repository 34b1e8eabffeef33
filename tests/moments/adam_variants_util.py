"""Shared helpers for the Adam-variant tests (AdEMAMix, MARS, EXAdam, FAdam, Ano, AdamP)."""

import jax
import jax.numpy as jnp
import numpy as np

PARAMS = {"w": jnp.full((3, 2), 0.5), "b": jnp.full((2,), -0.3)}


def random_grads(n=20, seed=0, like=PARAMS):
  """``n`` float64 gradient trees shaped like ``like``, from a fixed seed."""
  rng = np.random.default_rng(seed)
  return [jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), like) for _ in range(n)]


def run_updates(tx, grads_seq, params=PARAMS, **extra):
  """The updates of ``tx`` on a fixed gradient sequence at fixed params (one jitted update)."""
  update = jax.jit(lambda g, s, p: tx.update(g, s, p, **extra))
  state = tx.init(params)
  out = []
  for g in grads_seq:
    u, state = update(g, state, params)
    out.append(u)
  return out
