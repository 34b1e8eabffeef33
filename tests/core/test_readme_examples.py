"""The README's code examples run as written."""

import re

import jax.numpy as jnp
import numpy as np

from benchmarks import readme_table


def _python_blocks():
  with open(readme_table.README) as f:
    return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_chaining_example_runs_and_descends():
  block = next(b for b in _python_blocks() if "optax.chain(" in b)
  namespace = {}
  exec(block, namespace)
  start = namespace["loss"]({"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)})
  assert float(namespace["loss"](namespace["params"])) < 0.1 * float(start)


def test_flax_nnx_example_runs_and_descends():
  block = next(b for b in _python_blocks() if "nnx.Optimizer" in b)
  namespace = {}
  exec(block, namespace)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((32, 64)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 32))
  model, optimizer, train_step = namespace["model"], namespace["optimizer"], namespace["train_step"]
  losses = [float(train_step(model, optimizer, x, y)) for _ in range(30)]
  assert losses[-1] < 0.5 * losses[0]
