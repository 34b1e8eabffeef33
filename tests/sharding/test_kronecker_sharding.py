"""Shampoo, SOAP and PSGD-Kron on 8 simulated devices: sharded params under jit match one device.

Design: the statistics (G G^T, G^T G), roots, bases and triangular factors are computed on the
global matrices: under jit with sharded params XLA inserts the collectives for the products (no
per-shard preconditioning), and the factor-sized work (eigh, QR, triangular solves) runs on
replicated factors. Spreading the root computations of different leaves over devices is not done.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gradtx._src.optimizers.kronecker import psgd_kron, shampoo, soap

pytestmark = pytest.mark.sharding

SPECS = {"rows": P("a", None), "both": P("a", "b")}
OPTIMIZERS = {
    "shampoo": lambda: shampoo(0.05, eps=1e-8, precondition_every=2, block_size=8, weight_decay=0.01),
    "soap": lambda: soap(0.02, eps=1e-6, precondition_frequency=2, max_precond_dim=8),
    "psgd_kron": lambda: psgd_kron(0.02, weight_decay=0.01, key=0),
}


def _problem():
  rng = np.random.default_rng(0)
  params = {
      "w": jnp.asarray(rng.standard_normal((16, 8)) * 0.1),
      "v": jnp.asarray(rng.standard_normal((8, 24)) * 0.1),
      "b": jnp.zeros(8),
  }
  targets = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), params)
  # Elementwise gradient of sum((q - t)^3 + (q - t)^2); changes every step.
  return params, lambda p: jax.tree.map(lambda q, t: 3 * (q - t) ** 2 + 2 * (q - t), p, targets)


def _train(tx, params, grads, steps=5):
  @jax.jit
  def step(p, s):
    u, s = tx.update(grads(p), s, p)
    return optax.apply_updates(p, u), s

  state = tx.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


@pytest.mark.parametrize("layout", sorted(SPECS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_with_sharded_params_equals_one_device(name, layout):
  params, grads = _problem()
  single, _ = _train(OPTIMIZERS[name](), params, grads)
  mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("a", "b"))
  shardings = {"w": NamedSharding(mesh, SPECS[layout]), "v": NamedSharding(mesh, SPECS[layout]),
               "b": NamedSharding(mesh, P("b"))}
  sharded, _ = _train(OPTIMIZERS[name](), jax.device_put(params, shardings), grads)
  # float64: only the order of the sharded reductions differs; roots/bases amplify it to ~1e-12.
  chex.assert_trees_all_close(sharded, single, rtol=1e-9, atol=1e-12)
  assert sharded["w"].sharding.is_equivalent_to(shardings["w"], 2)
