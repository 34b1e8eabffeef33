"""Float64 problems for reference tests: each has a 2-D and a 1-D leaf."""

import jax
import jax.numpy as jnp
import numpy as np


def least_squares():
  """0.5 ||X W + b - Y||^2 / n: W (5, 3), b (3,)."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((20, 5))
  y = rng.standard_normal((20, 3))

  def loss(p):
    return 0.5 * jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, axis=1))

  init = {"w": rng.standard_normal((5, 3)) * 0.5, "b": rng.standard_normal(3) * 0.5}
  return loss, init


def softmax_regression():
  """Cross-entropy of a linear classifier: W (4, 3), b (3,); non-quadratic curvature."""
  rng = np.random.default_rng(2)
  x = rng.standard_normal((30, 4))
  labels = rng.integers(0, 3, 30)

  def loss(p):
    logits = x @ p["w"] + p["b"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(30), labels]) + 0.01 * jnp.sum(p["w"] ** 2)

  init = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
  return loss, init


PROBLEMS = {"least_squares": least_squares, "softmax_regression": softmax_regression}
