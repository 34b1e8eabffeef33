"""Float64 problems for the Kronecker-factored preconditioners (Shampoo, SOAP, PSGD-Kron)."""

import jax.numpy as jnp
import numpy as np

from tests.reference.problems import least_squares, softmax_regression


def square_least_squares():
  """0.5 ||X W + b - Y||^2 / n with a square W (4, 4): the first statistics are full rank."""
  rng = np.random.default_rng(3)
  x = rng.standard_normal((20, 4))
  y = rng.standard_normal((20, 4))

  def loss(p):
    return 0.5 * jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, axis=1))

  init = {"w": rng.standard_normal((4, 4)) * 0.5, "b": rng.standard_normal(4) * 0.5}
  return loss, init


def tensor_least_squares():
  """A 3-D leaf T (2, 3, 4) used as the (6, 4) matrix of a least-squares fit, plus a bias (4,)."""
  rng = np.random.default_rng(4)
  x = rng.standard_normal((30, 6))
  y = rng.standard_normal((30, 4))

  def loss(p):
    return 0.5 * jnp.mean(jnp.sum((x @ p["t"].reshape(6, 4) + p["b"] - y) ** 2, axis=1))

  init = {"t": rng.standard_normal((2, 3, 4)) * 0.5, "b": rng.standard_normal(4) * 0.5}
  return loss, init


def kronecker_quadratic(m=6, n=5, cond=100.0, seed=5):
  """0.5 tr((W - W*)^T A (W - W*) B): the Hessian is the Kronecker product B (x) A."""
  rng = np.random.default_rng(seed)

  def spd(k, cond):
    q, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return (q * np.geomspace(1.0, cond, k)) @ q.T

  a, b = spd(m, cond), spd(n, cond)
  target = rng.standard_normal((m, n))

  def loss(p):
    e = p["w"] - target
    return 0.5 * jnp.trace(e.T @ a @ e @ b)

  return loss, {"w": np.zeros((m, n))}


PROBLEMS = {
    "least_squares": least_squares,
    "softmax_regression": softmax_regression,
    "square_least_squares": square_least_squares,
    "tensor_least_squares": tensor_least_squares,
}


def compare_leafwise(tx, reference, loss, init, steps=50, rtol=1e-10):
  """Like ``tests.reference.compare.compare_trajectories``, but the tolerance of every element is
  ``rtol * (|ref| + max |ref leaf|)``: relative to the leaf's scale, so that an element passing
  through zero (here after inverse roots and rotations) does not demand ``1e-10`` of itself."""
  import jax
  import optax

  grad = jax.jit(jax.grad(loss))
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(grad(p), s, p)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    ref_params = reference.step(ref_params, {k: np.asarray(v) for k, v in grad(ref_params).items()})
    params, state = step(params, state)
    for k, want in ref_params.items():
      got = np.asarray(params[k])
      err = np.abs(got - want) / (np.abs(want) + np.max(np.abs(want)))
      if not np.all(err <= rtol):
        raise AssertionError(f"step {t + 1}, leaf {k!r}: relative error {err.max():.3g} > {rtol:g}")
  return params


def assert_finite_on_extreme_gradients(tx, scale):
  """Four jitted steps on rank-one gradients of size ``scale`` (0, tiny, huge) keep every value finite."""
  import jax

  rng = np.random.default_rng(3)
  u_, v_ = rng.standard_normal((6, 1)), rng.standard_normal((1, 4))
  params = {"w": jnp.zeros((6, 4), jnp.float32), "b": jnp.zeros((4,), jnp.float32)}
  state = tx.init(params)
  step = jax.jit(tx.update)
  for k in range(4):
    g = {"w": jnp.asarray(scale * (k + 1) * u_ @ v_, jnp.float32), "b": jnp.full((4,), scale, jnp.float32)}
    u, state = step(g, state, params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((u, state)))


def float32_losses(tx, steps=1000):
  """Initial loss and the loss after every step of ``tx`` on float32 least squares (one scan)."""
  import jax
  import optax

  loss, init = least_squares()
  p0 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), init)

  def body(c, _):
    p, s = c
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, u), s), loss(p)

  _, losses = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))(p0)
  return float(loss(p0)), np.asarray(losses)
