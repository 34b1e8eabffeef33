"""The contract every registered optimizer passes. Entries join automatically via the registry."""

import inspect

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized

import gradtx
from tests.contract import harness
from tests.problems import PROBLEMS, QUADRATIC, WITH_LOGITS

NAMES = gradtx.list_optimizers()


def spec_of(name):
  return gradtx.get_spec(name)


def steps(spec, tx, problem, n, params=None, state=None, jit=True, dtype=jnp.float32):
  """``n`` steps from ``params``/``state`` (default: the problem's start), returning the last update."""
  params = problem.init(dtype) if params is None else params
  state = tx.init(params) if state is None else state
  one = lambda p, s: harness.step(spec, tx, problem, p, s)
  one = jax.jit(one) if jit else one
  updates = None
  for _ in range(n):
    params, state, updates = one(params, state)
  return params, state, updates


def test_registry_is_not_empty_and_names_are_unique():
  assert len(NAMES) == len(set(NAMES)) >= 7
  assert {"adam", "adamw", "amsgrad", "rmsprop", "adagrad", "adagrad_norm", "sgd"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete(name):
  spec = spec_of(name)
  assert spec.family in gradtx._src.core.registry.FAMILIES
  assert spec.paper.title
  doc = spec.factory.__doc__ or ""
  for section in ("Args:", "Returns:", "Example:", "References:"):
    assert section in doc, f"{name}: docstring lacks {section}"
  assert getattr(gradtx, name) is spec.factory, f"{name} is not re-exported from gradtx"


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", NAMES)
def test_converges(name, problem):
  spec = spec_of(name)
  problem = harness.problem_for(spec, problem)
  _, _, losses = harness.run_scan(spec, spec.build(), problem, harness.CONVERGENCE_STEPS)
  initial = float(problem.loss(problem.init(jnp.float32)))
  final = float(losses[-1])
  assert np.isfinite(final)
  assert final <= harness.CONVERGENCE_FACTOR[problem.name] * initial, (
      f"{name} on {problem.name}: loss {initial:.4g} -> {final:.4g} in {harness.CONVERGENCE_STEPS} steps"
  )


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
def test_entries_needing_logits_get_a_classification_problem_with_the_same_tree(problem):
  counterpart = WITH_LOGITS[problem.name]
  assert problem.logits is None and counterpart.logits is not None
  params = counterpart.init(jnp.float32)
  chex.assert_trees_all_equal_shapes_and_dtypes(params, problem.init(jnp.float32))
  assert counterpart.logits(params).ndim == 2
  assert float(counterpart.loss(params)) > 0.0
  extra = gradtx.build_extra_args(("logits_fn",), counterpart.loss, params, logits_fn=counterpart.logits)
  chex.assert_trees_all_equal(extra["logits_fn"](params), counterpart.logits(params))


class JitAndNoJitTest(chex.TestCase):
  """The same steps with and without jit (chex.variants) agree with a run jitted by hand."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*NAMES)
  def test_variants_match(self, name):
    spec = spec_of(name)
    problem = harness.problem_for(spec, QUADRATIC)
    tx = spec.build()
    one = self.variant(lambda p, s: harness.step(spec, tx, problem, p, s))
    params = problem.init(jnp.float32)
    state = tx.init(params)
    for _ in range(4):
      params, state, updates = one(params, state)
    reference = steps(spec, tx, problem, 4, jit=True)
    chex.assert_trees_all_close((params, state, updates), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_no_recompilation_across_steps(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  one = chex.assert_max_traces(lambda p, s: harness.step(spec, tx, problem, p, s), n=1)
  one = jax.jit(one)
  params = problem.init(jnp.float32)
  state = tx.init(params)
  try:
    for _ in range(4):
      params, state, _ = one(params, state)
  finally:  # a failure must not leave its trace count to the next test
    chex.clear_trace_counter()


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  injected = optax.inject_hyperparams(spec.factory, static_args=spec.static_args)(**spec.test_kwargs)
  traced = chex.assert_max_traces(lambda p, s: harness.step(spec, injected, problem, p, s), n=1)
  one = jax.jit(traced)
  params = problem.init(jnp.float32)
  state = injected.init(params)
  p_plain, _, u_plain = steps(spec, spec.build(), problem, 3)
  try:
    for _ in range(3):
      params, state, updates = one(params, state)
    chex.assert_trees_all_close(updates, u_plain, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(params, p_plain, rtol=1e-4, atol=1e-6)
    if "learning_rate" in state.hyperparams:
      hyper = dict(state.hyperparams)
      hyper["learning_rate"] = hyper["learning_rate"] * 0.5
      state = state._replace(hyperparams=hyper)
      params, state, _ = one(params, state)  # a new value, same compiled step
  finally:  # a failure must not leave its trace count to the next test
    chex.clear_trace_counter()


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_give_bfloat16_updates(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  params, state, updates = steps(spec, tx, problem, 2, dtype=jnp.bfloat16)
  for leaf in jax.tree.leaves(updates):
    assert leaf.dtype == jnp.bfloat16
  for leaf in jax.tree.leaves(params):
    assert leaf.dtype == jnp.bfloat16


def _moment_fields(state):
  """Every leaf stored in a state field named ``mu`` (the mu_dtype-following first moments)."""
  found = []

  def visit(node):
    if isinstance(node, tuple) and hasattr(node, "_fields"):
      for field, value in zip(node._fields, node):
        if field == "mu":
          found.extend(jax.tree.leaves(value))
        else:
          visit(value)
    elif isinstance(node, (tuple, list)):
      for value in node:
        visit(value)
    elif isinstance(node, dict):
      for value in node.values():
        visit(value)

  visit(state)
  return found


def _takes(name, argument):
  return argument in inspect.signature(gradtx.get_spec(name).factory).parameters


@pytest.mark.parametrize("name", [n for n in NAMES if _takes(n, "mu_dtype")])
def test_mu_dtype_is_honoured(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build(mu_dtype=jnp.float32)
  _, state, updates = steps(spec, tx, problem, 2, dtype=jnp.bfloat16)
  moments = _moment_fields(state)
  assert moments, f"{name} takes mu_dtype but keeps no state field named 'mu'"
  assert all(m.dtype == jnp.float32 for m in moments)
  assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))


@pytest.mark.parametrize("name", NAMES)
def test_state_is_stable_under_lax_cond(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  params = problem.init(jnp.float32)
  state = tx.init(params)
  _, new_state, _ = steps(spec, tx, problem, 1, params=params, state=state)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)

  @jax.jit
  def maybe_step(pred, p, s):
    return jax.lax.cond(pred, lambda: harness.step(spec, tx, problem, p, s)[:2], lambda: (p, s))

  p1, s1 = maybe_step(True, params, state)
  p0, s0 = maybe_step(False, params, state)
  chex.assert_trees_all_equal(p0, params)
  chex.assert_trees_all_equal_shapes_and_dtypes(s1, state)


@pytest.mark.parametrize("name", NAMES)
def test_state_does_not_alias_params_so_steps_can_donate_both(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  params = problem.init(jnp.float32)
  state = tx.init(params)
  param_ids = {id(x) for x in jax.tree.leaves(params)}
  state_leaves = jax.tree.leaves(state)
  assert not [x.shape for x in state_leaves if id(x) in param_ids], f"{name}: init returns params as state"
  step = jax.jit(lambda p, s: harness.step(spec, tx, problem, p, s)[:2], donate_argnums=(0, 1))
  step(params, state)
  # A donated state must not take the factory's own buffers (e.g. its key) with it: init works again.
  params = problem.init(jnp.float32)
  step(params, tx.init(params))


@pytest.mark.parametrize("name", NAMES)
def test_chains_with_optax_and_ignores_unknown_extra_inputs(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = optax.chain(optax.clip_by_global_norm(100.0), spec.build(), optax.scale(1.0))
  params = problem.init(jnp.float32)
  state = tx.init(params)
  grads = jax.grad(problem.loss)(params)
  extra = harness.extra_args(spec, problem, params)
  updates, _ = tx.update(grads, state, params, **extra, some_unknown_input=123)
  _, _, reference = steps(spec, spec.build(), problem, 1)
  # Eager vs jitted float32: entries near zero differ by rounding (e.g. Newton-Schulz amplifies it).
  chex.assert_trees_all_close(updates, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trips_and_resume_is_bit_identical(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  straight, _, _ = steps(spec, tx, problem, 6)
  params, state, _ = steps(spec, tx, problem, 3)
  blob = flax.serialization.to_bytes((params, state))
  template = (problem.init(jnp.float32), tx.init(problem.init(jnp.float32)))
  params, state = flax.serialization.from_bytes(template, blob)
  resumed, _, _ = steps(spec, tx, problem, 3, params=params, state=state)
  chex.assert_trees_all_equal(resumed, straight)


@pytest.mark.parametrize("name", NAMES)
def test_nan_gradients_are_skipped_by_apply_if_finite(name):
  # gradtx does not mask non-finite gradients itself (a NaN propagates into the update, as in
  # optax and torch); the documented remedy is optax.apply_if_finite, which must work on all.
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = optax.apply_if_finite(spec.build(), max_consecutive_errors=3)
  params = problem.init(jnp.float32)
  state = tx.init(params)
  bad = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params)
  extra = harness.extra_args(spec, problem, params)
  updates, state = jax.jit(lambda g, s, p: tx.update(g, s, p, **extra))(bad, state, params)
  chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, params))
  assert int(state.notfinite_count) == 1
  inf = jax.tree.map(lambda x: jnp.full_like(x, jnp.inf), params)
  updates, state = tx.update(inf, state, params, **extra)
  assert int(state.notfinite_count) == 2


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_tree_names_the_leaf(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  params = problem.init(jnp.float32)
  state = tx.init(params)
  grads = {"w": jnp.ones((3, 4), jnp.float32), "b": jnp.ones((3,), jnp.float32)}
  extra = harness.extra_args(spec, problem, params)
  with pytest.raises(ValueError, match="'w'"):
    tx.update(grads, state, params, **extra)
  with pytest.raises(ValueError, match="tree structures|'b'"):
    tx.update({"w": grads["b"]}, state, params, **extra)


@pytest.mark.parametrize("name", [n for n in NAMES if gradtx.get_spec(n).extra_inputs])
def test_missing_extra_input_is_a_clear_error(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  tx = spec.build()
  params = problem.init(jnp.float32)
  state = tx.init(params)
  grads = jax.grad(problem.loss)(params)
  with pytest.raises(TypeError, match="|".join(f"{n}=" for n in spec.extra_inputs)):
    tx.update(grads, state, params)


@pytest.mark.parametrize("name", [n for n in NAMES if gradtx.get_spec(n).needs_key])
def test_same_key_same_trajectory(name):
  spec = spec_of(name)
  problem = harness.problem_for(spec, QUADRATIC)
  a, _, _ = steps(spec, spec.build(key=1), problem, 3)
  b, _, _ = steps(spec, spec.build(key=1), problem, 3)
  c, _, _ = steps(spec, spec.build(key=2), problem, 3)
  chex.assert_trees_all_equal(a, b)
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))
