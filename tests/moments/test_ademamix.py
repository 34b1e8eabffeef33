"""AdEMAMix: float64 reference, invariants (alpha = 0 is AdamW, paper schedulers) and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_ademamix import (
  ademamix_alpha_schedule,
  ademamix_b3_schedule,
  scale_by_ademamix,
)
from gradtx._src.optimizers.adam_variants import ademamix
from gradtx._src.optimizers.moments import adamw
from tests.moments.adam_variants_util import PARAMS, random_grads, run_updates
from tests.reference import ademamix_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

CASES = {
    "default": (
        lambda: ademamix(0.01, b3=0.9999, alpha=5.0),
        lambda: ref.AdEMAMix(0.01, b3=0.9999, alpha=5.0),
    ),
    "custom_wd_masked": (
        lambda: ademamix(0.02, b1=0.8, b2=0.95, b3=0.99, alpha=2.0, eps=1e-6, weight_decay=0.1,
                         mask={"w": True, "b": False}),
        lambda: ref.AdEMAMix(0.02, b1=0.8, b2=0.95, b3=0.99, alpha=2.0, eps=1e-6, wd=0.1,
                             mask={"w": True, "b": False}),
    ),
    "schedules": (
        lambda: ademamix(0.01, b3=0.999, alpha=8.0, weight_decay=0.01,
                         alpha_schedule=ademamix_alpha_schedule(8.0, 30),
                         b3_schedule=ademamix_b3_schedule(0.9, 0.999, 40)),
        lambda: ref.AdEMAMix(0.01, b3=0.999, alpha=8.0, wd=0.01,
                             alpha_fn=ref.alpha_warmup(8.0, 30), b3_fn=ref.b3_warmup(0.9, 0.999, 40)),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


def test_alpha_zero_is_adamw():
  # Exact: the slow EMA is multiplied by a zero weight; everything else is AdamW's arithmetic.
  a = run_updates(ademamix(0.01, b3=0.999, alpha=0.0, weight_decay=0.1), random_grads(), PARAMS)
  b = run_updates(adamw(0.01, weight_decay=0.1), random_grads(), PARAMS)
  chex.assert_trees_all_close(a, b, rtol=1e-14)


def test_alpha_warmup_first_update_is_adamw():
  tx = ademamix(0.01, b3=0.9999, alpha=8.0, weight_decay=0.1,
                alpha_schedule=ademamix_alpha_schedule(8.0, 100))
  a = run_updates(tx, random_grads(1), PARAMS)
  b = run_updates(adamw(0.01, weight_decay=0.1), random_grads(1), PARAMS)
  chex.assert_trees_all_close(a, b, rtol=1e-14)


def test_paper_schedulers():
  b3 = ademamix_b3_schedule(0.9, 0.9999, 50)
  np.testing.assert_allclose(float(b3(0)), 0.9, rtol=1e-12)
  for c in (50, 51, 1000):
    np.testing.assert_allclose(float(b3(c)), 0.9999, rtol=1e-12)
  ref_b3 = ref.b3_warmup(0.9, 0.9999, 50)
  for c in (1, 10, 25, 49):
    np.testing.assert_allclose(float(b3(c)), ref_b3(c), rtol=1e-12)
  # Monotone increase of the decay during warm-up.
  values = [float(b3(c)) for c in range(51)]
  assert all(x <= y for x, y in zip(values, values[1:]))
  alpha = ademamix_alpha_schedule(5.0, 10)
  assert [float(alpha(c)) for c in (0, 5, 10, 20)] == [0.0, 2.5, 5.0, 5.0]


def test_schedule_as_plain_hyperparameter_is_the_same_path():
  # alpha may itself be a schedule; alpha_schedule, when given, takes precedence over alpha.
  sched = ademamix_alpha_schedule(3.0, 5)
  a = run_updates(ademamix(0.01, b3=0.99, alpha=sched), random_grads(8), PARAMS)
  b = run_updates(ademamix(0.01, b3=0.99, alpha=123.0, alpha_schedule=sched), random_grads(8), PARAMS)
  chex.assert_trees_all_close(a, b, rtol=1e-14)


def test_bf16_gradients_give_bf16_updates_and_float32_mu_dtype():
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  tx = scale_by_ademamix(b3=0.999, alpha=5.0, mu_dtype=jnp.float32)
  state = tx.init(params)
  u, state = jax.jit(tx.update)(params, state)
  assert u["w"].dtype == jnp.bfloat16
  assert state.mu["w"].dtype == state.mu_slow["w"].dtype == jnp.float32
  assert state.nu["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b3=1.0, alpha=5.0), "b3"),
        (dict(b3=0.999, alpha=-1.0), "alpha"),
        (dict(b3=0.999, alpha=5.0, b1=1.5), "b1"),
        (dict(b3=0.999, alpha=5.0, b2=-0.1), "b2"),
        (dict(b3=0.999, alpha=5.0, eps=-1.0), "eps"),
        (dict(b3=0.999, alpha=5.0, weight_decay=-1.0), "weight_decay"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ademamix(0.01, **kwargs)


def test_b3_and_alpha_are_required():
  with pytest.raises(TypeError, match="b3|alpha"):
    ademamix(0.01)  # pylint: disable=missing-kwoa
  with pytest.raises(ValueError, match="warmup"):
    ademamix_alpha_schedule(5.0, 0)
  with pytest.raises(ValueError, match="b1"):
    ademamix_b3_schedule(0.0, 0.999, 10)


def test_works_under_optax_inject_hyperparams():
  tx = optax.inject_hyperparams(ademamix, static_args=("mask",))(
      0.01, b3=0.999, alpha=5.0, alpha_schedule=ademamix_alpha_schedule(5.0, 10))
  plain = ademamix(0.01, b3=0.999, alpha=5.0, alpha_schedule=ademamix_alpha_schedule(5.0, 10))
  grads = random_grads(4)
  chex.assert_trees_all_close(run_updates(tx, grads), run_updates(plain, grads), rtol=1e-12)
