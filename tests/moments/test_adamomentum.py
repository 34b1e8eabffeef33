"""AdaMomentum (twofold-EMA Adam): reference, invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_adamomentum import scale_by_adamomentum
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.optimizers.adaptive_steps import adamomentum
from tests.moments.adaptive_steps_util import PROBLEMS, run_side_by_side
from tests.reference.adamomentum_ref import AdaMomentum


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 1e-3},
        {"learning_rate": 3e-3, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.05},
    ],
)
def test_matches_reference(problem, kwargs):
  params, _ = PROBLEMS[problem]()
  ref = AdaMomentum(
      params, kwargs["learning_rate"], kwargs.get("b1", 0.9), kwargs.get("b2", 0.999),
      kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0.0),
  )
  run_side_by_side(adamomentum(**kwargs), lambda g, p, v: ref.update(g, p), PROBLEMS[problem], steps=60)


def test_first_step_is_about_ten_adam_steps():
  # algorithms.md 1.15: u_1 = -lr g / sqrt((1-b1)^2 g^2 + eps/(1-b2)) = -9.995 lr for g = 1.
  tx = optax.chain(scale_by_adamomentum(), scale_by_learning_rate(1.0))
  g = {"x": jnp.ones(2)}
  u, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(np.asarray(u["x"]), -1.0 / np.sqrt(0.01 + 1e-5), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(u["x"]), -9.995, rtol=1e-4)


def test_constant_gradient_tends_to_sign_step():
  tx = scale_by_adamomentum()
  g = {"x": jnp.array([2.0, -0.5])}
  state = tx.init(g)
  step = jax.jit(tx.update)
  for _ in range(3000):
    u, state = step(g, state)
  np.testing.assert_allclose(np.asarray(u["x"]), [1.0, -1.0], rtol=1e-3)


def test_mask_skips_decay():
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  opt = adamomentum(0.1, weight_decay=0.5, mask={"w": True, "b": False})
  zeros = jax.tree.map(jnp.zeros_like, params)
  u, _ = opt.update(zeros, opt.init(params), params)
  np.testing.assert_allclose(np.asarray(u["w"]), -0.05)
  np.testing.assert_allclose(np.asarray(u["b"]), 0.0)


def test_bf16_in_bf16_out():
  g = {"x": jnp.ones(3, jnp.bfloat16)}
  tx = scale_by_adamomentum()
  u, s = tx.update(g, tx.init(g))
  assert u["x"].dtype == jnp.bfloat16 and s.nu["x"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"b1": 1.0}, "b1"), ({"b2": -0.1}, "b2"), ({"eps": -1.0}, "eps")]
)
def test_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    scale_by_adamomentum(**kwargs)
  with pytest.raises(ValueError, match="weight_decay"):
    adamomentum(1e-3, weight_decay=-1.0)
