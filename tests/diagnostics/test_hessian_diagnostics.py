"""Hessian diagnostics against the dense Hessian (numpy eigh) of small problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gradtx import diagnostics as dg


def _mlp():
  rng = np.random.default_rng(0)
  params = {"w1": rng.standard_normal((3, 4)) * 0.8, "b1": rng.standard_normal(4) * 0.1,
            "w2": rng.standard_normal((4, 2)) * 0.8}
  x = rng.standard_normal((8, 3))
  y = rng.standard_normal((8, 2))

  def loss(p):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return 0.5 * jnp.mean(jnp.sum((h @ p["w2"] - y) ** 2, axis=-1))

  params = jax.tree.map(jnp.asarray, params)
  flat, unravel = ravel_pytree(params)
  H = np.asarray(jax.hessian(lambda v: loss(unravel(v)))(flat))
  return loss, params, H


LOSS, PARAMS, H = _mlp()
EIGS = np.linalg.eigvalsh(H)  # ascending; the MLP Hessian is indefinite
N = H.shape[0]


def test_lanczos_top_k_matches_eigh():
  vals, vecs = jax.jit(lambda p: dg.top_hessian_eigenvalues(LOSS, p, jax.random.PRNGKey(0), k=3))(PARAMS)
  # Full Lanczos (m = n = 24) with reorthogonalization recovers the spectrum to rounding.
  np.testing.assert_allclose(np.asarray(vals), EIGS[::-1][:3], rtol=1e-8, atol=1e-10)
  flat = np.stack([np.asarray(ravel_pytree(jax.tree.map(lambda v, i=i: v[i], vecs))[0]) for i in range(3)])
  np.testing.assert_allclose(flat @ H @ flat.T, np.diag(np.asarray(vals)), atol=1e-8)


def test_full_lanczos_recovers_exact_spectrum():
  from gradtx._src.diagnostics.lanczos import flat_hvp, tridiagonal_eigh

  mv, x, _ = flat_hvp(LOSS, PARAMS)
  a, b, V = dg.lanczos(mv, jax.random.normal(jax.random.PRNGKey(1), (N,), x.dtype), N, jax.random.PRNGKey(2))
  theta, _ = tridiagonal_eigh(a, b)
  np.testing.assert_allclose(np.asarray(theta), EIGS, atol=1e-9)
  np.testing.assert_allclose(np.asarray(V @ V.T), np.eye(N), atol=1e-10)


def test_lanczos_breakdown_restarts_and_stays_exact():
  # diag with repeated eigenvalues: the Krylov space from a generic vector has dimension 3 < 6.
  d = jnp.asarray([2.0, 2.0, -1.0, -1.0, 5.0, 5.0])
  f = lambda p: 0.5 * jnp.sum(d * p**2)
  vals, _ = dg.top_hessian_eigenvalues(f, jnp.ones(6), jax.random.PRNGKey(0), k=6)
  np.testing.assert_allclose(np.asarray(vals), [5, 5, 2, 2, -1, -1], atol=1e-10)


def test_power_iteration_returns_largest_magnitude_then_deflates():
  d = jnp.asarray([3.0, -5.0, 1.0, 0.5])
  f = lambda p: 0.5 * jnp.sum(d * p**2)
  vals, _ = jax.jit(lambda p: dg.top_hessian_eigenvalues(
      f, p, jax.random.PRNGKey(0), k=3, method="power", num_iterations=500, tol=1e-12))(jnp.ones(4))
  np.testing.assert_allclose(np.asarray(vals), [-5.0, 3.0, 1.0], rtol=1e-6)


def test_power_iteration_on_mlp_top_eigenvalue():
  top = EIGS[np.argmax(np.abs(EIGS))]
  vals, _ = dg.top_hessian_eigenvalues(LOSS, PARAMS, jax.random.PRNGKey(0), k=1, method="power",
                                       num_iterations=2000, tol=1e-12)
  np.testing.assert_allclose(float(vals[0]), top, rtol=1e-5)


def test_hessian_trace_and_leaf_traces():
  ht = jax.jit(lambda p: dg.hessian_trace(LOSS, p, jax.random.PRNGKey(0), 1000))(PARAMS)
  sd_one = np.sqrt(2 * (np.sum(H**2) - np.sum(np.diag(H) ** 2)))
  assert abs(float(ht.trace) - np.trace(H)) < 5 * sd_one / np.sqrt(1000)  # fixed seed, 5 sigma
  leaves = jax.tree.leaves(ht.leaf_traces)
  np.testing.assert_allclose(sum(float(x) for x in leaves), float(ht.trace), rtol=1e-12)
  # Per-leaf exact block traces (flat order: b1, w1, w2) within 5 of their standard errors.
  sizes = [4, 12, 8]
  starts = np.cumsum([0] + sizes)
  for i, (leaf, se) in enumerate(zip(leaves, jax.tree.leaves(ht.leaf_stderr))):
    exact = np.trace(H[starts[i]:starts[i + 1], starts[i]:starts[i + 1]])
    assert abs(float(leaf) - exact) < 5 * float(se) + 1e-12
    np.testing.assert_allclose(float(jax.tree.leaves(ht.leaf_mean_traces)[i]), float(leaf) / sizes[i], rtol=1e-12)


def test_spectral_density_integrates_to_one_and_matches_moments():
  nv = 200
  sd = jax.jit(lambda p: dg.hessian_spectral_density(LOSS, p, jax.random.PRNGKey(0), N, nv, sigma_squared=1e-4))(PARAMS)
  np.testing.assert_allclose(float(jnp.trapezoid(sd.density, sd.grid)), 1.0, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(sd.weights.sum(axis=1)), np.ones(nv), rtol=1e-10)
  nodes, weights = np.asarray(sd.nodes), np.asarray(sd.weights)
  for p in (1, 2):
    per_probe = np.sum(weights * nodes**p, axis=1)  # = v^T H^p v for unit v (exact, m = n)
    exact = np.mean(EIGS**p)  # E over normalised Gaussian v
    se = per_probe.std() / np.sqrt(nv)
    assert abs(per_probe.mean() - exact) < 5 * se, (p, per_probe.mean(), exact, se)
  # The broadened density's mean equals the quadrature mean (Gaussians are symmetric).
  grid_mean = float(jnp.trapezoid(sd.grid * sd.density, sd.grid))
  np.testing.assert_allclose(grid_mean, np.mean(np.sum(weights * nodes, axis=1)), rtol=1e-3, atol=1e-4)


def test_bad_arguments():
  with pytest.raises(ValueError, match="method"):
    dg.top_hessian_eigenvalues(LOSS, PARAMS, jax.random.PRNGKey(0), method="arnoldi")
  with pytest.raises(ValueError, match="k must be at most"):
    dg.top_hessian_eigenvalues(LOSS, PARAMS, jax.random.PRNGKey(0), k=25)
  with pytest.raises(ValueError, match="num_probes"):
    dg.hessian_spectral_density(LOSS, PARAMS, jax.random.PRNGKey(0), 10, 0)
