"""XGrad weight prediction: reference (Adam and SGD-momentum bases), invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.weight_prediction import predict_params, weight_prediction
from gradtx._src.optimizers.adaptive_steps import xgrad
from gradtx._src.optimizers.moments import adam, sgd
from tests.moments.adaptive_steps_util import PROBLEMS, run_side_by_side
from tests.reference.xgrad_ref import XGradAdam, XGradSgdm


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(("lr", "b1", "b2", "s"), [(0.01, 0.9, 0.999, 1), (0.02, 0.8, 0.99, 3)])
def test_adam_base_matches_reference(problem, lr, b1, b2, s):
  params, _ = PROBLEMS[problem]()
  ref = XGradAdam(params, lr, b1, b2, 1e-8, s)
  run_side_by_side(
      xgrad(adam(lr, b1, b2), steps=s), lambda g, p, v: ref.update(g), PROBLEMS[problem], steps=60,
      predict=predict_params, ref_predict=ref.predict,
  )


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_sgd_momentum_base_matches_reference(problem):
  params, _ = PROBLEMS[problem]()
  ref = XGradSgdm(params, 0.01, 0.9, 2)
  run_side_by_side(
      xgrad(sgd(0.01, momentum=0.9), steps=2), lambda g, p, v: ref.update(g), PROBLEMS[problem], steps=60,
      predict=predict_params, ref_predict=ref.predict,
  )


def test_first_prediction_is_current_params_and_updates_are_the_base():
  params, loss = PROBLEMS["least_squares"]()
  opt, base = xgrad(adam(0.01)), adam(0.01)
  state, bstate = opt.init(params), base.init(params)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), predict_params(params, state), params))
  for _ in range(3):
    g = jax.grad(loss)(params)
    u, state = opt.update(g, state, params)
    ub, bstate = base.update(g, bstate, params)
    for k in u:
      np.testing.assert_array_equal(np.asarray(u[k]), np.asarray(ub[k]))
    params = optax.apply_updates(params, u)


def test_zero_steps_predicts_current_params():
  params, loss = PROBLEMS["tanh_regression"]()
  opt = xgrad(adam(0.05), steps=0)
  state = opt.init(params)
  for _ in range(3):
    u, state = opt.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, u)
  for k, v in predict_params(params, state).items():
    np.testing.assert_array_equal(np.asarray(v), np.asarray(params[k]))


def test_found_inside_a_chain_and_steps_override():
  params = {"w": jnp.ones(2)}
  opt = optax.chain(optax.clip(10.0), weight_prediction(sgd(0.5)))
  state = opt.init(params)
  _, state = opt.update({"w": jnp.array([1.0, -2.0])}, state, params)
  np.testing.assert_allclose(np.asarray(predict_params(params, state)["w"]), [0.5, 2.0])
  np.testing.assert_allclose(np.asarray(predict_params(params, state, steps=2)["w"]), [0.0, 3.0])


def test_predict_params_needs_an_xgrad_state():
  params = {"w": jnp.ones(2)}
  with pytest.raises(TypeError, match="weight_prediction"):
    predict_params(params, adam(0.1).init(params))


def test_bad_steps():
  with pytest.raises(ValueError, match="steps"):
    xgrad(adam(0.1), steps=-1)
