"""Subset-Norm and Subspace-Momentum: reference, invariants, memory, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_subset_norm import scale_by_subset_norm
from gradtx._src.moments.subspace_momentum import subspace_momentum
from gradtx._src.optimizers.adaptive_steps import subset_norm
from gradtx._src.optimizers.moments import adagrad_norm, adam, sgd
from tests.moments.adaptive_steps_util import PROBLEMS, run_side_by_side
from tests.reference.subset_norm_ref import SubsetNorm

CASES = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-8, "weight_decay": 0.01,
     "momentum": "subspace", "rank": 2, "update_proj_gap": 7},
    {"learning_rate": 0.05, "b2": 1.0, "subset_size": 4, "momentum": "none", "correct_bias": False},
    {"learning_rate": 0.01, "subset_size": -1, "momentum": "ema", "weight_decay": 0.1},
]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("kwargs", CASES, ids=["default", "subspace", "int_adagrad", "sqrt_subsets"])
def test_matches_reference(problem, kwargs):
  ref = SubsetNorm(
      kwargs["learning_rate"], kwargs.get("b1", 0.9), kwargs.get("b2", 0.999), kwargs.get("eps", 1e-6),
      kwargs.get("weight_decay", 0.0), kwargs.get("subset_size", "heuristic"), kwargs.get("momentum", "ema"),
      kwargs.get("rank"), kwargs.get("update_proj_gap", 200), kwargs.get("correct_bias", True),
  )
  run_side_by_side(subset_norm(**kwargs), lambda g, p, v: ref.update(g, p), PROBLEMS[problem], steps=60)


def _run(opt, problem, steps=40):
  params, loss = PROBLEMS[problem]()
  grad, step = jax.jit(jax.grad(loss)), jax.jit(opt.update)
  state = opt.init(params)
  for _ in range(steps):
    u, state = step(grad(params), state, params)
    params = optax.apply_updates(params, u)
  return params


def _close(a, b, rtol=1e-11):
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=rtol, atol=1e-13)


def test_singleton_subsets_are_adam():
  # Every coordinate its own subset, EMA momentum, eps = 0: Adam (the eps-hat form equals Adam at eps 0).
  _close(_run(subset_norm(0.02, eps=0.0, subset_size=None), "tanh_regression"),
         _run(adam(0.02, eps=0.0), "tanh_regression"))


def test_one_subset_no_momentum_is_adagrad_norm():
  # One subset per (single-leaf) model, b1 = 0, b2 = 1, no bias correction: AdaGrad-Norm.
  params = {"w": jnp.linspace(-1.0, 2.0, 12).reshape(4, 3)}
  loss = lambda p: jnp.sum(jnp.cosh(p["w"]))  # noqa: E731
  a = subset_norm(0.3, b1=0.0, b2=1.0, eps=1e-6, subset_size=12, correct_bias=False)
  b = adagrad_norm(0.3, eps=1e-6)
  sa, sb, pa, pb = a.init(params), b.init(params), params, params
  grad, step_a, step_b = jax.jit(jax.grad(loss)), jax.jit(a.update), jax.jit(b.update)
  for _ in range(20):
    ua, sa = step_a(grad(pa), sa, pa)
    ub, sb = step_b(grad(pb), sb, pb)
    pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
  _close(pa, pb, rtol=1e-12)


def test_full_rank_subspace_is_ema_momentum():
  # r = min(a, b) and no refresh inside the run: P is square orthogonal, so SM = EMA momentum.
  full = subset_norm(0.01, momentum="subspace", rank=3, update_proj_gap=1000)
  _close(_run(full, "least_squares"), _run(subset_norm(0.01), "least_squares"), rtol=1e-9)
  sgd_sm = optax.chain(subspace_momentum(0.9, rank=3, update_proj_gap=1000), optax.scale(-0.05))
  sgd_ema = sgd(0.05 * 0.1, momentum=0.9)  # EMA (1-b1) g == torch buffer scaled by (1-b1)
  _close(_run(sgd_sm, "tanh_regression"), _run(sgd_ema, "tanh_regression"), rtol=1e-9)


def test_orthogonal_complement_gets_plain_sgd():
  # b1 = 0: the numerator is P P^T g + (g - P P^T g) = g for any rank.
  tx = subspace_momentum(0.0, rank=1, update_proj_gap=5)
  g = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 4)))}
  state, step = tx.init(g), jax.jit(tx.update)
  for _ in range(6):
    u, state = step(g, state)
    np.testing.assert_allclose(np.asarray(u["w"]), np.asarray(g["w"]), rtol=1e-12, atol=1e-14)


def test_state_memory_against_adam():
  params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32)}
  n = 64 * 32 + 32

  def floats(state):
    return sum(x.size for x in jax.tree.leaves(state) if x.ndim > 0)

  assert floats(adam(1e-3).init(params)) == 2 * n
  assert floats(subset_norm(1e-3).init(params)) == (64 * 32 + 64) + 2 * 32
  assert floats(subset_norm(1e-3, momentum="none").init(params)) == 64 + 32
  # subspace: momentum 64 x r, basis r x 32, subsets 64; the bias keeps EMA momentum and Adam's v.
  assert floats(subset_norm(1e-3, momentum="subspace", rank=4).init(params)) == 64 * 4 + 4 * 32 + 64 + 2 * 32


def test_refresh_resets_momentum():
  # On a refresh step the subspace momentum restarts from zero: the numerator is (1-b1) P^T g
  # back-projected plus the complement, independent of the previous momentum.
  rng = np.random.default_rng(4)
  g1 = {"w": jnp.asarray(rng.normal(size=(5, 3)))}
  g2 = {"w": jnp.asarray(rng.normal(size=(5, 3)))}
  tx = subspace_momentum(0.9, rank=2, update_proj_gap=2)
  s = tx.init(g1)
  _, s = tx.update(g1, s)  # t = 1: refresh
  u2, _ = tx.update(g2, s)  # t = 2: refresh again
  fresh = tx.init(g2)
  u_fresh, _ = tx.update(g2, fresh)
  np.testing.assert_allclose(np.asarray(u2["w"]), np.asarray(u_fresh["w"]), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"b1": 1.0}, "b1"), ({"b2": 1.5}, "b2"), ({"eps": -1.0}, "eps"), ({"momentum": "heavy"}, "momentum"),
     ({"subset_size": 0}, "subset_size"), ({"momentum": "subspace"}, "rank"),
     ({"momentum": "subspace", "rank": 0}, "rank"), ({"update_proj_gap": 0}, "update_proj_gap")],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    scale_by_subset_norm(**kwargs)
