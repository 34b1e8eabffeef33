"""End to end: DP-Adam with Poisson batches under one compiled step, and the accountant on its state."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx.clipping as gc
import gradtx.privacy as gp


def test_private_logistic_regression_learns_with_one_compilation_and_no_warnings():
  rng = np.random.default_rng(0)
  n, d = 400, 5
  w_true = rng.standard_normal(d)
  x = jnp.asarray(rng.standard_normal((n, d)), jnp.float32)
  y = jnp.asarray((np.asarray(x) @ w_true > 0).astype(np.float32))
  q, steps = 0.1, 60

  def loss(p, batch):
    logits = batch["x"] @ p["w"] + p["b"]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["y"]))

  sigma = gp.calibrate_noise_multiplier(8.0, 1e-5, q, steps)
  tx = gp.dp_adam(0.1, l2_clip=1.0, noise_multiplier=sigma, key=0, expected_batch_size=q * n)
  params = {"w": jnp.zeros(d, jnp.float32), "b": jnp.zeros((), jnp.float32)}
  state = tx.init(params)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, s, idx, mask):
    batch = {"x": x[idx], "y": y[idx]}
    pe = gc.per_example_gradients(loss, p, batch)
    u, s = tx.update(jax.tree.map(lambda g: g[0], pe), s, p, per_example_grads=pe, example_mask=mask)
    return optax.apply_updates(p, u), s

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      for idx, mask in gp.poisson_batches(n, q, 80, key=1, steps=steps):
        params, state = step(params, state, idx, mask)
  finally:
    chex.clear_trace_counter()
  accuracy = float(jnp.mean(((x @ params["w"] + params["b"]) > 0) == (y > 0)))
  assert accuracy > 0.8
  eps = gp.PrivacyAccountant(sigma, q, 1e-5).epsilon(gp.dp_steps(state))
  assert abs(eps - 8.0) < 1e-3
