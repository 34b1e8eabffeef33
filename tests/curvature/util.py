"""Shared test problems for the curvature tests: flat-vector losses with known Hessians."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gradtx._src.core import keys
from gradtx._src.curvature.probes import probe_key, probe_like

TREE = {"w": np.zeros((3, 4)), "b": np.zeros(4)}  # a 2-D and a 1-D leaf; flat order: b, w
N = 16


def tree_of(x):
  """Flat float64 vector -> params tree (order of ravel_pytree: b then w)."""
  _, unravel = ravel_pytree(jax.tree.map(jnp.asarray, TREE))
  return unravel(jnp.asarray(x))


def flat(tree):
  return np.asarray(ravel_pytree(tree)[0])


class Separable:
  """f = sum(a x^2 / 2 + c x^4 / 4 - t x): diagonal Hessian a + 3 c x^2 > 0."""

  name = "separable"

  def __init__(self, seed=0):
    rng = np.random.default_rng(seed)
    self.a = rng.uniform(0.5, 3.0, N)
    self.c = rng.uniform(0.0, 0.5, N)
    self.t = rng.standard_normal(N)
    self.x0 = rng.standard_normal(N)

  def loss(self, params):
    x = ravel_pytree(params)[0]
    return jnp.sum(self.a * x**2 / 2 + self.c * x**4 / 4 - self.t * x)

  def grad_np(self, x):
    return self.a * x + self.c * x**3 - self.t

  def hess_np(self, x):
    return np.diag(self.a + 3 * self.c * x**2)


class DenseQuadratic:
  """f = x^T A x / 2 - t^T x with a dense SPD A: Hutchinson is noisy here, probes matter."""

  name = "dense"

  def __init__(self, seed=1):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((N, N)) / np.sqrt(N)
    self.A = q @ q.T + np.diag(rng.uniform(0.5, 2.0, N))
    self.t = rng.standard_normal(N)
    self.x0 = rng.standard_normal(N)

  def loss(self, params):
    x = ravel_pytree(params)[0]
    return 0.5 * x @ self.A @ x - self.t @ x

  def grad_np(self, x):
    return self.A @ x - self.t

  def hess_np(self, x):
    return self.A


PROBLEMS = (Separable(), DenseQuadratic())


def probes_for_steps(seed, steps, num_probes, probe="rademacher"):
  """The probes a transformation with ``key=seed`` draws: per step, split, then fold_in(subkey, j)."""

  @jax.jit
  def draw(key):
    def one(key, _):
      key, use = keys.split(key)
      zs = jnp.stack([ravel_pytree(probe_like(probe_key(use, j), tree_of(jnp.zeros(N)), probe))[0]
                      for j in range(num_probes)])
      return key, zs

    return jax.lax.scan(one, key, None, length=steps)[1]

  zs = np.asarray(draw(keys.as_key(seed)))
  return [list(zs[t]) for t in range(steps)]


def logits_problem():
  """Softmax regression on 6 examples: (params, mean cross-entropy loss, logits_fn), for Sophia-G."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((6, 3)))
  y = jnp.asarray(rng.integers(0, 4, 6))
  params = {"w": jnp.asarray(rng.standard_normal((3, 4)) * 0.3), "b": jnp.zeros(4)}

  def logits_fn(p):
    return x @ p["w"] + p["b"]

  def loss(p):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits_fn(p)), y[:, None], axis=-1))

  return params, loss, logits_fn
