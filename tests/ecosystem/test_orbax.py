"""Every registry entry's state (PRNG keys and step counts included) survives an Orbax checkpoint,
and a resumed run is bit-identical to an uninterrupted one."""

import chex
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

import gradtx
from tests.contract import harness
from tests.problems import QUADRATIC


def _steps(spec, tx, n, params, state):
  problem = harness.problem_for(spec, QUADRATIC)
  step = jax.jit(lambda p, s: harness.step(spec, tx, problem, p, s)[:2])
  for _ in range(n):
    params, state = step(params, state)
  return params, state


@pytest.fixture(scope="module")
def checkpointer():
  with ocp.StandardCheckpointer() as ckpt:
    yield ckpt


@pytest.mark.parametrize("name", gradtx.list_optimizers())
def test_orbax_resume_is_bit_identical(name, tmp_path, checkpointer):
  spec = gradtx.get_spec(name)
  tx = spec.build()
  start = harness.problem_for(spec, QUADRATIC).init(jnp.float32)
  straight = _steps(spec, tx, 6, start, tx.init(start))

  middle = _steps(spec, tx, 3, start, tx.init(start))
  path = tmp_path / "ckpt"
  checkpointer.save(path, middle)
  checkpointer.wait_until_finished()
  template = jax.eval_shape(lambda: (start, tx.init(start)))
  restored = checkpointer.restore(path, template)
  chex.assert_trees_all_equal(restored, middle)
  chex.assert_trees_all_equal(_steps(spec, tx, 3, *restored), straight)
