"""Core machinery: validation, keys, tree checks, extra inputs, the registry, fuse_leaves, README."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from benchmarks import readme_table
from gradtx._src.core import errors, keys, validate
from gradtx._src.core.tree import check_matching, global_norm


def test_validation_names_the_public_function_the_user_called():
  with pytest.raises(ValueError, match=r"^adamw: b2 must be in \[0, 1\), got 1.0\.$"):
    gradtx.adamw(1e-3, b2=1.0)
  with pytest.raises(ValueError, match=r"^scale_by_adam: eps must be >= 0, got -1\.$"):
    gradtx.scale_by_adam(eps=-1)


@pytest.mark.parametrize("value", [optax.constant_schedule(-1.0), None])
def test_validation_skips_what_it_cannot_judge(value):
  validate.non_negative("x", value)


def test_validation_skips_tracers_but_checks_concrete_arrays():
  jax.jit(lambda b: validate.beta("b1", b) or b)(jnp.asarray(3.0))
  with pytest.raises(ValueError, match="b1 must be in"):
    validate.beta("b1", np.float32(3.0))


def test_validation_helpers():
  with pytest.raises(ValueError, match=r"x must be in \(0, 1\]"):
    validate.in_range("x", 0.0, 0.0, 1.0, left_open=True)
  with pytest.raises(ValueError, match="must be an integer >= 1"):
    validate.positive_int("n", 1.5)
  with pytest.raises(ValueError, match="must be one of"):
    validate.one_of("mode", "c", ("a", "b"))
  with pytest.raises(ValueError, match="must be finite"):
    validate.finite("x", float("inf"))
  with pytest.raises(ValueError, match="must be > 0"):
    validate.positive("x", 0.0)


def test_keys_accept_seeds_and_both_key_kinds():
  raw = jax.random.PRNGKey(3)
  chex.assert_trees_all_equal(keys.as_key(3), raw)
  chex.assert_trees_all_equal(keys.as_key(jax.random.key(3)), raw)
  chex.assert_trees_all_equal(keys.as_key(raw), raw)
  chex.assert_trees_all_equal(keys.as_key(jnp.asarray(3)), raw)
  with pytest.raises(TypeError, match="key must be an int seed or a PRNG key"):
    keys.as_key("seed")


def test_missing_input_error_says_how_to_supply_it():
  with pytest.raises(TypeError, match=r"sophia_h.update needs obj_fn=, the loss .* e\.g\. tx.update"):
    errors.require("sophia_h", "obj_fn", None, "the loss as a function of params", "tx.update(g, s, p, obj_fn=f)")
  assert errors.require("x", "obj_fn", 3, "", "") == 3


def test_check_matching_reports_structure_and_shape():
  a = {"a": jnp.zeros(2), "b": {"c": jnp.zeros((2, 3))}}
  check_matching("t", a, a, ("x", "y"))
  with pytest.raises(ValueError, match=r"differ at leaf 'b/c': shapes \(3, 2\) and \(2, 3\)"):
    check_matching("t", {"a": jnp.zeros(2), "b": {"c": jnp.zeros((3, 2))}}, a, ("x", "y"))
  with pytest.raises(ValueError, match=r"leaves only in y: \['a'\]"):
    check_matching("t", {"b": {"c": jnp.zeros((2, 3))}}, a, ("x", "y"))


def test_global_norm_accumulates_bf16_in_float32():
  tree = {"a": jnp.full((1000,), 3.0, jnp.bfloat16), "b": jnp.full((2,), 4.0, jnp.bfloat16)}
  chex.assert_trees_all_close(global_norm(tree), np.sqrt(9000.0 + 32.0), rtol=1e-6)
  assert global_norm(tree).dtype == jnp.float32


def test_build_extra_args():
  loss = lambda p, batch: jnp.sum((p["w"] * batch) ** 2)
  params = {"w": jnp.asarray([1.0, 2.0])}
  batch = jnp.asarray([[1.0, 1.0], [2.0, 0.0]])
  extra = gradtx.build_extra_args(["obj_fn", "grad_fn", "value", "per_example_grads"], loss, params, batch)
  chex.assert_trees_all_close(extra["value"], loss(params, batch))
  chex.assert_trees_all_close(extra["obj_fn"](params), loss(params, batch))
  chex.assert_trees_all_close(extra["grad_fn"](params), jax.grad(loss)(params, batch))
  per_example = extra["per_example_grads"]
  chex.assert_shape(per_example["w"], (2, 2))
  chex.assert_trees_all_close(jnp.sum(per_example["w"], 0), jax.grad(loss)(params, batch)["w"])
  with pytest.raises(ValueError, match="unknown extra input 'hessian'"):
    gradtx.build_extra_args(["hessian"], loss, params, batch)


def test_build_extra_args_logits_fn():
  logits_fn = lambda p, batch: batch @ p["w"]
  params = {"w": jnp.asarray([[1.0, 2.0], [0.0, 1.0]])}
  batch = jnp.asarray([[1.0, 1.0], [2.0, 0.0]])
  loss = lambda p, b: jnp.mean(jax.nn.logsumexp(logits_fn(p, b), axis=-1))
  extra = gradtx.build_extra_args(["logits_fn", "value"], loss, params, batch, logits_fn=logits_fn)
  chex.assert_trees_all_close(extra["logits_fn"](params), logits_fn(params, batch))
  unbatched = gradtx.build_extra_args(["logits_fn"], lambda p: 0.0, params, logits_fn=lambda p: p["w"])
  chex.assert_trees_all_close(unbatched["logits_fn"](params), params["w"])
  assert gradtx.build_extra_args(["value"], loss, params, batch, logits_fn=logits_fn).keys() == {"value"}
  with pytest.raises(ValueError, match="'logits_fn' needs logits_fn="):
    gradtx.build_extra_args(["logits_fn"], loss, params, batch)


def test_build_extra_args_jvp_loss_fn_and_batch():
  loss = lambda p, batch: jnp.sum((p["w"] * batch) ** 2)
  params = {"w": jnp.asarray([1.0, 2.0])}
  batch = jnp.asarray([[1.0, 1.0], [2.0, 0.0]])
  extra = gradtx.build_extra_args(["value_and_jvp_fn", "loss_fn", "batch"], loss, params, batch)
  tangent = {"w": jnp.asarray([0.5, -1.0])}
  value, derivative = extra["value_and_jvp_fn"](params, tangent)
  chex.assert_trees_all_close(value, loss(params, batch))
  chex.assert_trees_all_close(derivative, jnp.vdot(jax.grad(loss)(params, batch)["w"], tangent["w"]))
  assert extra["loss_fn"] is loss and extra["batch"] is batch
  with pytest.raises(ValueError, match="'loss_fn' and 'batch' need a batch"):
    gradtx.build_extra_args(["batch"], lambda p: 0.0, params)


def test_registry_lookup_and_errors():
  spec = gradtx.get_spec("adam")
  assert spec.family == "moments" and spec.paper.arxiv == "1412.6980"
  assert "arXiv:1412.6980" in spec.paper.cite()
  assert "adam" in gradtx.list_optimizers("moments")
  assert set(gradtx.list_optimizers()) == set(gradtx.registry())
  with pytest.raises(KeyError, match="no optimizer named 'adamx'"):
    gradtx.get_spec("adamx")
  with pytest.raises(ValueError, match="family must be one of"):
    gradtx.list_optimizers("nonsense")
  with pytest.raises(ValueError, match="registered already"):
    gradtx._src.core.registry.register(family="moments", paper="x", test_kwargs={})(gradtx.adam)
  with pytest.raises(ValueError, match="unknown extra inputs"):
    gradtx._src.core.registry.register(family="moments", paper="x", extra_inputs=("nope",), test_kwargs={})


@pytest.mark.parametrize(
    "make",
    [lambda: gradtx.adamw(0.1, weight_decay=0.1), lambda: gradtx.sgd(0.1, momentum=0.9), lambda: gradtx.amsgrad(0.1)],
)
def test_fuse_leaves_is_identical_for_elementwise_optimizers(make):
  rng = np.random.default_rng(0)
  params = {
      "big": jnp.asarray(rng.standard_normal((40, 30)), jnp.float32),
      "small": [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in [(3,), (4, 5), (7,)]],
      "half": jnp.asarray(rng.standard_normal(6), jnp.bfloat16),
  }
  plain, fused = make(), gradtx.fuse_leaves(make(), max_leaf_size=100)
  s_plain, s_fused = plain.init(params), fused.init(params)
  step_plain, step_fused = jax.jit(plain.update), jax.jit(fused.update)
  for i in range(4):
    grads = jax.tree.map(lambda x, i=i: jnp.sin(x * (i + 1)).astype(x.dtype), params)
    u_plain, s_plain = step_plain(grads, s_plain, params)
    u_fused, s_fused = step_fused(grads, s_fused, params)
    chex.assert_trees_all_equal(u_fused, u_plain)
    chex.assert_trees_all_equal_dtypes(u_fused, params)
  packed = s_fused.inner[0].mu
  assert set(packed["packed"]) == {"float32", "bfloat16"} and len(packed["alone"]) == 1


def test_fuse_leaves_global_reductions_agree_up_to_summation_order():
  params = [jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32) for n in (3, 10, 33)]
  plain, fused = gradtx.adagrad_norm(1.0), gradtx.fuse_leaves(gradtx.adagrad_norm(1.0))
  u_plain, _ = plain.update(params, plain.init(params), params)
  u_fused, _ = fused.update(params, fused.init(params), params)
  chex.assert_trees_all_close(u_fused, u_plain, rtol=1e-6)
  with pytest.raises(ValueError, match="max_leaf_size must be an integer >= 1"):
    gradtx.fuse_leaves(gradtx.adam(1e-3), max_leaf_size=0)


def test_readme_optimizer_table_is_current():
  with open(readme_table.README) as f:
    readme = f.read()
  assert readme_table.current(readme, "optimizers") == readme_table.optimizer_table(), (
      "README.md's optimizer table is stale: run `make readme`"
  )
