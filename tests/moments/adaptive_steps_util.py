"""Shared test problems and a side-by-side runner for the adaptive-step optimizer tests."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

RTOL = 1e-10  # float64 on both sides: only rounding differs
ATOL = 1e-13  # for coordinates that pass through zero


def _data(seed, n, d_in, d_out):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d_in)), rng.normal(size=(n, d_out))


def least_squares():
  """A 2-D and a 1-D leaf: mean squared error of a linear map (min value > 0)."""
  x, y = _data(0, 8, 5, 3)
  rng = np.random.default_rng(1)
  params = {"w": jnp.asarray(rng.normal(size=(5, 3))), "b": jnp.asarray(rng.normal(size=3))}

  def loss(p):
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

  return params, loss


def tanh_regression():
  """A wide 2-D leaf and a 1-D leaf through tanh, with a quartic penalty (min value 0)."""
  x, _ = _data(2, 6, 3, 6)
  rng = np.random.default_rng(3)
  target = np.tanh(x @ rng.normal(size=(3, 6)) * 0.5)
  params = {"w": jnp.asarray(rng.normal(size=(3, 6))), "b": jnp.asarray(0.3 * rng.normal(size=6))}

  def loss(p):
    return jnp.mean((jnp.tanh(x @ p["w"] + p["b"]) - target) ** 2) + 0.01 * jnp.sum(p["b"] ** 4)

  return params, loss


PROBLEMS = {"least_squares": least_squares, "tanh_regression": tanh_regression}


def to_np(tree):
  return {k: np.asarray(v, dtype=np.float64) for k, v in tree.items()}


def run_side_by_side(opt, ref_update, problem, steps=60, predict=None, ref_predict=None):
  """Run ``opt`` and a NumPy reference on the same gradients; compare params at every step.

  ``ref_update(grads, params, value) -> updates`` (NumPy dicts). With ``predict`` (gradtx) and
  ``ref_predict`` (reference) the gradient is taken at the predicted params, compared too.
  Returns the final params and state.
  """
  params, loss = problem()
  assert params["w"].dtype == jnp.float64, "tests need jax_enable_x64 (tests/conftest.py sets it)"
  state = opt.init(params)
  ref_params = to_np(params)
  vg = jax.jit(jax.value_and_grad(loss))
  upd = jax.jit(lambda g, s, p, v: opt.update(g, s, p, value=v))
  got, want = [], []
  for _ in range(steps):
    at = params
    if predict is not None:
      at = predict(params, state)
      got.append(to_np(at))
      want.append(ref_predict(ref_params))
    value, grads = vg(at)
    updates, state = upd(grads, state, params, value)
    params = optax.apply_updates(params, updates)
    ref_u = ref_update(to_np(grads), ref_params, float(value))
    ref_params = {k: ref_params[k] + ref_u[k] for k in ref_params}
    got.append(to_np(params))
    want.append(ref_params)
  stack = lambda trees: {k: np.stack([t[k] for t in trees]) for k in trees[0]}  # noqa: E731
  chex.assert_trees_all_close(stack(got), stack(want), rtol=RTOL, atol=ATOL)
  return params, state
