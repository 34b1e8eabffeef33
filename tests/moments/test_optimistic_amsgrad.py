"""Optimistic AMSGrad: reference, invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_optimistic_amsgrad import scale_by_optimistic_amsgrad
from gradtx._src.optimizers.adaptive_steps import optimistic_amsgrad
from tests.moments.adaptive_steps_util import ATOL, PROBLEMS, RTOL, run_side_by_side, to_np
from tests.reference.optimistic_amsgrad_ref import OptimisticAmsgrad, UncorrectedAmsgrad


def _ref_update(ref):
  def update(g, p, v):
    nxt = ref.step(g)
    return {k: nxt[k] - p[k] for k in p}
  return update


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 1e-3},
        {"learning_rate": 5e-3, "b1": 0.7, "b2": 0.95, "eps": 1e-6, "predictor": "zero"},
    ],
)
def test_matches_reference(problem, kwargs):
  params, _ = PROBLEMS[problem]()
  ref = OptimisticAmsgrad(
      params, kwargs["learning_rate"], kwargs.get("b1", 0.9), kwargs.get("b2", 0.999),
      kwargs.get("eps", 1e-8), kwargs.get("predictor", "last"),
  )
  run_side_by_side(optimistic_amsgrad(**kwargs), _ref_update(ref), PROBLEMS[problem], steps=60)


def test_b1_zero_zero_predictor_is_uncorrected_amsgrad():
  # algorithms.md 1.4: o = 0 always and u = -lr g / sqrt(vhat).
  params, _ = PROBLEMS["least_squares"]()
  ref = UncorrectedAmsgrad(params, 0.01, b1=0.0)
  opt = optimistic_amsgrad(0.01, b1=0.0, predictor="zero")
  _, state = run_side_by_side(opt, lambda g, p, v: ref.update(g), PROBLEMS["least_squares"], steps=50)
  np.testing.assert_array_equal(np.asarray(state[0].offset["w"]), 0.0)


def test_lazy_sequence_is_uncorrected_amsgrad():
  # params_t - o_t = params_t + lr q_t reproduces plain uncorrected AMSGrad on the same gradients.
  params, loss = PROBLEMS["tanh_regression"]()
  lr = 0.02
  opt = optimistic_amsgrad(lr, b1=0.8, b2=0.99)
  ref = UncorrectedAmsgrad(params, lr, b1=0.8, b2=0.99)
  state, lazy = opt.init(params), to_np(params)
  step = jax.jit(lambda g, s, p: opt.update(g, s, p))
  grad = jax.jit(jax.grad(loss))
  for _ in range(50):
    g = grad(params)
    u, state = step(g, state, params)
    params = optax.apply_updates(params, u)
    ref_u = ref.update(to_np(g))
    lazy = {k: lazy[k] + ref_u[k] for k in lazy}
    for k in lazy:
      got = np.asarray(params[k]) + lr * np.asarray(state[0].offset[k])
      np.testing.assert_allclose(got, lazy[k], rtol=RTOL, atol=ATOL)


def test_denominator_floor_is_sqrt_eps():
  tx = scale_by_optimistic_amsgrad(b1=0.0, predictor="zero", eps=1e-4)
  g = {"x": jnp.array([1e-6])}
  u, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(np.asarray(u["x"]), 1e-6 / 1e-2, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"b1": 1.0}, "b1"), ({"b2": 2.0}, "b2"), ({"eps": 0.0}, "eps"), ({"predictor": "rmpe"}, "predictor")],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    scale_by_optimistic_amsgrad(**kwargs)
