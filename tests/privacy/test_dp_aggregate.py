"""dp_aggregate: sensitivity, noise level, reproducibility, padding, special cases and bad input."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.privacy as gp
from gradtx._src.core.tree import global_norm


def per_example_tree(seed, batch, scale, n_leaves=3):
  rng = np.random.default_rng(seed)
  shapes = [(3, 4), (5,), (2, 2, 3), (), (1,)][:n_leaves]
  return {f"l{i}": jnp.asarray(rng.standard_normal((batch, *s)) * scale) for i, s in enumerate(shapes)}


def one_example(tree):
  return jax.tree.map(lambda g: g[0], tree)


def aggregate(tx, pe, mask=None, state=None):
  g = one_example(pe)
  state = tx.init(g) if state is None else state
  return tx.update(g, state, per_example_grads=pe, example_mask=mask)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(
    seed=st.integers(0, 2**16), batch=st.integers(1, 4), n_leaves=st.integers(1, 5),
    log_scale=st.floats(-3, 3), log_clip=st.floats(-2, 2), log_denominator=st.floats(0, 3),
    removed=st.integers(0, 5),
)
def test_one_example_moves_the_noiseless_update_by_at_most_clip_over_batch(
    seed, batch, n_leaves, log_scale, log_clip, log_denominator, removed
):
  # Sensitivity: removing one example (by the mask, or by deleting its row) changes the
  # noiseless update by at most C / expected_batch_size in global norm.
  pe = per_example_tree(seed, batch, 10.0**log_scale, n_leaves)
  c, d = 10.0**log_clip, 10.0**log_denominator
  tx = gp.dp_aggregate(c, 0.0, key=0, expected_batch_size=d)
  full, _ = aggregate(tx, pe)
  i = removed % batch
  mask = np.ones(batch, bool)
  mask[i] = False
  without, _ = aggregate(tx, pe, mask=jnp.asarray(mask))
  diff = float(global_norm(jax.tree.map(lambda a, b: a - b, full, without)))
  assert diff <= c / d * (1 + 1e-12)
  if batch > 1:  # deleting the row is the same as masking it
    deleted = jax.tree.map(lambda g: jnp.delete(g, i, axis=0), pe)
    chex.assert_trees_all_close(aggregate(tx, deleted)[0], without, rtol=1e-12, atol=1e-15)


def test_noise_std_is_sigma_times_clip_over_denominator():
  # Zero gradients: the update is pure noise, sigma C / D per coordinate. 20,000 draws; the
  # sample std of a Gaussian has relative sd 1/sqrt(2n) = 0.5%; 3% is 6 sd (two-sided
  # confidence > 1 - 1e-8). The mean is within 6 sd (std / sqrt(n)) of 0.
  sigma, c, d = 1.3, 0.7, 4.0
  pe = {"w": jnp.zeros((2, 100, 100)), "b": jnp.zeros((2, 10000))}
  for rng in ("threefry", "fast"):
    tx = gp.dp_aggregate(c, sigma, key=42, expected_batch_size=d, rng=rng)
    u, _ = aggregate(tx, pe)
    z = np.concatenate([np.ravel(u["w"]), np.ravel(u["b"])])
    expected = sigma * c / d
    assert abs(z.std() / expected - 1) < 0.03, rng
    assert abs(z.mean()) < 6 * expected / np.sqrt(z.size), rng
    # the leaves get independent noise
    assert abs(np.corrcoef(np.ravel(u["w"]), np.ravel(u["b"]))[0, 1]) < 6 / np.sqrt(10000)


def test_same_key_same_noise_and_the_key_advances():
  pe = per_example_tree(0, 4, 1.0)
  a1, sa = aggregate(gp.dp_aggregate(1.0, 1.0, key=7, expected_batch_size=4), pe)
  b1, sb = aggregate(gp.dp_aggregate(1.0, 1.0, key=jax.random.PRNGKey(7), expected_batch_size=4), pe)
  chex.assert_trees_all_equal(a1, b1)
  c1, _ = aggregate(gp.dp_aggregate(1.0, 1.0, key=8, expected_batch_size=4), pe)
  assert not np.array_equal(a1["l0"], c1["l0"])
  tx = gp.dp_aggregate(1.0, 1.0, key=7, expected_batch_size=4)
  a2, sa2 = aggregate(tx, pe, state=sa)
  assert not np.array_equal(a1["l0"], a2["l0"])  # fresh noise every step
  assert int(sa2.count) == 2


def test_padded_examples_have_no_effect():
  # The same batch, padded with garbage rows (huge, NaN, inf) that the mask marks as padding,
  # gives bit-for-bit the same update as the unpadded batch with the same key.
  pe = per_example_tree(3, 5, 2.0)
  tx = gp.dp_aggregate(1.0, 0.8, key=3, expected_batch_size=6)
  reference, _ = aggregate(tx, pe)
  pad = jax.tree.map(lambda g: jnp.concatenate([g, jnp.stack([g[0] * 1e6, g[0] * jnp.nan, g[0] * jnp.inf])]), pe)
  mask = jnp.asarray([True] * 5 + [False] * 3)
  padded, _ = aggregate(tx, pad, mask=mask)
  chex.assert_trees_all_close(padded, reference, rtol=1e-12, atol=0)
  # interleaved padding
  perm = np.array([5, 0, 1, 6, 2, 3, 7, 4])
  shuffled, _ = aggregate(tx, jax.tree.map(lambda g: g[perm], pad), mask=mask[perm])
  chex.assert_trees_all_close(shuffled, reference, rtol=1e-12, atol=1e-14)


def test_no_noise_no_clip_actual_denominator_is_the_mean_gradient():
  pe = per_example_tree(1, 4, 5.0)
  tx = gp.dp_aggregate(jnp.inf, 0.0, key=0, denominator="actual")
  u, _ = aggregate(tx, pe)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: g.mean(0), pe), rtol=1e-12)
  # with a mask the divisor is the number of real examples
  u, _ = aggregate(tx, pe, mask=jnp.asarray([True, False, True, False]))
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: (g[0] + g[2]) / 2, pe), rtol=1e-12)


def test_every_clipped_example_has_norm_at_most_clip():
  pe = per_example_tree(2, 6, 10.0)
  for i in range(6):
    single = jax.tree.map(lambda g, i=i: g[i:i + 1], pe)
    u, _ = aggregate(gp.dp_aggregate(0.5, 0.0, key=0, expected_batch_size=1), single)
    assert float(global_norm(u)) <= 0.5 * (1 + 1e-12)


def test_bfloat16_and_float32_keep_their_dtype():
  for dtype in (jnp.bfloat16, jnp.float32):
    pe = jax.tree.map(lambda g, dtype=dtype: g.astype(dtype), per_example_tree(0, 3, 1.0))
    u, _ = jax.jit(lambda p: aggregate(gp.dp_aggregate(1.0, 1.0, key=0, expected_batch_size=3), p))(pe)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(u))


def test_schedules_are_evaluated_at_the_count():
  pe = per_example_tree(0, 2, 1.0)
  tx = gp.dp_aggregate(optax.constant_schedule(jnp.inf), lambda t: 0.0 * t, key=0, denominator="actual")
  u, _ = aggregate(tx, pe)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: g.mean(0), pe), rtol=1e-12)


def test_aggregated_or_missing_gradients_raise_a_type_error():
  pe = per_example_tree(0, 3, 1.0)
  g = one_example(pe)
  tx = gp.dp_aggregate(1.0, 1.0, key=0, expected_batch_size=3)
  with pytest.raises(TypeError, match="per_example_grads="):
    tx.update(g, tx.init(g))
  with pytest.raises(TypeError, match="per_example_grads=.*leading batch axis"):
    tx.update(g, tx.init(g), per_example_grads=g)
  with pytest.raises(ValueError, match="'l1'"):
    bad = dict(pe, l1=jnp.ones((3, 7)))
    tx.update(g, tx.init(g), per_example_grads=bad)


def test_bad_hyperparameters_name_the_argument():
  with pytest.raises(ValueError, match="l2_clip"):
    gp.dp_aggregate(0.0, 1.0, key=0, expected_batch_size=1)
  with pytest.raises(ValueError, match="noise_multiplier"):
    gp.dp_aggregate(1.0, -1.0, key=0, expected_batch_size=1)
  with pytest.raises(ValueError, match="expected_batch_size"):
    gp.dp_aggregate(1.0, 1.0, key=0)
  with pytest.raises(ValueError, match="expected_batch_size"):
    gp.dp_aggregate(1.0, 1.0, key=0, expected_batch_size=0)
  with pytest.raises(ValueError, match="denominator"):
    gp.dp_aggregate(1.0, 1.0, key=0, denominator="realised")
  with pytest.raises(ValueError, match="rng"):
    gp.dp_aggregate(1.0, 1.0, key=0, expected_batch_size=1, rng="philox")
  with pytest.raises(TypeError, match="key"):
    gp.dp_aggregate(1.0, 1.0, expected_batch_size=1)


SHARDS = 4  # of 3 examples each


def _banded(clip, sigma, **kw):
  return gp.dp_banded_aggregate(clip, sigma, coefficients=(1.0, 0.6, -0.3), **kw)


def _tree(clip, sigma, *, expected_batch_size, **kw):
  return gp.dp_tree_aggregate(clip, sigma, batch_size=expected_batch_size, restart_every=2, **kw)


@pytest.mark.parametrize(("factory", "denominator"), [
    (gp.dp_aggregate, "expected"), (gp.dp_aggregate, "actual"),
    (_banded, "expected"), (_banded, "actual"), (_tree, "expected"),
], ids=["dp_aggregate-expected", "dp_aggregate-actual", "banded-expected", "banded-actual", "tree"])
def test_axis_name_sums_the_shards_and_adds_the_noise_once(factory, denominator):
  # vmap with an axis name has the collective semantics of shard_map and pmap on one device:
  # each of 4 shards passes its own 3 examples (some padded), the state is shared, and every
  # shard's update is the one-device update of the whole batch with the same key, for 3 steps
  # (the banded history included). float64; only the summation order differs: rtol 1e-12.
  pe = per_example_tree(5, 3 * SHARDS, 3.0)
  mask = jnp.asarray(np.arange(3 * SHARDS) % 5 != 2)
  kw = dict(expected_batch_size=10.0) if denominator == "expected" else dict(denominator="actual")
  whole = factory(0.8, 1.1, key=4, **kw)
  split = factory(0.8, 1.1, key=4, axis_name="shards", **kw)
  shard = lambda x: x.reshape(SHARDS, 3, *x.shape[1:])
  g = one_example(pe)
  update = lambda p, m, s: split.update(g, s, per_example_grads=p, example_mask=m)
  f = jax.vmap(update, (0, 0, None), axis_name="shards")
  s1, s2 = whole.init(g), split.init(g)
  for _ in range(3):
    want, s1 = whole.update(g, s1, per_example_grads=pe, example_mask=mask)
    got, s2 = f(jax.tree.map(shard, pe), shard(mask), s2)
    for i in range(SHARDS):
      chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], got), want, rtol=1e-12, atol=1e-15)
    s2 = jax.tree.map(lambda a: a[0], s2)
  chex.assert_trees_all_close(s2, s1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("factory", [gp.dp_aggregate, _banded], ids=["dp_aggregate", "dp_banded_aggregate"])
def test_errors_name_the_factory_and_axis_name_is_checked(factory):
  name = "dp_aggregate" if factory is gp.dp_aggregate else "dp_banded_aggregate"
  with pytest.raises(ValueError, match=f"{name}: expected_batch_size is required"):
    factory(1.0, 1.0, key=0)
  with pytest.raises(TypeError, match=f"{name}: key is required"):
    factory(1.0, 1.0, expected_batch_size=1)
  for bad in (0, ("data", 1), (), ["data"]):
    with pytest.raises(TypeError, match=f"{name}: axis_name must be"):
      factory(1.0, 1.0, key=0, expected_batch_size=1, axis_name=bad)
  for good in ("data", ("data", "model")):
    factory(1.0, 1.0, key=0, expected_batch_size=1, axis_name=good)


def test_tree_aggregate_checks_axis_name():
  with pytest.raises(TypeError, match="dp_tree_aggregate: axis_name must be"):
    gp.dp_tree_aggregate(1.0, 1.0, key=0, batch_size=1, axis_name=0)


@pytest.mark.parametrize("name", ["dp_sgd", "dp_adam", "dp_ftrl", "dp_bandmf"])
def test_optimizers_pass_axis_name_through(name):
  # The full optimizers under vmap(axis_name=) equal the one-device run of the whole batch.
  pe = per_example_tree(7, 3 * SHARDS, 3.0)
  size = dict(expected_batch_size=12.0) if name in ("dp_sgd", "dp_adam") else dict(batch_size=12.0)
  kw = dict(learning_rate=0.1, l2_clip=0.8, noise_multiplier=1.1, key=3, **size)
  factory = getattr(gp, name)
  whole, split = factory(**kw), factory(**kw, axis_name="shards")
  params = one_example(pe)
  shard = lambda x: x.reshape(SHARDS, 3, *x.shape[1:])
  f = jax.vmap(lambda p, s: split.update(params, s, params, per_example_grads=p), (0, None), axis_name="shards")
  s1, s2 = whole.init(params), split.init(params)
  for _ in range(2):
    want, s1 = whole.update(params, s1, params, per_example_grads=pe)
    got, s2 = f(jax.tree.map(shard, pe), s2)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[SHARDS - 1], got), want, rtol=1e-12, atol=1e-15)
    s2 = jax.tree.map(lambda a: a[0], s2)
