"""Noise-family invariants: special cases equal simpler methods, and Entropy-SGD's Moreau limit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx.noise as gn
from gradtx._src.optimizers.noise import adam_langevin, sghmc, sgld

G = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((3, 2))), "b": jnp.asarray([0.5, -1.0])}


def test_zero_temperature_sgld_is_gradient_descent_at_half_the_rate():
  tx = sgld(0.2, key=0, temperature=0.0)
  u, _ = tx.update(G, tx.init(G), G)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: -0.1 * g, G), rtol=1e-14)


def test_sghmc_without_net_noise_is_heavy_ball():
  tx = sghmc(0.1, friction=0.3, key=0, beta_hat=0.3)
  state = tx.init(G)
  v = jax.tree.map(jnp.zeros_like, G)
  for _ in range(3):
    u, state = tx.update(G, state, G)
    v = jax.tree.map(lambda vi, g: 0.7 * vi - 0.1 * g, v, G)
    chex.assert_trees_all_close(u, v, rtol=1e-14)


def test_adam_langevin_without_bias_or_noise_is_gradient_descent():
  tx = adam_langevin(0.1, key=0, bias_factor=0.0, temperature=0.0)
  state = tx.init(G)
  for _ in range(2):
    u, state = tx.update(G, state, G)
    chex.assert_trees_all_close(u, jax.tree.map(lambda g: -0.1 * g, G), rtol=1e-14)


def test_entropy_sgd_with_no_inner_steps_gives_zero_update():
  tx = gn.scale_by_entropy_sgd(inner_steps=0, key=0)
  u, _ = tx.update(G, tx.init(G), G)
  chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, G))


def test_entropy_sgd_gradient_is_the_moreau_envelope_gradient():
  # f = a x^2 / 2, no noise, many inner steps: x' -> gamma x / (a + gamma), grad_F -> a gamma x / (a + gamma).
  a, gamma = 2.0, 0.5
  x = {"x": jnp.asarray([1.0, -3.0, 0.25])}
  grad_fn = lambda p: {"x": a * p["x"]}
  tx = gn.scale_by_entropy_sgd(gamma, 0.0, inner_steps=400, inner_learning_rate=0.05, thermal_noise=0.0, key=0)
  u, _ = tx.update(grad_fn(x), tx.init(x), x, grad_fn=grad_fn)
  chex.assert_trees_all_close(u["x"], a * gamma * x["x"] / (a + gamma), rtol=1e-10)


def test_noise_optimizers_keep_bfloat16_and_state_dtypes():
  p = jax.tree.map(lambda x: x.astype(jnp.bfloat16), G)
  for tx in [sgld(0.1, key=0, preconditioner="rmsprop"), sghmc(0.1, key=0), adam_langevin(0.1, key=0),
             gn.add_annealed_noise(0.1, key=0)]:
    s0 = tx.init(p)
    u, s1 = tx.update(p, s0, p)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
    chex.assert_trees_all_equal_shapes_and_dtypes(s0, s1)


def test_int_array_key_from_inject_hyperparams_works():
  injected = optax.inject_hyperparams(sgld)(learning_rate=0.1, key=3, temperature=1.0)
  plain = sgld(0.1, key=3)
  u1, _ = injected.update(G, injected.init(G), G)
  u2, _ = plain.update(G, plain.init(G), G)
  chex.assert_trees_all_close(u1, u2, rtol=1e-12)


def test_collect_samples_is_the_identity_on_updates_and_respects_burn_in():
  tx = gn.collect_samples(burn_in=2, thinning=2)
  state = tx.init(G)
  for _ in range(7):
    u, state = tx.update(G, state, G)
    chex.assert_trees_all_equal(u, G)
  assert int(state.num_samples) == 3  # updates 3, 5, 7
  chex.assert_trees_all_close(gn.sample_moments(state)[0], jax.tree.map(lambda g: 2 * g, G))
  chex.assert_trees_all_close(gn.sample_moments(state)[1], jax.tree.map(jnp.zeros_like, G), atol=1e-12)
