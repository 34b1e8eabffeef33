"""Shampoo, SOAP and PSGD-Kron on 8 simulated devices: sharded params under jit match one device.

Design: the statistics (G G^T, G^T G), roots, bases and triangular factors are computed on the
global matrices: under jit with sharded params XLA inserts the collectives for the products (no
per-shard preconditioning). By default the factor-sized work (eigh, Newton roots, QR, triangular
solves) then runs on replicated factors, every device computing all of it.

Shampoo and SOAP take ``root_sharding`` (a ``NamedSharding(mesh, P(axes))``, or axis names of the
mesh set with ``jax.set_mesh``) to spread that work: on a refresh step the factors of equal shape
and dtype, from all blocks of all leaves, are stacked along a batch axis, padded with identities to
a multiple of the axes' size, constrained to be sharded over those axes, decomposed under
``jax.shard_map`` (each device runs ``padded / shards`` matrices), and constrained back to
replicated before use. ``shard_map`` and not a constraint alone: GSPMD splits a batched eigh
custom call, but not the sequential ``lax.map`` gradtx uses on CPU nor a ``while_loop`` stopping
on a batch-wide error. Newton roots keep one stopping test per leaf side (a ``pmax`` of per-side
errors per iteration), so every root equals the unsharded one up to batched-matmul rounding.
PSGD-Kron's triangular factors are updated every step with matmuls and solves and stay replicated.
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gradtx._src.core.registry import get_spec
from gradtx._src.curvature.shampoo import scale_by_shampoo
from gradtx._src.curvature.soap import scale_by_soap
from gradtx._src.optimizers.kronecker import psgd_kron, shampoo, soap

pytestmark = pytest.mark.sharding

SPECS = {"rows": P("a", None), "both": P("a", "b")}
OPTIMIZERS = {
    "shampoo": lambda: shampoo(0.05, eps=1e-8, precondition_every=2, block_size=8, weight_decay=0.01),
    "soap": lambda: soap(0.02, eps=1e-6, precondition_frequency=2, max_precond_dim=8),
    "psgd_kron": lambda: psgd_kron(0.02, weight_decay=0.01, key=0),
}


def _mesh():
  return Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("a", "b"))


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


def _train(tx, params, grads, steps=5, hlo=False):
  @jax.jit
  def step(p, s):
    u, s = tx.update(grads(p), s, p)
    return optax.apply_updates(p, u), s

  state = tx.init(params)
  text = step.lower(params, state).compile().as_text() if hlo else None
  for _ in range(steps):
    params, state = step(params, state)
  return params, text


@pytest.mark.parametrize("layout", sorted(SPECS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_with_sharded_params_equals_one_device(name, layout):
  params, grads = _problem()
  single, _ = _train(OPTIMIZERS[name](), params, grads)
  mesh = _mesh()
  shardings = {"w": NamedSharding(mesh, SPECS[layout]), "v": NamedSharding(mesh, SPECS[layout]),
               "b": NamedSharding(mesh, P("b"))}
  sharded, _ = _train(OPTIMIZERS[name](), jax.device_put(params, shardings), grads)
  # float64: only the order of the sharded reductions differs; roots/bases amplify it to ~1e-12.
  chex.assert_trees_all_close(sharded, single, rtol=1e-9, atol=1e-12)
  assert sharded["w"].sharding.is_equivalent_to(shardings["w"], 2)


# --- root_sharding: the roots / bases of a refresh spread over the mesh -------------------------

# Leaves of several shapes. Shampoo (block 8): 8x8 factors 4 (w) + 6 (v) + 20 (big: 5x2 blocks,
# more than devices) + 28 (stack) + 2 (small) = 60, padded to 64, 8 per device; 4x4 factors 2
# (small), padded to 8 (a group smaller than the device count). SOAP (sides <= 8): 8x8 bases
# 1 + 1 + 7 = 9, padded to 16, 2 per device; 4x4 bases 1 (small). Wide leaves keep SOAP's
# statistics full rank: rank-deficient ones have arbitrary null-space bases, sharded or not.
ROOT_SHAPES = {"w": (16, 8), "v": (8, 24), "big": (40, 16), "small": (12, 4), "b": (8,), "stack": [(8, 16)] * 7}
ROOT_CASES = {  # optimizer, per-device count of the 8x8 group over 8 devices (over 4: Shampoo's 15)
    "shampoo_eigh": (lambda **k: shampoo(0.05, eps=1e-8, precondition_every=2, block_size=8, **k), 8),
    "shampoo_newton": (
        lambda **k: shampoo(0.05, eps=1e-8, precondition_every=2, block_size=8, matrix_root_method="newton", **k),
        8,
    ),
    "soap": (lambda **k: soap(0.02, eps=1e-6, precondition_frequency=2, max_precond_dim=8, **k), 2),
}


def _root_problem():
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s) * 0.1), ROOT_SHAPES,
                        is_leaf=lambda x: isinstance(x, tuple))
  targets = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), params)
  mesh = _mesh()
  shardings = jax.tree.map(lambda x: NamedSharding(mesh, P("a", None) if x.ndim == 2 else P("b")), params)
  return params, lambda p: jax.tree.map(lambda q, t: 3 * (q - t) ** 2 + 2 * (q - t), p, targets), shardings


@functools.cache
def _root_runs(case):
  """(one device without the option, 8 devices with it, the compiled HLO of the sharded step)."""
  make, _ = ROOT_CASES[case]
  params, grads, shardings = _root_problem()
  single, _ = _train(make(), params, grads)
  rs = NamedSharding(_mesh(), P(("a", "b")))
  sharded, text = _train(make(root_sharding=rs), jax.device_put(params, shardings), grads, hlo=True)
  return single, sharded, text, shardings


def _batch_sizes(text, n):
  """Leading sizes of the f64[k, n, n] arrays carried by the while loops of a compiled HLO."""
  carried = " ".join(line.split(" while(")[0] for line in text.splitlines() if " while(" in line)
  return {int(k) for k in re.findall(rf"f64\[(\d+),{n},{n}\]", carried)}


CASES = [pytest.param(c, marks=pytest.mark.xdist_group("root-sharding")) for c in ROOT_CASES]


@pytest.mark.parametrize("case", CASES)
def test_root_sharding_equals_one_device(case):
  single, sharded, _, shardings = _root_runs(case)
  # The same tolerance as above: each matrix goes through the same decomposition.
  chex.assert_trees_all_close(sharded, single, rtol=1e-9, atol=1e-12)
  assert sharded["big"].sharding.is_equivalent_to(shardings["big"], 2)


@pytest.mark.parametrize("case", CASES)
def test_root_sharding_splits_the_work(case):
  _, _, text, _ = _root_runs(case)
  # The loop over the 8x8 group (lax.map of eigh / QR on CPU, or the Newton iteration) runs on
  # this device's share only; without the option it would carry whole per-leaf stacks.
  assert _batch_sizes(text, 8) == {ROOT_CASES[case][1]}
  assert "all-gather" in text  # the roots are gathered back to replicated


@pytest.mark.xdist_group("root-sharding")
def test_root_sharding_by_axis_name_with_inject_hyperparams():
  single, _, _, shardings = _root_runs("shampoo_eigh")
  params, grads, _ = _root_problem()
  spec = get_spec("shampoo")
  assert "root_sharding" in spec.static_args
  tx = optax.inject_hyperparams(shampoo, static_args=spec.static_args)(
      learning_rate=0.05, eps=1e-8, precondition_every=2, block_size=8, root_sharding="a"
  )
  with jax.set_mesh(_mesh()):
    sharded, text = _train(tx, jax.device_put(params, shardings), grads, hlo=True)
  chex.assert_trees_all_close(sharded, single, rtol=1e-9, atol=1e-12)
  assert _batch_sizes(text, 8) == {15}  # 60 factors over the 4 devices of axis "a"


@pytest.mark.parametrize("factory", [scale_by_shampoo, scale_by_soap])
def test_root_sharding_off_is_unchanged(factory):
  params, grads = _problem()
  state = factory().init(params)
  lower = lambda tx: jax.jit(lambda s: tx.update(grads(params), s, params)).lower(state).as_text()
  off = lower(factory())
  # None is the default and adds nothing to the program: no shard_map, no per-device batches.
  assert lower(factory(root_sharding=None)) == off
  assert "manual_computation" not in off and "shmap" not in off
  on = lower(factory(root_sharding=NamedSharding(_mesh(), P("a"))))
  assert "manual_computation" in on or "shmap" in on


@pytest.mark.parametrize("factory", [scale_by_shampoo, scale_by_soap, shampoo, soap])
def test_root_sharding_bad_input(factory):
  mesh = _mesh()
  kw = {"learning_rate": 0.1} if factory in (shampoo, soap) else {}
  for bad in (NamedSharding(mesh, P()), NamedSharding(mesh, P("a", "b")), 3, ""):
    with pytest.raises(ValueError, match="root_sharding"):
      factory(**kw, root_sharding=bad)
  params, grads = _problem()
  tx = factory(**kw, root_sharding="a")
  with pytest.raises(ValueError, match="no mesh is set"):  # an axis name needs jax.set_mesh
    tx.update(grads(params), tx.init(params), params)
