"""MARS: float64 reference (approximate and exact), invariants and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.optimizers.adam_variants import mars
from gradtx._src.optimizers.moments import adamw
from tests.moments.adam_variants_util import PARAMS, random_grads, run_updates
from tests.reference import mars_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

CASES = {
    "default": (lambda: mars(0.01), lambda: ref.MARS(0.01)),
    "custom_wd": (
        lambda: mars(0.02, b1=0.9, b2=0.95, gamma=0.1, eps=1e-6, weight_decay=0.1, b1_1d=0.8,
                     b2_1d=0.9, weight_decay_1d=0.05, learning_rate_1d=0.005),
        lambda: ref.MARS(0.02, b1=0.9, b2=0.95, gamma=0.1, eps=1e-6, wd=0.1, b1_1d=0.8, b2_1d=0.9,
                         wd_1d=0.05, lr_1d=0.005),
    ),
    "lion": (
        lambda: mars(0.002, gamma=0.05, weight_decay=0.1, variant="lion"),
        lambda: ref.MARS(0.002, gamma=0.05, wd=0.1, variant="lion"),
    ),
    "optimize_1d": (
        lambda: mars(0.01, gamma=0.05, weight_decay=0.01, optimize_1d=True),
        lambda: ref.MARS(0.01, gamma=0.05, wd=0.01, optimize_1d=True),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


def _minibatch_problem():
  """Least squares on a different minibatch every step: W (5, 3), b (3,)."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((60, 8, 5)))
  y = jnp.asarray(rng.standard_normal((60, 8, 3)))

  def loss(p, t):
    return 0.5 * jnp.mean(jnp.sum((x[t] @ p["w"] + p["b"] - y[t]) ** 2, axis=1))

  init = {"w": rng.standard_normal((5, 3)) * 0.5, "b": rng.standard_normal(3) * 0.5}
  return loss, init


@pytest.mark.parametrize("approximate", [True, False])
def test_minibatch_reference_exact_and_approximate(approximate):
  loss, init = _minibatch_problem()
  grad = jax.jit(jax.grad(loss))
  tx = mars(0.02, gamma=0.2, weight_decay=0.05, approximate=approximate)
  reference = ref.MARS(0.02, gamma=0.2, wd=0.05)

  @jax.jit
  def step(p, s, t):
    grad_fn = lambda q: jax.grad(loss)(q, t)
    u, s = tx.update(jax.grad(loss)(p, t), s, p, grad_fn=grad_fn)
    return optax.apply_updates(p, u), s

  params = jax.tree.map(jnp.asarray, init)
  state = tx.init(params)
  ref_params, ref_prev = dict(init), None
  for t in range(60):
    g = {k: np.asarray(v) for k, v in grad(ref_params, t).items()}
    prev = None if approximate or ref_prev is None else {
        k: np.asarray(v) for k, v in grad(ref_prev, t).items()}
    ref_prev = ref_params
    ref_params = reference.step(ref_params, g, prev)
    params, state = step(params, state, t)
    chex.assert_trees_all_close(params, ref_params, rtol=1e-10, atol=1e-14)


def test_exact_equals_approximate_on_a_deterministic_loss():
  # Without minibatch noise the gradient at the previous params IS the previous gradient.
  loss, init = PROBLEMS["softmax_regression"]()
  grad = jax.grad(loss)
  out = {}
  for approximate in (True, False):
    tx = mars(0.02, gamma=0.3, approximate=approximate)

    @jax.jit
    def step(p, s, tx=tx):
      u, s = tx.update(grad(p), s, p, grad_fn=grad)
      return optax.apply_updates(p, u), s

    p = jax.tree.map(jnp.asarray, init)
    s = tx.init(p)
    for _ in range(20):
      p, s = step(p, s)
    out[approximate] = p
  chex.assert_trees_all_close(out[True], out[False], rtol=1e-12)


def _small(grads, norm=0.5):
  return [jax.tree.map(lambda x: norm * x / jnp.linalg.norm(x), g) for g in grads]


def test_gamma_zero_is_adamw_on_gradients_inside_the_clip():
  # gamma = 0 and per-leaf norms <= 1: c_t = g_t, so MARS is AdamW (same betas on all leaves).
  grads = _small(random_grads(15))
  a = run_updates(mars(0.01, b1=0.9, b2=0.999, gamma=0.0, weight_decay=0.1, b1_1d=0.9,
                       b2_1d=0.999, weight_decay_1d=0.1), grads)
  b = run_updates(adamw(0.01, weight_decay=0.1), grads)
  chex.assert_trees_all_close(a, b, rtol=1e-12)


def test_constant_gradient_inside_the_clip_is_adamw():
  grads = _small(random_grads(1)) * 10
  a = run_updates(mars(0.01, gamma=0.5, weight_decay=0.0, optimize_1d=True), grads)
  b = run_updates(adamw(0.01, b1=0.95, b2=0.99, weight_decay=0.0), grads)
  chex.assert_trees_all_close(a, b, rtol=1e-12)


def test_large_gradients_are_clipped_to_unit_norm_per_leaf():
  # Scaling a gradient above norm 1 does not change c_t, hence not the update.
  grads = _small(random_grads(5), norm=1.0)
  big = [jax.tree.map(lambda x: 1e3 * x, g) for g in grads]
  tx = mars(0.01, gamma=0.0, optimize_1d=True)
  chex.assert_trees_all_close(run_updates(tx, grads), run_updates(tx, big), rtol=1e-10)


def test_bf16_and_mu_dtype():
  params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones((2,), jnp.bfloat16)}
  tx = mars(0.01, approximate=False, mu_dtype=jnp.float32)
  state = tx.init(params)
  u, state = jax.jit(lambda g, s, p: tx.update(g, s, p, grad_fn=lambda q: q))(params, state, params)
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(u))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state[0].mu))


def test_exact_variant_needs_grad_fn():
  tx = mars(0.01, approximate=False)
  state = tx.init(PARAMS)
  with pytest.raises(TypeError, match="grad_fn="):
    tx.update(PARAMS, state, PARAMS)
  with pytest.raises(TypeError, match="params="):
    tx.update(PARAMS, state, None, grad_fn=lambda p: p)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b1=1.0), "b1"),
        (dict(b2=-0.5), "b2"),
        (dict(gamma=-0.1), "gamma"),
        (dict(eps=-1.0), "eps"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(weight_decay_1d=-1.0), "weight_decay"),
        (dict(b1_1d=2.0), "b1_1d"),
        (dict(variant="shampoo"), "variant"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mars(0.01, **kwargs)
