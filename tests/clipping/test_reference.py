"""Clipping transformations against the float64 NumPy references, step by step, to 1e-10."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.clipping as gc
from gradtx._src.optimizers.clipping import clipped_adagrad
from tests.reference import clipping_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

LR = 0.1


def sgd_after(tx):
  return optax.chain(tx, optax.scale(-LR))


CASES = {
    "global_default": (lambda: gc.clip_by_global_norm(0.3), lambda g, p: ref.clip_global(g, 0.3)[0]),
    "global_large": (lambda: gc.clip_by_global_norm(5.0), lambda g, p: ref.clip_global(g, 5.0)[0]),
    "value": (lambda: gc.clip_by_value(0.05), lambda g, p: ref.clip_value(g, 0.05)),
    "value_large": (lambda: gc.clip_by_value(0.7), lambda g, p: ref.clip_value(g, 0.7)),
    "block": (lambda: gc.clip_by_block_norm(0.2), lambda g, p: ref.clip_block(g, 0.2)),
    "agc_default": (lambda: gc.adaptive_grad_clip(), lambda g, p: ref.agc(g, p, 0.01, 1e-3)),
    "agc_custom": (lambda: gc.adaptive_grad_clip(0.1, eps=0.5), lambda g, p: ref.agc(g, p, 0.1, 0.5)),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_clip_matches_reference(case, problem):
  make, clip = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(sgd_after(make()), ref.ClipSgd(clip, LR), loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("q, tau, c0", [(0.5, 0.01, None), (0.9, 0.05, 0.2)])
def test_quantile_clip_matches_reference(problem, q, tau, c0):
  loss, init = PROBLEMS[problem]()
  reference = ref.QuantileClipSgd(q, tau, LR, c0)
  tx = sgd_after(gc.clip_by_quantile(q, tau, initial_threshold=c0))
  compare_trajectories(tx, reference, loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(learning_rate=1.0, max_norm=1.0),
        dict(learning_rate=0.5, max_norm=0.1, initial_accumulator_value=0.3, eps=1e-3, delayed=True),
    ],
)
def test_clipped_adagrad_matches_reference(problem, kwargs):
  loss, init = PROBLEMS[problem]()
  reference = ref.ClippedAdagradNorm(
      kwargs["learning_rate"], kwargs["max_norm"], kwargs.get("initial_accumulator_value", 0.0),
      kwargs.get("eps", 0.0), kwargs.get("delayed", False),
  )
  compare_trajectories(clipped_adagrad(**kwargs), reference, loss, init, steps=60)


def _example_loss(p, batch):
  return 0.5 * jnp.mean(jnp.sum((batch["x"] @ p["w"] + p["b"] - batch["y"]) ** 2, axis=1))


@pytest.mark.parametrize("max_norm", [0.5, 2.0, np.inf])
def test_per_example_clip_matches_loop(max_norm):
  rng = np.random.default_rng(0)
  batch = {"x": rng.standard_normal((7, 5)) * 3.0, "y": rng.standard_normal((7, 3))}
  params = {"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
  per_example = gc.per_example_gradients(_example_loss, params, batch)
  for i in range(7):  # the vmap helper equals a loop of jax.grad
    one = jax.grad(_example_loss)(params, {k: v[i : i + 1] for k, v in batch.items()})
    chex.assert_trees_all_close({k: v[i] for k, v in per_example.items()}, one, rtol=1e-12)
  expected, norms = ref.per_example_clip_loop(jax.tree.map(np.asarray, per_example), max_norm)
  total, got_norms = gc.clip_per_example(per_example, max_norm)
  chex.assert_trees_all_close(total, expected, rtol=1e-10)
  np.testing.assert_allclose(got_norms, norms, rtol=1e-12)
  tx = gc.per_example_clip(max_norm)
  grads = jax.tree.map(lambda g: g.mean(0), per_example)
  u, state = tx.update(grads, tx.init(params), params, per_example_grads=per_example)
  chex.assert_trees_all_close(u, jax.tree.map(lambda s: s / 7, expected), rtol=1e-10)
  np.testing.assert_allclose(state.norm, norms.mean(), rtol=1e-12)
  np.testing.assert_allclose(state.clipped, np.mean(norms > max_norm))
  u_sum, _ = gc.per_example_clip(max_norm, aggregate="sum").update(
      grads, tx.init(params), params, per_example_grads=per_example)
  chex.assert_trees_all_close(u_sum, expected, rtol=1e-10)
