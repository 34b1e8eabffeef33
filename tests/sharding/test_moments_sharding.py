"""Core moment optimizers give the same result on 8 devices (data and parameter sharding) as on one."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

pytestmark = pytest.mark.sharding

NAMES = ["adam", "adamw", "amsgrad", "rmsprop", "adagrad", "adagrad_norm", "sgd"]


def _problem():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((64, 16)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)
  params = {"w": jnp.asarray(rng.standard_normal((16, 8)) * 0.1, jnp.float32), "b": jnp.zeros(8, jnp.float32)}

  def loss(p, batch):
    bx, by = batch
    return jnp.mean((bx @ p["w"] + p["b"] - by) ** 2)

  return params, (x, y), loss


def _train(tx, params, batch, loss, steps=5):
  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p, batch)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


@pytest.mark.parametrize("name", NAMES)
def test_sharded_equals_single_device(name):
  assert jax.device_count() >= 8
  params, batch, loss = _problem()
  tx = gradtx.get_spec(name).build()
  single = _train(tx, params, batch, loss)

  mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
  shard_params = {"w": NamedSharding(mesh, P(None, "model")), "b": NamedSharding(mesh, P("model"))}
  params_sharded = jax.device_put(params, shard_params)
  batch_sharded = jax.device_put(batch, NamedSharding(mesh, P("data", None)))
  sharded = _train(tx, params_sharded, batch_sharded, loss)

  chex.assert_trees_all_close(sharded, single, rtol=1e-5, atol=1e-6)
  assert sharded[0]["w"].sharding.is_equivalent_to(shard_params["w"], 2)
  # Per-parameter state is sharded like the parameter (AdaGrad-Norm keeps only scalars).
  moments = [leaf for leaf in jax.tree.leaves(sharded[1]) if leaf.shape == (16, 8)]
  assert all(m.sharding.is_equivalent_to(shard_params["w"], 2) for m in moments)
  assert moments or name == "adagrad_norm"
