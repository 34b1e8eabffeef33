"""DP-FTRL: prefix sums vs a float64 NumPy reference, tree-noise variance, restarts, accounting."""

import math

import chex
import dp_accounting
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.privacy as gp
from gradtx._src.privacy.dp_tree_aggregate import tree_node_noise
from tests.privacy.test_reference import least_squares
from tests.reference import privacy_ref


@pytest.mark.parametrize("restart_every", [None, 5])
def test_ftrl_prefix_sums_match_the_reference(restart_every):
  pe_fn, ref_pe_fn, init = least_squares()
  lr, c, sigma, b, steps = 0.05, 1.0, 0.7, 8.0, 52
  tx = gp.dp_ftrl(lr, c, sigma, key=3, batch_size=b, restart_every=restart_every)
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), init)
  state = tx.init(params)
  base = state[0].key

  def node(epoch, level, j):
    z = tree_node_noise(base, epoch, level, j, params)
    return {k: np.asarray(v) for k, v in z.items()}

  ref = privacy_ref.DpFtrl(lr, c, sigma, b, restart_every or 10**9, node)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}

  @jax.jit
  def step(p, s):
    pe = pe_fn(p)
    u, s = tx.update(jax.tree.map(lambda g: g[0], pe), s, p, per_example_grads=pe)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    ref_params = ref.step(ref_params, ref_pe_fn(ref_params))
    params, state = step(params, state)
    try:
      # the incremental prefix noise differs from the direct node sum by float64 rounding only
      chex.assert_trees_all_close(params, ref_params, rtol=1e-10, atol=1e-12)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None


def test_tree_noise_has_the_promised_variance():
  # With zero gradients the prefix noise N_t is the sum of popcount(t) independent nodes:
  # var = popcount(t) sigma^2 C^2. 40,000 coordinates per t: the sample std has relative sd
  # 1/sqrt(2n) = 0.35%; 2.5% is 7 sd (confidence > 1 - 1e-11 per check).
  sigma, c = 1.5, 2.0
  tx = gp.dp_tree_aggregate(c, sigma, key=11, batch_size=1.0)
  like = {"w": jnp.zeros((200, 200), jnp.float32)}
  pe = {"w": jnp.zeros((1, 200, 200), jnp.float32)}
  state = tx.init(like)
  step = jax.jit(lambda s: tx.update(like, s, per_example_grads=pe))
  prefix = jnp.zeros((200, 200), jnp.float32)
  for t in range(1, 9):
    u, state = step(state)
    prefix = prefix + u["w"]
    expected = math.sqrt(bin(t).count("1")) * sigma * c
    assert abs(float(jnp.std(prefix)) / expected - 1) < 0.025, t
    np.testing.assert_allclose(np.asarray(state.noise["w"]), np.asarray(prefix), rtol=1e-5, atol=1e-5)


def test_restart_resets_the_tree_and_draws_fresh_nodes():
  tx = gp.dp_tree_aggregate(1.0, 1.0, key=0, batch_size=1.0, restart_every=3)
  like = {"w": jnp.zeros(50)}
  pe = {"w": jnp.zeros((1, 50))}
  state = tx.init(like)
  noises = []
  for _ in range(6):
    _, state = tx.update(like, state, per_example_grads=pe)
    noises.append(np.asarray(state.noise["w"]))
  # step 4 starts a new tree: N = its first node only, from a new epoch key
  np.testing.assert_allclose(noises[3], np.asarray(tree_node_noise(state.key, 1, 0, 1, like)["w"]), rtol=1e-12)
  assert not np.allclose(noises[3], noises[0])


def test_tree_accounting_matches_dp_accounting_and_composes_over_trees():
  acc = dp_accounting.rdp.RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_SPECIAL)
  acc.compose(dp_accounting.SingleEpochTreeAggregationDpEvent(4.0, 100), 3)
  expected = acc.get_epsilon(1e-5)
  assert math.isclose(gp.tree_aggregation_epsilon(4.0, 100, 1e-5, trees=3), expected, rel_tol=1e-12)
  one = gp.tree_aggregation_epsilon(4.0, 100, 1e-5)
  assert one < expected
  assert gp.tree_aggregation_epsilon(8.0, 100, 1e-5) < one
  with pytest.raises(ValueError, match="steps_per_tree"):
    gp.tree_aggregation_epsilon(4.0, 0, 1e-5)


def test_bad_input():
  with pytest.raises(ValueError, match="batch_size"):
    gp.dp_tree_aggregate(1.0, 1.0, key=0)
  with pytest.raises(ValueError, match="restart_every"):
    gp.dp_tree_aggregate(1.0, 1.0, key=0, batch_size=1, restart_every=0)
  tx = gp.dp_tree_aggregate(1.0, 1.0, key=0, batch_size=1)
  g = {"w": jnp.zeros(3)}
  with pytest.raises(TypeError, match="per_example_grads="):
    tx.update(g, tx.init(g))
  with pytest.raises(TypeError, match="leading batch axis"):
    tx.update(g, tx.init(g), per_example_grads=g)
