"""Muon on 8 simulated devices: sharded params under jit, and inside shard_map, match one device."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gradtx._src.optimizers.geometry import muon

pytestmark = pytest.mark.sharding

SPECS = {"rows": P("a", None), "cols": P(None, "b"), "both": P("a", "b")}


def _problem(dtype=jnp.float64):
  rng = np.random.default_rng(0)
  params = {
      "w": jnp.asarray(rng.standard_normal((16, 8)) * 0.1, dtype),
      "v": jnp.asarray(rng.standard_normal((8, 24)) * 0.1, dtype),
      "b": jnp.zeros(8, dtype),
  }
  targets = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape), dtype), params)

  def grads_at(p, t):
    # The gradient of sum((q - t)^3 + (q - t)^2), written elementwise so that inside shard_map each
    # device computes its own block (jax.grad of a summed loss there would psum the cotangent).
    return jax.tree.map(lambda q, tt: 3 * (q - tt) ** 2 + 2 * (q - tt), p, t)

  return params, lambda p: grads_at(p, targets), (targets, grads_at)


def _train(tx, params, grads, steps=4):
  @jax.jit
  def step(p, s):
    u, s = tx.update(grads(p), s, p)
    return optax.apply_updates(p, u), s

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


def _mesh():
  return Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("a", "b"))


@pytest.mark.parametrize("layout", sorted(SPECS))
def test_jit_with_sharded_params_equals_one_device(layout):
  params, grads, _ = _problem()
  tx = muon(0.05, weight_decay=0.01)
  single, _ = _train(tx, params, grads)
  mesh = _mesh()
  shardings = {"w": NamedSharding(mesh, SPECS[layout]), "v": NamedSharding(mesh, SPECS[layout]),
               "b": NamedSharding(mesh, P("b"))}
  sharded, state = _train(tx, jax.device_put(params, shardings), grads)
  # float64: only the order of the sharded reductions differs (NS amplifies it to ~1e-13).
  chex.assert_trees_all_close(sharded, single, rtol=1e-9, atol=1e-12)
  assert sharded["w"].sharding.is_equivalent_to(shardings["w"], 2)


def test_shard_map_gathers_whole_matrices_and_naive_blocks_differ():
  params, grads, (targets, grads_at) = _problem()
  mesh = _mesh()
  specs = {"w": P("a", "b"), "v": P(None, "b"), "b": P("b")}
  single, _ = _train(muon(0.05), params, grads)

  def run(tx):
    def local_train(p, t):
      s = tx.init(p)
      for _ in range(4):
        u, s = tx.update(grads_at(p, t), s, p)
        p = optax.apply_updates(p, u)
      return p

    put = lambda tree: jax.device_put(tree, jax.tree.map(lambda sp: NamedSharding(mesh, sp), specs))  # noqa: E731
    sharded = jax.shard_map(local_train, mesh=mesh, in_specs=(specs, specs), out_specs=specs)
    return jax.jit(sharded)(put(params), put(targets))

  ours = run(muon(0.05, shard_map_specs=specs))
  naive = run(muon(0.05))
  chex.assert_trees_all_close(ours, single, rtol=1e-9, atol=1e-12)
  assert not np.allclose(np.asarray(naive["w"]), np.asarray(single["w"]), rtol=1e-3)


def test_explicit_sharding_mesh_raises_no_sharding_error():
  params, grads, _ = _problem(jnp.float32)
  tx = muon(0.05)
  single, _ = _train(tx, params, grads)
  mesh = jax.make_mesh((4, 2), ("a", "b"), axis_types=(jax.sharding.AxisType.Explicit,) * 2)
  with jax.set_mesh(mesh):
    shardings = {"w": NamedSharding(mesh, P("a", "b")), "v": NamedSharding(mesh, P(None, "b")),
                 "b": NamedSharding(mesh, P("b"))}
    sharded, _ = _train(tx, jax.device_put(params, shardings), grads)
  assert sharded["w"].sharding.spec == P("a", "b")  # resharded like the input after orthogonalizing
  # float32: NS5 amplifies reduction-order differences by up to ~486x.
  chex.assert_trees_all_close(sharded, single, rtol=2e-4, atol=2e-5)
