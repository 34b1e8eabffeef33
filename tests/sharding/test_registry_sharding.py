"""Every registry entry on 8 simulated devices: sharded == single device, state sharded like params.

Runs in its own process (`make test-sharding`) with 8 simulated CPU devices.
"""

import functools

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

NAMES = gradtx.list_optimizers()
STEPS = 3

# Leaves with distinct shapes, so a state leaf's shape says which parameter it mirrors.
SHAPES = {"replicated": (6,), "rows": (16, 6), "cols": (5, 8), "both": (8, 12)}


def _specs(mesh_shape):
  if mesh_shape == (8,):
    return {"replicated": P(), "rows": P("x", None), "cols": P(None, "x"), "both": P("x", None)}
  return {"replicated": P(), "rows": P("x", None), "cols": P(None, "y"), "both": P("x", "y")}


def _mesh(mesh_shape):
  names = ("x",) if mesh_shape == (8,) else ("x", "y")
  return Mesh(np.asarray(jax.devices()[:8]).reshape(mesh_shape), names)


def _problem():
  # float64 (the test session enables x64): a sharded run sums in a different order, and
  # finite-difference estimators and matrix roots amplify float32 rounding of that order well
  # past any useful float32 tolerance; in float64 a real sharding bug still shows as O(1).
  rng = np.random.default_rng(0)
  targets = {k: jnp.asarray(rng.standard_normal(s), jnp.float64) for k, s in SHAPES.items()}
  scales = {k: jnp.asarray(rng.uniform(0.5, 2.0, s), jnp.float64) for k, s in SHAPES.items()}

  def loss(p):
    return sum(0.5 * jnp.sum(scales[k] * (p[k] - targets[k]) ** 2) for k in p) + 0.1 * jnp.sum(
        jnp.tanh(p["rows"] @ p["replicated"])
    )

  params = {k: jnp.zeros(s, jnp.float64) + 0.1 for k, s in SHAPES.items()}
  return params, loss


def _logits(p):
  """Logits, (26, 6), for entries that need them (Sophia-G); every leaf feeds them."""
  return jnp.concatenate([p["rows"] * p["replicated"], (p["cols"] @ p["both"]).reshape(10, 6)])


def _run(spec, params, loss):
  tx = spec.build()

  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p)
    u, s = tx.update(g, s, p, **gradtx.build_extra_args(spec.extra_inputs, loss, p, logits_fn=_logits))
    return optax.apply_updates(p, u), s

  state = tx.init(params)
  for _ in range(STEPS):
    params, state = step(params, state)
  return params, state, step


@functools.cache
def _single_device(name):
  """The single-device run, shared by both meshes' tests of one entry."""
  params, loss = _problem()
  single_params, single_state, _ = _run(gradtx.get_spec(name), params, loss)
  return jax.device_get((single_params, single_state))


def test_every_registry_entry_is_in_the_sharding_suite():
  assert set(NAMES) == set(gradtx.registry())


@pytest.mark.parametrize("mesh_shape", [(8,), (4, 2)], ids=["mesh8", "mesh4x2"])
# One xdist group per entry, so both meshes reuse the cached single-device run (--dist loadgroup).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in NAMES])
def test_sharded_equals_single_device_and_state_follows_params(name, mesh_shape):
  spec = gradtx.get_spec(name)
  params, loss = _problem()
  single_params, single_state = _single_device(name)

  mesh = _mesh(mesh_shape)
  shardings = {k: NamedSharding(mesh, s) for k, s in _specs(mesh_shape).items()}
  sharded_params, sharded_state, step = _run(spec, jax.device_put(params, shardings), loss)

  chex.assert_trees_all_close(sharded_params, single_params, rtol=1e-8, atol=1e-10)
  chex.assert_trees_all_close(sharded_state, single_state, rtol=1e-8, atol=1e-10)
  for k, s in shardings.items():
    assert sharded_params[k].sharding.is_equivalent_to(s, len(SHAPES[k]))
  # Per-parameter state leaves (same shape as a parameter) carry that parameter's sharding.
  by_shape = {SHAPES[k]: (k, s) for k, s in shardings.items()}
  for leaf in jax.tree.leaves(sharded_state):
    if leaf.shape in by_shape:
      k, s = by_shape[leaf.shape]
      assert leaf.sharding.is_equivalent_to(s, leaf.ndim), f"{name}: state leaf like '{k}' is {leaf.sharding}"

  # The state-sharding helper predicts the same shardings, without materializing the state.
  tx = spec.build()
  predicted = gradtx.sharding.state_shardings(tx, jax.device_put(params, shardings))
  created = jax.jit(tx.init, out_shardings=predicted)(jax.device_put(params, shardings))
  chex.assert_trees_all_equal_shapes_and_dtypes(created, tx.init(params))


# Registry entries whose update is not elementwise per leaf, so their step may communicate
# when a leaf is sharded; every other entry without extra inputs is checked below, new ones
# automatically. Entries with extra inputs are left out by rule: their update evaluates the
# loss (obj_fn, grad_fn, value, logits_fn) or per-example norms, reductions over every parameter.
NOT_ELEMENTWISE = {
    # Matrix methods: a preconditioner or an orthogonalization of each whole 2-D leaf.
    "shampoo": "Kronecker factors of each block and their inverse roots",
    "soap": "Shampoo eigenbases (its test_kwargs happen to leave these small leaves unrotated)",
    "psgd_kron": "a Kronecker-factored preconditioner of each matrix",
    "muon": "Newton-Schulz orthogonalization of each matrix",
    "auon": "Frobenius normalization and a cosh-RMS of each matrix",
    "steepest_descent": "the dual-norm steepest direction of each matrix",
    # Reductions over a leaf or the tree: partial sums are all-reduced when a leaf is sharded.
    "clipped_adagrad": "clipping by the global norm, a scalar accumulator",
    "adagrad_norm": "a scalar accumulator of the global squared norm",
    "normalized_sgd": "division by the momentum's norm",
    "mars": "each leaf's corrected gradient clipped by its norm",
    "fadam": "eps scaled by each gradient leaf's RMS",
    "adamp": "each leaf's cosine similarity with its parameter",
    "subset_norm": "norms over subsets of each leaf's axes",
    "dog": "the global distance from the initial point and the global gradient norm",
}
ELEMENTWISE = [n for n in NAMES if n not in NOT_ELEMENTWISE and not gradtx.get_spec(n).extra_inputs]


def test_not_elementwise_names_registered_entries():
  stale = set(NOT_ELEMENTWISE) - set(NAMES)
  assert not stale, f"NOT_ELEMENTWISE names entries the registry no longer has: {sorted(stale)}"
  assert not [n for n in NOT_ELEMENTWISE if gradtx.get_spec(n).extra_inputs], "already excluded by rule"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_optimizers_do_not_all_gather_parameters(name):
  spec = gradtx.get_spec(name)
  params, loss = _problem()
  mesh = _mesh((4, 2))
  shardings = {k: NamedSharding(mesh, s) for k, s in _specs((4, 2)).items()}
  params = jax.device_put(params, shardings)
  tx = spec.build()
  state = jax.jit(tx.init, out_shardings=gradtx.sharding.state_shardings(tx, params))(params)

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  hlo = jax.jit(step).lower(params, state, params).compile().as_text()
  assert "all-gather" not in hlo and "all-reduce" not in hlo, f"{name} communicates in an elementwise step"


def test_state_shardings_validates_its_input():
  params, _ = _problem()
  with pytest.raises(ValueError, match="NamedShardings on one mesh"):
    gradtx.sharding.state_shardings(gradtx.adam(1e-3), params)
