"""DoG and LDoG: reference, optax.contrib.dog agreement, invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_dog import scale_by_dog
from gradtx._src.optimizers.adaptive_steps import dog
from tests.moments.adaptive_steps_util import ATOL, PROBLEMS, RTOL, run_side_by_side
from tests.reference.dog_ref import Dog


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"learning_rate": 0.8, "reps_rel": 1e-3, "eps": 1e-6, "layerwise": True, "weight_decay": 0.01},
    ],
)
def test_matches_reference(problem, kwargs):
  ref = Dog(
      kwargs.get("learning_rate", 1.0), kwargs.get("reps_rel", 1e-6), kwargs.get("eps", 1e-8),
      kwargs.get("layerwise", False), kwargs.get("weight_decay", 0.0),
  )
  run_side_by_side(dog(**kwargs), lambda g, p, v: ref.update(g, p), PROBLEMS[problem], steps=60)


def test_global_dog_with_decay_and_layerwise_default_match_reference():
  ref = Dog(1.0, 1e-4, 1e-8, False, 0.05)
  run_side_by_side(dog(reps_rel=1e-4, weight_decay=0.05), lambda g, p, v: ref.update(g, p),
                   PROBLEMS["least_squares"], steps=50)


def test_first_step_size():
  # issue 4 / algorithms.md 1.17: eta_0 = reps_rel (1 + ||x0||) / sqrt(||g0||^2 + eps).
  params = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.array([0.0])}
  grads = {"w": jnp.array([[1.0, 2.0], [2.0, 0.0]]), "b": jnp.array([4.0])}
  tx = scale_by_dog(reps_rel=1e-3, eps=0.0)
  u, _ = tx.update(grads, tx.init(params), params)
  eta = 1e-3 * (1 + 5.0) / 5.0
  for k in grads:
    np.testing.assert_allclose(np.asarray(u[k]), eta * np.asarray(grads[k]), rtol=1e-12)


def test_matches_optax_contrib_dog():
  params, loss = PROBLEMS["tanh_regression"]()
  ours = dog(reps_rel=1e-4, weight_decay=0.01)
  theirs = optax.contrib.dog(1.0, init_step=("heuristic", 1e-4), eps=1e-8, weight_decay=0.01)
  s1, s2, p1, p2 = ours.init(params), theirs.init(params), params, params
  grad = jax.jit(jax.grad(loss))
  step1 = jax.jit(ours.update)
  step2 = jax.jit(theirs.update)
  for _ in range(50):
    u1, s1 = step1(grad(p1), s1, p1)
    u2, s2 = step2(grad(p2), s2, p2)
    p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
  for k in p1:
    np.testing.assert_allclose(np.asarray(p1[k]), np.asarray(p2[k]), rtol=RTOL, atol=ATOL)


def test_ldog_on_single_leaf_equals_dog():
  params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)}
  loss = lambda p: jnp.sum(jnp.cosh(p["w"] - 0.3))  # noqa: E731
  a, b = dog(layerwise=True, reps_rel=1e-3), dog(reps_rel=1e-3)
  sa, sb, pa, pb = a.init(params), b.init(params), params, params
  grad, step_a, step_b = jax.jit(jax.grad(loss)), jax.jit(a.update), jax.jit(b.update)
  for _ in range(20):
    ua, sa = step_a(grad(pa), sa, pa)
    ub, sb = step_b(grad(pb), sb, pb)
    pa, pb = optax.apply_updates(pa, ua), optax.apply_updates(pb, ub)
  np.testing.assert_allclose(np.asarray(pa["w"]), np.asarray(pb["w"]), rtol=1e-13)


def test_loss_scale_invariance():
  # With eps = 0, multiplying the loss by k > 0 leaves the trajectory unchanged.
  params, loss = PROBLEMS["least_squares"]()
  grad1 = jax.jit(jax.grad(loss))
  grad2 = jax.jit(jax.grad(lambda p: 250.0 * loss(p)))
  opt = dog(eps=0.0, reps_rel=1e-3)
  step = jax.jit(opt.update)
  s1, s2, p1, p2 = opt.init(params), opt.init(params), params, params
  for _ in range(40):
    u1, s1 = step(grad1(p1), s1, p1)
    u2, s2 = step(grad2(p2), s2, p2)
    p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
  for k in p1:
    np.testing.assert_allclose(np.asarray(p1[k]), np.asarray(p2[k]), rtol=1e-9, atol=1e-12)


def test_x0_is_read_at_first_update():
  # init may see placeholder params: x0 and r_eps come from the first update's params.
  real = {"w": jnp.array([3.0, 4.0])}
  tx = scale_by_dog(reps_rel=1e-2, eps=0.0)
  state = tx.init({"w": jnp.zeros(2)})
  u, state = tx.update({"w": jnp.array([0.0, 2.0])}, state, real)
  np.testing.assert_allclose(np.asarray(state.x0["w"]), [3.0, 4.0])
  np.testing.assert_allclose(np.asarray(u["w"]), [0.0, 1e-2 * 6.0], rtol=1e-12)


def test_params_required():
  tx = scale_by_dog()
  g = {"w": jnp.ones(2)}
  with pytest.raises(TypeError, match="params"):
    tx.update(g, tx.init(g))


@pytest.mark.parametrize(("kwargs", "name"), [({"reps_rel": 0.0}, "reps_rel"), ({"eps": -1.0}, "eps")])
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    dog(**kwargs)
