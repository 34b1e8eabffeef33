"""Newton-Schulz and the exact polar factor: singular-value band, exactness, edge cases."""

import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.geometry.orthogonalize import orthogonalize_newton_schulz, orthogonalize_polar

# The band the default coefficients promise in float64 for sigma_i / ||X||_F >= 5.2e-3
# (shared/reference/algorithms.md 6.5), widened by 1e-4 for rounding.
LOW, HIGH = 0.6818 - 1e-4, 1.1344 + 1e-4


def _with_singular_values(s, rows, cols, seed=0):
  rng = np.random.default_rng(seed)
  u, _ = np.linalg.qr(rng.standard_normal((rows, rows)))
  v, _ = np.linalg.qr(rng.standard_normal((cols, cols)))
  k = len(s)
  return u[:, :k] @ np.diag(s) @ v[:, :k].T


def _sv(x):
  return np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)


@pytest.mark.parametrize("shape", [(64, 16), (16, 64)])
def test_well_conditioned_lands_in_band(shape):
  x = np.random.default_rng(0).standard_normal(shape)
  s = _sv(orthogonalize_newton_schulz(jnp.asarray(x)))
  assert LOW <= s.min() and s.max() <= HIGH


def test_ill_conditioned_and_rank_deficient():
  # sigma spread over 3 decades, and a rank-3 matrix with 3 exact zeros.
  ill = _with_singular_values(np.geomspace(1.0, 1e-3, 6), 12, 6)
  u, s_in, vt = np.linalg.svd(ill, full_matrices=False)
  s_in = s_in / np.linalg.norm(ill)
  # NS keeps singular vectors: read each input direction's output singular value.
  s_out = np.diag(u.T @ np.asarray(orthogonalize_newton_schulz(jnp.asarray(ill))) @ vt.T)
  assert np.all(s_out <= 1.2024 + 1e-4) and np.all(s_out > 0)
  in_band = s_in >= 5.2e-3
  assert np.all((s_out[in_band] >= LOW) & (s_out[in_band] <= HIGH))
  low_rank = _with_singular_values(np.array([3.0, 1.0, 0.5]), 8, 6)
  s_out = _sv(orthogonalize_newton_schulz(jnp.asarray(low_rank)))
  assert np.all((s_out[:3] >= LOW) & (s_out[:3] <= HIGH))
  np.testing.assert_allclose(s_out[3:], 0.0, atol=1e-10)  # zero singular values stay zero


def test_zero_in_zero_out_and_bfloat16_finite():
  z = orthogonalize_newton_schulz(jnp.zeros((5, 3)))
  assert np.all(np.asarray(z) == 0)
  for method in ("svd", "eigh"):
    assert np.all(np.asarray(orthogonalize_polar(jnp.zeros((5, 3)), method)) == 0)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((32, 8)), jnp.bfloat16)
  for scale in (1.0, 1e-20, 1e20):
    o = orthogonalize_newton_schulz(x * jnp.asarray(scale, jnp.bfloat16))
    assert o.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(o)))


def test_structure_transpose_scale_batch():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((7, 4)))
  o = np.asarray(orthogonalize_newton_schulz(x))
  np.testing.assert_allclose(np.asarray(orthogonalize_newton_schulz(x.T)), o.T, rtol=1e-12, atol=1e-14)
  # Scale invariance is exact with eps=0 (eps=1e-7 in the normalisation breaks it at ~1e-8).
  np.testing.assert_allclose(np.asarray(orthogonalize_newton_schulz(3.7 * x, eps=0.0)),
                             np.asarray(orthogonalize_newton_schulz(x, eps=0.0)), rtol=1e-10, atol=1e-13)
  # Singular vectors kept: U^T NS(X) V is diagonal.
  u, _, vt = np.linalg.svd(np.asarray(x), full_matrices=False)
  inner = u.T @ o @ vt.T
  np.testing.assert_allclose(inner - np.diag(np.diag(inner)), 0.0, atol=1e-10)
  batch = jnp.asarray(rng.standard_normal((2, 3, 7, 4)))
  out = np.asarray(orthogonalize_newton_schulz(batch))
  for i in range(2):
    for j in range(3):
      np.testing.assert_allclose(out[i, j], np.asarray(orthogonalize_newton_schulz(batch[i, j])), rtol=1e-12,
                                 atol=1e-14)


@pytest.mark.parametrize("method", ["svd", "eigh"])
@pytest.mark.parametrize("shape", [(9, 4), (4, 9), (2, 6, 5)])
def test_polar_matches_svd(method, shape):
  x = np.random.default_rng(3).standard_normal(shape)
  u, _, vt = np.linalg.svd(x, full_matrices=False)
  o = np.asarray(orthogonalize_polar(jnp.asarray(x), method))
  np.testing.assert_allclose(o, u @ vt, rtol=0, atol=1e-10)  # float64: exact to 1e-10
  np.testing.assert_allclose(_sv(o[0] if o.ndim == 3 else o), 1.0, atol=1e-10)


def test_large_ns_with_converging_coefficients_is_the_polar_factor():
  # The classical quintic (15/8, -10/8, 3/8) converges to U V^T; 40 steps reach float64 accuracy
  # for this well-conditioned matrix.
  x = jnp.asarray(np.random.default_rng(4).standard_normal((10, 6)))
  ns = orthogonalize_newton_schulz(x, 40, (15 / 8, -10 / 8, 3 / 8))
  np.testing.assert_allclose(np.asarray(ns), np.asarray(orthogonalize_polar(x)), atol=1e-9)


def test_bad_inputs():
  with pytest.raises(ValueError, match="ns_steps"):
    orthogonalize_newton_schulz(jnp.ones((3, 2)), 0)
  with pytest.raises(ValueError, match="coeffs"):
    orthogonalize_newton_schulz(jnp.ones((3, 2)), 5, (1.0, 2.0))
  with pytest.raises(ValueError, match="2 axes"):
    orthogonalize_newton_schulz(jnp.ones(3))
  with pytest.raises(ValueError, match="method"):
    orthogonalize_polar(jnp.ones((3, 2)), "qr")
