"""The zoo of test problems shared by the contract suite and the per-family tests."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
  """A deterministic objective with a known minimum value (0 for all problems here)."""

  name: str
  loss: Callable[[Any], jax.Array]
  init: Callable[[Any], Any]  # dtype -> initial params


def _quadratic() -> Problem:
  rng = np.random.default_rng(0)
  dw = rng.uniform(0.5, 4.0, (4, 3))
  db = rng.uniform(0.5, 4.0, (3,))
  tw = rng.standard_normal((4, 3))
  tb = rng.standard_normal((3,))

  def loss(p):
    w, b = p["w"], p["b"]
    return 0.5 * jnp.sum(dw * (w - tw.astype(w.dtype)) ** 2) + 0.5 * jnp.sum(
        db * (b - tb.astype(b.dtype)) ** 2
    )

  def init(dtype=jnp.float32):
    return {"w": jnp.zeros((4, 3), dtype), "b": jnp.zeros((3,), dtype)}

  return Problem("quadratic", loss, init)


def _rosenbrock() -> Problem:
  def loss(p):
    x = p["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

  def init(dtype=jnp.float32):
    return {"x": jnp.asarray([-1.2, 1.0], dtype)}

  return Problem("rosenbrock", loss, init)


QUADRATIC = _quadratic()
ROSENBROCK = _rosenbrock()
PROBLEMS = (QUADRATIC, ROSENBROCK)
