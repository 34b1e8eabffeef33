"""gradtx.flax: linen TrainState and nnx.Optimizer with every kind of extra input, and partition()."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import gradtx
import gradtx.flax

STEPS = 4


def _one_per_kind():
  """For each extra-input kind, one registered optimizer that needs exactly that input."""
  chosen = {}
  for spec in gradtx.registry().values():
    if len(spec.extra_inputs) == 1 and spec.extra_inputs[0] not in chosen:
      chosen[spec.extra_inputs[0]] = spec.name
  return sorted(chosen.items())


KINDS = _one_per_kind()


def _data():
  rng = np.random.default_rng(0)
  # float64, so that jitted and eager loops agree to rounding (the test session enables x64).
  x = jnp.asarray(rng.standard_normal((16, 5)), jnp.float64)
  y = jnp.asarray(rng.integers(0, 3, 16))
  return x, y


def _xent(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _hand_loop(spec, loss, logits, params, batch):
  """The reference: a plain optax loop with the extra inputs built by gradtx.build_extra_args."""
  tx = spec.build()
  state = tx.init(params)
  for _ in range(STEPS):
    grads = jax.grad(loss)(params, batch)
    extra = gradtx.build_extra_args(spec.extra_inputs, loss, params, batch, logits_fn=logits)
    updates, state = tx.update(grads, state, params, **extra)
    params = optax.apply_updates(params, updates)
  return params


def test_every_extra_input_kind_is_exercised_when_registered():
  assert {kind for kind, _ in KINDS} <= set(gradtx.EXTRA_INPUTS)
  assert "grad_fn" in dict(KINDS) and "obj_fn" in dict(KINDS)


@pytest.mark.parametrize("kind, name", KINDS)
def test_linen_train_state_forwards_extra_inputs(kind, name):
  spec = gradtx.get_spec(name)
  model = nn.Dense(3, param_dtype=jnp.float64)
  x, y = _data()
  params = model.init(jax.random.PRNGKey(0), x)
  logits = lambda p, batch: model.apply(p, batch[0])
  loss = lambda p, batch: _xent(logits(p, batch), batch[1])

  @jax.jit
  def train_step(state, batch):
    grads = jax.grad(loss)(state.params, batch)
    extra = gradtx.build_extra_args(spec.extra_inputs, loss, state.params, batch, logits_fn=logits)
    return state.apply_gradients(grads=grads, **extra)

  state = gradtx.flax.TrainState.create(apply_fn=model.apply, params=params, tx=spec.build())
  for _ in range(STEPS):
    state = train_step(state, (x, y))
  assert int(state.step) == STEPS
  chex.assert_trees_all_close(state.params, _hand_loop(spec, loss, logits, params, (x, y)), rtol=1e-9, atol=1e-12)


def test_linen_train_state_still_replaces_fields_and_reports_missing_inputs():
  model = nn.Dense(3)
  x, y = _data()
  params = model.init(jax.random.PRNGKey(0), x)
  state = gradtx.flax.TrainState.create(apply_fn=model.apply, params=params, tx=gradtx.get_spec("sam_sgd").build())
  grads = jax.tree.map(jnp.ones_like, params)
  with pytest.raises(TypeError, match="needs grad_fn=") as in_flax:
    state.apply_gradients(grads=grads)
  tx = gradtx.get_spec("sam_sgd").build()
  with pytest.raises(TypeError, match="needs grad_fn=") as outside:
    tx.update(grads, tx.init(params), params)
  assert str(in_flax.value) == str(outside.value)


  class WithStats(gradtx.flax.TrainState):
    batch_stats: dict

  plain = WithStats.create(apply_fn=model.apply, params=params, tx=gradtx.sgd(0.1), batch_stats={"m": 0.0})
  assert plain.apply_gradients(grads=grads, batch_stats={"m": 1.0}).batch_stats == {"m": 1.0}


class _NnxModel(nnx.Module):
  def __init__(self, rngs):
    self.dense = nnx.Linear(5, 3, param_dtype=jnp.float64, rngs=rngs)

  def __call__(self, x):
    return self.dense(x)


@pytest.mark.parametrize("kind, name", KINDS)
def test_nnx_optimizer_with_extra_inputs_matches_a_hand_written_loop(kind, name):
  spec = gradtx.get_spec(name)
  x, y = _data()
  model = _NnxModel(nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  pure_params = nnx.as_pure(params)
  logits_model = lambda m, batch: m(batch[0])
  loss_model = lambda m, batch: _xent(logits_model(m, batch), batch[1])
  expected = _hand_loop(
      spec,
      lambda p, b: loss_model(nnx.merge(graphdef, p), b),
      lambda p, b: logits_model(nnx.merge(graphdef, p), b),
      pure_params,
      (x, y),
  )

  optimizer = nnx.Optimizer(model, spec.build(), wrt=nnx.Param)
  for _ in range(STEPS):
    grads = nnx.grad(loss_model)(model, (x, y))
    extra = gradtx.flax.nnx_extra_args(spec.extra_inputs, model, loss_model, (x, y), logits_fn=logits_model)
    optimizer.update(model, grads, **extra)
  chex.assert_trees_all_close(nnx.as_pure(nnx.state(model, nnx.Param)), expected, rtol=1e-9, atol=1e-12)


def test_nnx_extra_args_per_example_grads_and_value():
  x, y = _data()
  model = _NnxModel(nnx.Rngs(0))
  loss_model = lambda m, batch: _xent(m(batch[0]), batch[1])
  extra = gradtx.flax.nnx_extra_args(["per_example_grads", "value", "grad_fn"], model, loss_model, (x, y))
  per_example = extra["per_example_grads"]
  chex.assert_shape(per_example["dense"]["kernel"], (16, 5, 3))
  full = nnx.grad(loss_model)(model, (x, y))
  chex.assert_trees_all_close(
      jax.tree.map(lambda g: g.mean(0), per_example), nnx.as_pure(nnx.state(full, nnx.Param)), rtol=1e-5, atol=1e-7
  )
  chex.assert_trees_all_close(extra["value"], loss_model(model, (x, y)), rtol=1e-6)


def test_partition_by_path_pattern():
  params = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}, "scale": jnp.ones(3)}
  tx = gradtx.partition({r"kernel$": gradtx.sgd(1.0), r"bias$": gradtx.sgd(0.5)}, default=gradtx.sgd(0.0))
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  chex.assert_trees_all_close(
      updates, {"dense": {"kernel": -jnp.ones((4, 3)), "bias": -0.5 * jnp.ones(3)}, "scale": jnp.zeros(3)}
  )


def test_partition_lists_unmatched_paths():
  params = {"dense": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}, "scale": jnp.ones(3)}
  tx = gradtx.partition({r"kernel$": gradtx.sgd(1.0)})
  with pytest.raises(ValueError, match=r"no pattern matches 2 parameter\(s\): \['dense/bias', 'scale'\]"):
    tx.init(params)
  with pytest.raises(ValueError, match="at least one pattern"):
    gradtx.partition({})
