"""Ano: float64 reference, invariants and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.optimizers.adam_variants import ano
from tests.moments.adam_variants_util import random_grads, run_updates
from tests.reference import ano_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

CASES = {
    "default": (lambda: ano(0.005), lambda: ref.Ano(0.005)),
    # Ano's step does not shrink with |g|, so near a minimum the rounding of a small gradient
    # moves the params by ~lr * its relative error: a small lr keeps that below 1e-10.
    "custom_wd": (
        lambda: ano(0.005, b1=0.8, b2=0.9, eps=1e-6, weight_decay=0.1),
        lambda: ref.Ano(0.005, b1=0.8, b2=0.9, eps=1e-6, wd=0.1),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


def test_first_update():
  # u_1 = -lr |g| / sqrt(g^2 + eps) sign(g).
  (g,) = random_grads(1)
  (u,) = run_updates(ano(0.5), [g])
  expected = {k: -0.5 * np.abs(v) / np.sqrt(np.square(v) + 1e-8) * np.sign(v) for k, v in g.items()}
  chex.assert_trees_all_close(u, expected, rtol=1e-12)


def test_update_magnitude_ignores_the_momentum_magnitude():
  # Two gradient histories with the same signs of momentum and the same |g_t| and v_t but a
  # different first gradient scale through b1 = 0: |u| only depends on |g| and v.
  grads = random_grads(6, seed=4)
  a = run_updates(ano(0.1, b1=0.0), grads)
  b = run_updates(ano(0.1, b1=0.5), grads)
  for ua, ub in zip(a, b):
    for k in ua:
      np.testing.assert_allclose(np.abs(ua[k]), np.abs(ub[k]), rtol=1e-12)


def test_second_moment_stays_non_negative():
  grads = [{k: v * s for k, v in g.items()} for g, s in zip(random_grads(40), np.geomspace(1e2, 1e-2, 40))]
  tx = ano(0.1, b2=0.5)
  state = tx.init(grads[0])
  update = jax.jit(tx.update)
  for g in grads:
    _, state = update(g, state, g)
  assert all((np.asarray(x) >= 0).all() for x in state[0].nu.values())


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(b1=1.0), "b1"), (dict(b2=0.4), "b2"), (dict(eps=-1.0), "eps"), (dict(weight_decay=-1.0), "weight_decay")],
)
def test_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ano(0.01, **kwargs)


def test_zero_gradient_gives_zero_update():
  zero = {"x": jnp.zeros(3)}
  (u,) = run_updates(ano(0.1), [zero], zero)
  chex.assert_trees_all_equal(u, zero)
