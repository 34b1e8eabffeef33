"""Clipping invariants: bounds hold, identity below the bound, special cases, quantile tracking."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.clipping as gc
from gradtx._src.core.tree import global_norm
from gradtx._src.optimizers.clipping import clipped_adagrad
from gradtx._src.optimizers.moments import adagrad, adagrad_norm


def random_tree(seed, n_leaves, scale):
  rng = np.random.default_rng(seed)
  shapes = [(3, 4), (5,), (2, 2, 3), (), (1,)][:n_leaves]
  return {f"l{i}": jnp.asarray(rng.standard_normal(s) * scale) for i, s in enumerate(shapes)}


@hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 2**16), n_leaves=st.integers(1, 5),
    log_scale=st.floats(-4, 4), log_bound=st.floats(-3, 3),
)
def test_norms_never_exceed_the_bound(seed, n_leaves, log_scale, log_bound):
  g = random_tree(seed, n_leaves, 10.0**log_scale)
  c = 10.0**log_bound
  n = float(global_norm(g))
  # global: ||u|| = min(n, c); a non-negative multiple of g; identity below the bound
  u, s = gc.clip_by_global_norm(c).update(g, gc.clip_by_global_norm(c).init(g))
  assert float(global_norm(u)) <= c * (1 + 1e-12)
  np.testing.assert_allclose(float(global_norm(u)), min(n, c), rtol=1e-12)
  assert bool(s.clipped) == (n > c)
  np.testing.assert_allclose(float(s.norm), n, rtol=1e-12)
  if n <= c:
    chex.assert_trees_all_equal(u, g)
  # per leaf
  u, _ = gc.clip_by_block_norm(c).update(g, gc.clip_by_block_norm(c).init(g))
  for leaf in jax.tree.leaves(u):
    assert float(jnp.linalg.norm(leaf.ravel())) <= c * (1 + 1e-12)
  # per value
  u, s = gc.clip_by_value(c).update(g, gc.clip_by_value(c).init(g))
  assert all(float(jnp.max(jnp.abs(leaf))) <= c for leaf in jax.tree.leaves(u))
  # per example: a batch of 3 scaled copies
  pe = jax.tree.map(lambda x: jnp.stack([x, 2 * x, 0.5 * x]), g)
  total, norms = gc.clip_per_example(pe, c)
  assert float(global_norm(total)) <= 3 * c * (1 + 1e-12)
  np.testing.assert_allclose(norms, [n, 2 * n, 0.5 * n], rtol=1e-12)


def test_global_norm_clip_is_idempotent_and_matches_optax():
  g = random_tree(0, 5, 3.0)
  tx = gc.clip_by_global_norm(1.0)
  u1, _ = tx.update(g, tx.init(g))
  u2, _ = tx.update(u1, tx.init(g))
  chex.assert_trees_all_close(u1, u2, rtol=1e-14)
  o, _ = optax.clip_by_global_norm(1.0).update(g, optax.clip_by_global_norm(1.0).init(g))
  chex.assert_trees_all_close(u1, o, rtol=1e-6)
  inf = gc.clip_by_global_norm(np.inf)
  chex.assert_trees_all_equal(inf.update(g, inf.init(g))[0], g)


def test_clip_by_value_matches_optax():
  g = random_tree(1, 5, 2.0)
  u, _ = gc.clip_by_value(0.5).update(g, gc.clip_by_value(0.5).init(g))
  chex.assert_trees_all_equal(u, optax.clip(0.5).update(g, optax.clip(0.5).init(g))[0])


def test_bfloat16_clip_keeps_dtype_and_norm_is_float32():
  g = jax.tree.map(lambda x: x.astype(jnp.bfloat16), random_tree(2, 3, 5.0))
  tx = gc.clip_by_global_norm(1.0)
  u, s = tx.update(g, tx.init(g))
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
  assert s.norm.dtype == jnp.float32


def test_agc_bounds_each_unit_and_leaves_small_units_unchanged():
  rng = np.random.default_rng(3)
  params = {"w": jnp.asarray(rng.standard_normal((6, 4))), "conv": jnp.asarray(rng.standard_normal((3, 3, 2, 5))),
            "b": jnp.asarray(rng.standard_normal(4))}
  grads = jax.tree.map(lambda p: p * jnp.asarray(rng.uniform(0.0, 0.05, p.shape[-1:] or ())), params)
  lam = 0.02
  tx = gc.adaptive_grad_clip(lam)
  u, state = tx.update(grads, tx.init(params), params)
  for k in params:
    axes = tuple(range(params[k].ndim - 1)) if params[k].ndim > 1 else None
    gn = np.sqrt(np.sum(np.asarray(grads[k]) ** 2, axis=axes))
    wn = np.maximum(np.sqrt(np.sum(np.asarray(params[k]) ** 2, axis=axes)), 1e-3)
    un = np.sqrt(np.sum(np.asarray(u[k]) ** 2, axis=axes))
    assert np.all(un <= lam * wn * (1 + 1e-12))
    small = gn <= lam * wn
    np.testing.assert_array_equal(un[small], gn[small])
    assert bool(state.clipped[k]) == bool(np.any(~small))


def test_quantile_clip_tracks_the_median_norm():
  # g = s e, s ~ Exponential(1): the median norm is ln 2. tau_t = 0.5 / sqrt(t + 1) (Robbins-Monro).
  # Seed fixed; the estimate's spread after 20000 steps is ~0.01, the tolerance 0.05 (> 4 sd).
  tx = gc.clip_by_quantile(0.5, lambda t: 0.5 / jnp.sqrt(t + 1.0), initial_threshold=3.0)
  s = jax.random.exponential(jax.random.PRNGKey(0), (20000,))
  g0 = {"v": jnp.ones(4) / 2.0}

  def body(state, scale):
    _, state = tx.update({"v": g0["v"] * scale}, state)
    return state, state.threshold

  state, path = jax.lax.scan(body, tx.init(g0), s)
  assert abs(float(state.threshold) - np.log(2.0)) < 0.05
  assert np.all(np.abs(np.diff(np.asarray(path))) <= 0.5 + 1e-12)  # moves at most tau per step
  tx90 = gc.clip_by_quantile(0.9, lambda t: 0.5 / jnp.sqrt(t + 1.0), initial_threshold=3.0)
  state90, _ = jax.lax.scan(lambda st_, x: (tx90.update({"v": g0["v"] * x}, st_)[1], 0.0), tx90.init(g0), s)
  assert abs(float(state90.threshold) - np.log(10.0)) < 0.15  # 0.9-quantile of Exp(1)


def test_clipped_adagrad_with_infinite_bound_is_adagrad():
  g = random_tree(4, 3, 2.0)
  for clipped, plain in [
      (clipped_adagrad(0.5, np.inf), adagrad_norm(0.5)),
      (clipped_adagrad(0.5, np.inf, coordinatewise=True, eps=1e-10), adagrad(0.5)),
  ]:
    s1, s2 = clipped.init(g), plain.init(g)
    for _ in range(3):
      u1, s1 = clipped.update(g, s1, g)
      u2, s2 = plain.update(g, s2, g)
      chex.assert_trees_all_close(u1, u2, rtol=1e-14)


def test_delayed_clipped_adagrad_is_linear_below_the_bound():
  g = random_tree(5, 3, 0.1)
  tx = clipped_adagrad(1.0, 10.0, initial_accumulator_value=1.0, delayed=True)
  u1, _ = tx.update(g, tx.init(g), g)
  u2, _ = tx.update(jax.tree.map(lambda x: 2 * x, g), tx.init(g), g)
  chex.assert_trees_all_close(u2, jax.tree.map(lambda x: 2 * x, u1), rtol=1e-14)


def test_state_reports_the_clip():
  g = {"a": jnp.asarray([3.0, 4.0])}
  tx = optax.chain(gc.clip_by_global_norm(1.0), optax.scale(-0.1))
  _, state = tx.update(g, tx.init(g))
  assert float(state[0].norm) == 5.0 and bool(state[0].clipped)
  _, state = tx.update({"a": jnp.asarray([0.3, 0.4])}, state)
  assert float(state[0].norm) == pytest.approx(0.5) and not bool(state[0].clipped)
