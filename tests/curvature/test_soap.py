"""SOAP: float64 reference, invariants (first update zero, identity basis = Adam, orthonormal basis), robustness."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.curvature.soap import scale_by_soap
from gradtx._src.moments.scale_by_adam import scale_by_adam
from gradtx._src.optimizers.kronecker import soap
from tests.curvature.kronecker_problems import (
  PROBLEMS,
  assert_finite_on_extreme_gradients,
  compare_leafwise,
  float32_losses,
)
from tests.reference import kronecker_ref as ref

# SOAP's first basis is eigh of the first statistics. Where those are rank deficient the basis of
# their null space is arbitrary (LAPACK's choice, in the paper's code too) and changes the
# trajectory, so every rotated side below has full-rank first statistics: square leaves, or
# ``max_precond_dim`` keeping only the short side of a tall leaf rotated. In the square case both
# sides are rotated and the second (full-batch) gradient equals the first, so G' = Q_L^T G Q_R is
# diagonal up to rounding; its ~1e-16 off-diagonal entries meet eps in m / (sqrt(v) + eps), which
# amplifies rounding to ~1e-8 relative unless eps is well above 1e-16 / sqrt(1 - b2): eps = 1e-4 there.
CASES = {
    "square_both_sides": (
        "square_least_squares",
        dict(learning_rate=0.01, eps=1e-4, precondition_frequency=3),
        dict(lr=0.01, eps=1e-4, f=3),
    ),
    "tall_right_only_nondefault": (
        "least_squares",
        dict(learning_rate=0.02, b1=0.9, b2=0.99, eps=1e-7, weight_decay=0.05, shampoo_beta=0.8,
             precondition_frequency=2, max_precond_dim=4),
        dict(lr=0.02, b1=0.9, b2=0.99, eps=1e-7, wd=0.05, shampoo_beta=0.8, f=2, max_dim=4),
    ),
    "softmax_right_only": (
        "softmax_regression",
        dict(learning_rate=0.03, weight_decay=0.0, precondition_frequency=5, max_precond_dim=3),
        dict(lr=0.03, wd=0.0, f=5, max_dim=3),
    ),
    "tensor_right_only": (
        "tensor_least_squares",
        dict(learning_rate=0.01, b1=0.8, precondition_frequency=1, max_precond_dim=4),
        dict(lr=0.01, b1=0.8, f=1, max_dim=4),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_float64_reference(case):
  problem, kwargs, ref_kwargs = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_leafwise(soap(**kwargs), ref.SoapRef(init, **ref_kwargs), loss, init, steps=50, rtol=1e-10)


def _grads(seed, shapes, n):
  rng = np.random.default_rng(seed)
  return [{k: jnp.asarray(rng.standard_normal(s)) for k, s in shapes.items()} for _ in range(n)]


def test_first_update_is_exactly_zero_and_sets_an_eigenbasis():
  shapes = {"w": (4, 3), "b": (3,)}
  (g,) = _grads(0, shapes, 1)
  params = jax.tree.map(jnp.ones_like, g)
  tx = soap(0.1, weight_decay=0.1)
  state = tx.init(params)
  u, state = tx.update(g, state, params)
  chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, g))
  (fl, fr) = state[0].factors[1]  # leaves sorted: "b", "w"
  for s, q in (fl, fr):
    d = np.asarray(q.T @ s @ q)
    np.testing.assert_allclose(d - np.diag(np.diag(d)), 0.0, atol=1e-12)
    assert np.all(np.diff(np.diag(d)) <= 1e-12)  # descending


def test_identity_basis_and_vectors_equal_adam_one_call_later():
  # Sec. 2.9 invariant, with eps = 0 so that the eps-hat and Algorithm-1 forms of Adam coincide.
  shapes = {"w": (3, 4), "b": (4,)}
  seq = _grads(1, shapes, 12)
  params = jax.tree.map(jnp.zeros_like, seq[0])
  tx = scale_by_soap(b1=0.9, b2=0.99, eps=0.0, max_precond_dim=1)
  adam = scale_by_adam(b1=0.9, b2=0.99, eps=0.0)
  s, a = tx.init(params), adam.init(params)
  u0, s = tx.update(seq[0], s)
  for g in seq[1:]:
    u, s = tx.update(g, s)
    v, a = adam.update(g, a)
    chex.assert_trees_all_close(u, v, rtol=1e-12)


def test_basis_stays_orthonormal_and_sorted_after_refreshes():
  shapes = {"w": (5, 4)}
  seq = _grads(2, shapes, 25)
  tx = scale_by_soap(precondition_frequency=2)
  state = tx.init(seq[0])
  step = jax.jit(tx.update)
  for g in seq:
    _, state = step(g, state)
  for _, q in state.factors[0]:
    np.testing.assert_allclose(np.asarray(q.T @ q), np.eye(q.shape[0]), atol=1e-12)


@pytest.mark.parametrize("scale", [0.0, 1e-20, 1e15])  # float32 squares overflow above ~1e19
def test_zero_rank_deficient_and_extreme_gradients_stay_finite(scale):
  assert_finite_on_extreme_gradients(soap(0.1, precondition_frequency=1), scale)


def test_float32_stays_finite_for_1000_steps():
  initial, losses = float32_losses(soap(0.01, precondition_frequency=5))
  assert np.all(np.isfinite(losses))
  assert float(losses[-1]) < 0.5 * initial


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(b1=1.0), "b1"),
        (dict(b2=-0.5), "b2"),
        (dict(eps=-1e-8), "eps"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(shampoo_beta=1.0), "shampoo_beta"),
        (dict(precondition_frequency=0), "precondition_frequency"),
        (dict(max_precond_dim=2.5), "max_precond_dim"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    soap(0.1, **kwargs)


def test_missing_params_with_weight_decay_is_a_type_error():
  tx = soap(0.1, weight_decay=0.01)
  p = {"w": jnp.zeros((2, 2))}
  with pytest.raises(TypeError, match="params="):
    tx.update(p, tx.init(p))
