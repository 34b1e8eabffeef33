"""EXAdam: float64 reference (revised and first-release step size), invariants and bad input."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.optimizers.adam_variants import exadam
from tests.moments.adam_variants_util import random_grads, run_updates
from tests.reference import exadam_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

CASES = {
    "default": (lambda: exadam(0.005), lambda: ref.EXAdam(0.005)),
    "custom_wd": (
        lambda: exadam(0.002, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1),
        lambda: ref.EXAdam(0.002, b1=0.8, b2=0.99, eps=1e-6, wd=0.1),
    ),
    # A smaller step and larger eps keep this trajectory out of the regime where EXAdam's
    # m^2/(m^2 + eps) amplifies rounding (at lr 2e-3, eps 1e-8 it doubles each step after ~35).
    "log_step_size": (
        lambda: exadam(0.001, eps=1e-6, weight_decay=0.05, log_step_size=True),
        lambda: ref.EXAdam(0.001, eps=1e-6, wd=0.05, log_step_size=True),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


@pytest.mark.parametrize("log_step_size, expected", [(False, -15.9524212), (True, -11.0573758)])
def test_first_update_for_unit_gradient(log_step_size, expected):
  # algorithms.md 1.11: the first update for g = 1 at the defaults, in units of the lr.
  params = {"x": jnp.zeros(3)}
  (u,) = run_updates(exadam(1.0, log_step_size=log_step_size), [{"x": jnp.ones(3)}], params)
  np.testing.assert_allclose(np.asarray(u["x"]), expected, rtol=1e-8)


def test_tends_to_the_undebiased_update():
  # After many steps d1, d2 -> 1 and the update tends to -lr (m + g) / (sqrt(v) + eps).
  params = {"x": jnp.zeros(2)}
  grads = [{"x": jnp.asarray([0.5, -2.0])}] * 500
  u = run_updates(exadam(1.0, b1=0.5, b2=0.9), grads, params)[-1]
  g = np.array([0.5, -2.0])
  chex.assert_trees_all_close(u["x"], -(g + g) / (np.abs(g) + 1e-8), rtol=1e-6)


def test_mask_and_weight_decay():
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
  zero = [{"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}]
  (u,) = run_updates(exadam(0.1, weight_decay=0.5, mask={"w": True, "b": False}), zero, params)
  chex.assert_trees_all_close(u, {"w": jnp.full((3, 2), -0.05), "b": jnp.zeros(2)}, rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(b1=1.0), "b1"), (dict(b2=-1.0), "b2"), (dict(eps=0.0), "eps"), (dict(weight_decay=-1.0), "weight_decay")],
)
def test_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    exadam(0.01, **kwargs)


def test_runs_on_random_gradients_without_nans():
  us = run_updates(exadam(0.01), random_grads(10))
  assert all(np.isfinite(np.asarray(x)).all() for u in us for x in u.values())
