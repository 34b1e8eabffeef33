"""SANIA: reference, invariants (tau in [0, 1], scale invariance), missing value, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_sania import scale_by_sania
from gradtx._src.optimizers.adaptive_steps import sania
from tests.moments.adaptive_steps_util import PROBLEMS, run_side_by_side
from tests.reference.sania_ref import Sania


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"preconditioner": "adagrad"},
        {"learning_rate": 0.7, "preconditioner": "adam", "b2": 0.9, "eps": 1e-3, "f_star": 0.01},
        {"preconditioner": "adagrad", "eps": 1e-2, "sqrt": True},
    ],
)
def test_matches_reference(problem, kwargs):
  params, _ = PROBLEMS[problem]()
  ref = Sania(
      params, kwargs.get("learning_rate", 1.0), kwargs.get("preconditioner", "adam"),
      kwargs.get("b2", 0.999), kwargs.get("eps", 0.1), kwargs.get("f_star", 0.0), kwargs.get("sqrt", False),
  )
  run_side_by_side(sania(**kwargs), lambda g, p, v: ref.update(g, v), PROBLEMS[problem], steps=60)
  taus = np.array(ref.taus)
  assert np.all((taus >= 0.0) & (taus <= 1.0))
  assert np.any(taus < 1.0)  # the Polyak branch was exercised


# f(x) = h(D x): SANIA gives x_t = D^{-1} y_t exactly when the eps floor is inactive. AdaGrad-SQR
# accumulates g^2, Adam-SQR's vhat also scales like D^2. With f* = 0 unreachable, Adam-SQR's iterates
# oscillate and amplify rounding (1e-12 by step 15, 1e-5 by step 40), so it runs 15 steps.
@pytest.mark.parametrize(
    ("kwargs", "scales", "steps"),
    [
        ({"preconditioner": "adagrad"}, (np.geomspace(0.01, 100.0, 15), [0.1, 1.0, 30.0]), 50),
        ({"preconditioner": "adam", "b2": 0.9}, (np.geomspace(10.0, 0.1, 15), [3.0, 0.2, 1.0]), 15),
    ],
    ids=["adagrad_sqr", "adam_sqr"],
)
def test_scale_invariance(kwargs, scales, steps):
  params, h = PROBLEMS["least_squares"]()
  d = {"w": jnp.asarray(scales[0].reshape(5, 3)), "b": jnp.array(scales[1])}
  f = lambda x: h(jax.tree.map(jnp.multiply, d, x))  # noqa: E731
  opt = sania(eps=1e-30, **kwargs)
  y, x = params, jax.tree.map(jnp.divide, params, d)
  sy, sx = opt.init(y), opt.init(x)
  vg_h, vg_f = jax.jit(jax.value_and_grad(h)), jax.jit(jax.value_and_grad(f))
  step = jax.jit(lambda g, s, p, v: opt.update(g, s, p, value=v))
  for _ in range(steps):
    vy, gy = vg_h(y)
    vx, gx = vg_f(x)
    uy, sy = step(gy, sy, y, vy)
    ux, sx = step(gx, sx, x, vx)
    y, x = optax.apply_updates(y, uy), optax.apply_updates(x, ux)
  for k in y:
    np.testing.assert_allclose(np.asarray(d[k] * x[k]), np.asarray(y[k]), rtol=1e-9)


def test_zero_gradient_gives_zero_update():
  tx = scale_by_sania()
  g = {"w": jnp.zeros(3)}
  u, _ = tx.update(g, tx.init(g), value=1.0)
  np.testing.assert_array_equal(np.asarray(u["w"]), 0.0)


def test_loss_below_target_gives_no_step():
  tx = scale_by_sania(f_star=1.0)
  g = {"w": jnp.ones(3)}
  u, _ = tx.update(g, tx.init(g), value=0.5)
  np.testing.assert_array_equal(np.asarray(u["w"]), 0.0)


def test_missing_value_names_the_keyword():
  opt = sania()
  g = {"w": jnp.ones(3)}
  with pytest.raises(TypeError, match="value="):
    opt.update(g, opt.init(g), g)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"preconditioner": "hutchinson"}, "preconditioner"), ({"eps": 0.0}, "eps"), ({"b2": 1.0}, "b2")],
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    scale_by_sania(**kwargs)
