"""Core moment optimizers against float64 NumPy references, invariants and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from tests.reference import moments_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

# (gradtx optimizer, NumPy reference) pairs with default and non-default hyperparameters.
CASES = {
    "adam_default": (lambda: gradtx.adam(0.05), lambda: ref.Adam(0.05)),
    "adam_custom": (
        lambda: gradtx.adam(0.02, b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-9),
        lambda: ref.Adam(0.02, b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-9),
    ),
    "adam_nesterov": (lambda: gradtx.adam(0.03, nesterov=True), lambda: ref.Adam(0.03, nesterov=True)),
    "adamw_default": (lambda: gradtx.adamw(0.05), lambda: ref.Adam(0.05, wd=1e-2)),
    "adamw_custom_masked": (
        lambda: gradtx.adamw(0.02, b1=0.7, b2=0.99, weight_decay=0.3, mask={"w": True, "b": False}),
        lambda: ref.Adam(0.02, b1=0.7, b2=0.99, wd=0.3, mask={"w": True, "b": False}),
    ),
    "amsgrad_default": (lambda: gradtx.amsgrad(0.05), lambda: ref.AMSGrad(0.05)),
    "amsgrad_custom": (
        lambda: gradtx.amsgrad(0.1, b1=0.5, b2=0.9, eps=1e-4),
        lambda: ref.AMSGrad(0.1, b1=0.5, b2=0.9, eps=1e-4),
    ),
    "rmsprop_default": (lambda: gradtx.rmsprop(0.01), lambda: ref.RMSProp(0.01)),
    "rmsprop_momentum_centered": (
        lambda: gradtx.rmsprop(0.005, decay=0.9, eps=1e-6, momentum=0.8, centered=True),
        lambda: ref.RMSProp(0.005, alpha=0.9, eps=1e-6, momentum=0.8, centered=True),
    ),
    "rmsprop_nesterov": (
        lambda: gradtx.rmsprop(0.005, momentum=0.5, nesterov=True),
        lambda: ref.RMSProp(0.005, momentum=0.5, nesterov=True),
    ),
    "adagrad_default": (lambda: gradtx.adagrad(0.1), lambda: ref.AdaGrad(0.1)),
    "adagrad_custom": (
        lambda: gradtx.adagrad(0.3, initial_accumulator_value=0.1, eps=1e-6),
        lambda: ref.AdaGrad(0.3, initial_accumulator_value=0.1, eps=1e-6),
    ),
    "adagrad_norm_default": (lambda: gradtx.adagrad_norm(0.5), lambda: ref.AdaGradNorm(0.5)),
    "adagrad_norm_delayed": (
        lambda: gradtx.adagrad_norm(0.5, initial_accumulator_value=2.0, eps=1e-3, delayed=True),
        lambda: ref.AdaGradNorm(0.5, b0_sq=2.0, eps=1e-3, delayed=True),
    ),
    "sgd_plain": (lambda: gradtx.sgd(0.1), lambda: ref.SGD(0.1)),
    "sgd_momentum_wd": (
        lambda: gradtx.sgd(0.05, momentum=0.9, weight_decay=0.01),
        lambda: ref.SGD(0.05, momentum=0.9, wd=0.01),
    ),
    "sgd_nesterov": (
        lambda: gradtx.sgd(0.05, momentum=0.8, nesterov=True),
        lambda: ref.SGD(0.05, 0.8, nesterov=True),
    ),
    "sgd_dampening": (
        lambda: gradtx.sgd(0.05, momentum=0.9, dampening=0.3),
        lambda: ref.SGD(0.05, momentum=0.9, dampening=0.3),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


def test_every_core_optimizer_has_a_reference_case():
  core = ("adagrad_norm", "adagrad", "adamw", "adam", "amsgrad", "rmsprop", "sgd")
  covered = {next(name for name in core if case.startswith(name + "_")) for case in CASES}
  assert covered == set(core)


# Invariants --------------------------------------------------------------------------------------


def _updates(tx, grads_seq, params=None):
  params = jnp.zeros_like(grads_seq[0]) if params is None else params
  state = tx.init(params)
  out = []
  for g in grads_seq:
    u, state = tx.update(g, state, params)
    out.append(u)
  return out


def test_adam_first_update_is_about_minus_lr_sign():
  g = jnp.asarray([3.0, -0.2, 1e-3])
  (u,) = _updates(gradtx.adam(0.1), [g])
  chex.assert_trees_all_close(u, -0.1 * g / (jnp.abs(g) + 1e-8), rtol=1e-12)


def test_adam_is_invariant_to_gradient_scale_without_eps():
  rng = np.random.default_rng(0)
  seq = [jnp.asarray(rng.standard_normal(5)) for _ in range(10)]
  a = _updates(gradtx.adam(0.1, eps=0.0), seq)
  b = _updates(gradtx.adam(0.1, eps=0.0), [37.0 * g for g in seq])
  chex.assert_trees_all_close(a, b, rtol=1e-10)


def test_adamw_with_zero_decay_is_adam_and_decays_geometrically_at_zero_gradient():
  rng = np.random.default_rng(1)
  seq = [jnp.asarray(rng.standard_normal(4)) for _ in range(8)]
  p = jnp.ones(4)
  chex.assert_trees_all_close(
      _updates(gradtx.adamw(0.1, weight_decay=0.0), seq, p), _updates(gradtx.adam(0.1), seq, p), rtol=1e-12
  )
  tx = gradtx.adamw(0.1, weight_decay=0.5)
  state = tx.init(p)
  params = p
  for _ in range(5):
    u, state = tx.update(jnp.zeros(4), state, params)
    params = params + u
  chex.assert_trees_all_close(params, (1 - 0.1 * 0.5) ** 5 * p, rtol=1e-12)


def test_amsgrad_matches_torch_test_vector_not_optax():
  seq = [jnp.asarray(1.0), jnp.asarray(0.1), jnp.asarray(0.1)]
  got = [float(u) for u in _updates(gradtx.amsgrad(1.0), seq)]
  np.testing.assert_allclose(got, [-0.99999999, -0.74081063, -0.63314353], rtol=1e-7)
  optax_style = [float(u) for u in _updates(optax.amsgrad(1.0), seq)]
  np.testing.assert_allclose(optax_style, [-0.99999999, -0.52631578, -0.36900369], rtol=1e-6)


def test_amsgrad_equals_adam_for_a_constant_gradient():
  seq = [jnp.asarray([0.3, -2.0])] * 10
  chex.assert_trees_all_close(_updates(gradtx.amsgrad(0.1), seq), _updates(gradtx.adam(0.1), seq), rtol=1e-12)


def test_rmsprop_first_update():
  g = jnp.asarray([2.0, -0.5])
  (u,) = _updates(gradtx.rmsprop(0.1), [g])
  chex.assert_trees_all_close(u, -0.1 * g / (np.sqrt(0.01) * jnp.abs(g) + 1e-8), rtol=1e-12)


def test_adagrad_constant_gradient_decays_as_one_over_sqrt_t():
  seq = [jnp.asarray([2.0, -3.0])] * 9
  u = _updates(gradtx.adagrad(1.0, eps=0.0), seq)
  chex.assert_trees_all_close(u[-1], -jnp.sign(seq[0]) / 3.0, rtol=1e-12)


def test_adagrad_norm_first_step_has_norm_lr_and_one_shared_scale():
  g = {"w": jnp.asarray([[3.0, 0.0]]), "b": jnp.asarray([4.0])}
  tx = gradtx.adagrad_norm(0.7)
  u, _ = tx.update(g, tx.init(g))
  chex.assert_trees_all_close(gradtx._src.core.tree.global_norm(u), 0.7, rtol=1e-12)
  chex.assert_trees_all_close(u, jax.tree.map(lambda x: -0.7 * x / 5.0, g), rtol=1e-12)
  zero = jax.tree.map(jnp.zeros_like, g)
  u, _ = tx.update(zero, tx.init(g))
  chex.assert_trees_all_equal(u, zero)


def test_sgd_constant_gradient_buffer_and_nesterov_first_step():
  g = jnp.asarray([1.0, -2.0])
  u = _updates(gradtx.sgd(1.0, momentum=0.9), [g] * 5)
  chex.assert_trees_all_close(u[-1], -g * (1 - 0.9**5) / (1 - 0.9), rtol=1e-12)
  (u1,) = _updates(gradtx.sgd(0.5, momentum=0.9, nesterov=True), [g])
  chex.assert_trees_all_close(u1, -0.5 * 1.9 * g, rtol=1e-12)


def test_schedules_are_evaluated_at_the_zero_based_step():
  schedule = optax.linear_schedule(1.0, 0.0, 10)
  tx = gradtx.sgd(schedule)
  g = jnp.ones(2)
  u = _updates(tx, [g] * 3)
  chex.assert_trees_all_close(u, [-1.0 * g, -0.9 * g, -0.8 * g], rtol=1e-6)  # optax schedules are float32
  b1_schedule = lambda count: 0.9 * jnp.ones([])
  chex.assert_trees_all_close(
      _updates(gradtx.adam(0.1, b1=b1_schedule), [g] * 3), _updates(gradtx.adam(0.1), [g] * 3), rtol=1e-12
  )


def test_mask_callable_skips_vectors():
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  tx = gradtx.add_decayed_weights(0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
  u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  chex.assert_trees_all_close(u, {"w": 0.5 * jnp.ones((2, 2)), "b": jnp.zeros(2)})


# Bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gradtx.adam(-1e-3), r"adam: learning_rate must be >= 0, got -0.001"),
        (lambda: gradtx.adam(1e-3, b1=1.0), r"adam: b1 must be in \[0, 1\), got 1.0"),
        (lambda: gradtx.adam(1e-3, b2=-0.1), r"adam: b2 must be in \[0, 1\)"),
        (lambda: gradtx.adam(1e-3, eps=-1e-8), r"adam: eps must be >= 0"),
        (lambda: gradtx.adam(1e-3, eps_root=float("nan")), r"adam: eps_root must be >= 0"),
        (lambda: gradtx.adamw(1e-3, weight_decay=-1.0), r"adamw: weight_decay must be >= 0"),
        (lambda: gradtx.amsgrad(1e-3, b1=1.5), r"amsgrad: b1 must be in \[0, 1\)"),
        (lambda: gradtx.rmsprop(1e-3, decay=1.0), r"rmsprop: decay must be in \[0, 1\)"),
        (lambda: gradtx.rmsprop(1e-3, momentum=-0.5), r"rmsprop: momentum must be in \[0, 1\)"),
        (
            lambda: gradtx.adagrad(1e-3, initial_accumulator_value=-1.0),
            r"adagrad: initial_accumulator_value must be >= 0",
        ),
        (lambda: gradtx.adagrad_norm(1.0, delayed=True), r"initial_accumulator_value must be > 0"),
        (lambda: gradtx.sgd(0.1, momentum=1.0), r"sgd: momentum must be in \[0, 1\)"),
        (lambda: gradtx.sgd(0.1, nesterov=True), r"sgd: nesterov=True needs momentum > 0"),
        (lambda: gradtx.sgd(0.1, weight_decay=-0.1), r"sgd: weight_decay must be >= 0"),
        (lambda: gradtx.scale_by_adam(b1=jnp.asarray(2.0)), r"scale_by_adam: b1 must be in \[0, 1\)"),
    ],
)
def test_illegal_hyperparameters_raise_at_construction(build, message):
  with pytest.raises(ValueError, match=message):
    build()


def test_weight_decay_without_params_names_the_missing_input():
  tx = gradtx.adamw(1e-3)
  g = {"w": jnp.ones(3)}
  with pytest.raises(TypeError, match="add_decayed_weights.update needs params="):
    tx.update(g, tx.init(g))


def test_mismatched_shapes_name_the_leaf_and_shapes():
  params = {"dense": {"kernel": jnp.zeros((64, 32))}}
  tx = gradtx.adam(1e-3)
  grads = {"dense": {"kernel": jnp.zeros((32, 64))}}
  with pytest.raises(ValueError, match=r"differ at leaf 'dense/kernel': shapes \(32, 64\) and \(64, 32\)"):
    tx.update(grads, tx.init(params), params)


def test_nan_gradient_propagates_and_is_documented():
  tx = gradtx.adam(0.1)
  p = jnp.zeros(2)
  u, state = tx.update(jnp.asarray([jnp.nan, 1.0]), tx.init(p), p)
  assert np.isnan(u[0]) and np.isfinite(u[1])
  assert np.isnan(state[0].mu[0])
