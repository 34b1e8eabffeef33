"""The fast generator of gradtx._src.core.rng: accuracy of its inverse CDF, its distribution, its counters.

Statistical checks fix their seeds and state their confidence; the accuracy checks are exact
comparisons against scipy's float64 quantile of the same uniform.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from gradtx._src.core import rng

N = 1 << 20  # samples per distribution check


def _exact(words):
  """The float64 normal that word ``w`` stands for: sign from the top bit, Phi^-1(1 - q) from the rest."""
  w = np.asarray(words, np.uint64)
  q = ((w & 0x7FFFFFFF).astype(np.float64) + 0.5) * 2.0**-32
  return np.where(w >> 31, 1.0, -1.0) * special.ndtri(q)


def test_transform_is_within_5e6_of_the_exact_quantile():
  # Every exponent of q (2^-33 .. 2^-1) and both signs: the hashed words plus the extreme ones.
  words = np.concatenate([
      np.asarray(rng.hash_bits(jnp.asarray([5, 6], jnp.uint32), N)),
      np.asarray([0, 1, 2, 2**24, 2**30, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1], np.uint32),
      (np.uint32(1) << np.arange(31, dtype=np.uint32)),
  ])
  z = np.asarray(jax.jit(rng._bits_to_normal)(jnp.asarray(words)), np.float64)
  # Deterministic: 1.2e-6 from the rational fit, the rest float32 rounding (largest in the far tail).
  np.testing.assert_allclose(z, _exact(words), rtol=0, atol=5e-6)
  assert np.abs(z).max() < 6.35  # q >= 2^-33: the tails reach 6.34 sigma


def test_sign_bit_negates_exactly():
  words = rng.hash_bits(jnp.asarray([1, 9], jnp.uint32), 4096)
  z = rng._bits_to_normal(words)
  np.testing.assert_array_equal(np.asarray(rng._bits_to_normal(words ^ jnp.uint32(2**31))), -np.asarray(z))


def test_samples_are_standard_normal():
  z = np.asarray(rng.normal(jax.random.PRNGKey(123), (N,), jnp.float32), np.float64)
  n = z.size
  # Moments against their sampling sd: mean 1/sqrt(n), variance sqrt(2/n), skewness sqrt(6/n),
  # excess kurtosis sqrt(24/n); 5 sd each (each fails with probability < 6e-7 for a true normal).
  assert abs(z.mean()) < 5 / np.sqrt(n)
  assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
  assert abs(stats.skew(z)) < 5 * np.sqrt(6 / n)
  assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
  # Kolmogorov-Smirnov against N(0, 1): rejected at level 1e-4 only (a correct generator fails
  # with probability 1e-4; the transform's 5e-6 quantile error moves D by < 2e-6, vs 0.002 here).
  assert stats.kstest(z, "norm").pvalue > 1e-4
  # Tails: counts beyond 3 and 4 sigma are Poisson-like; 5 sd tolerances.
  for k in (3.0, 4.0):
    expected = n * 2 * special.ndtr(-k)
    assert abs(np.sum(np.abs(z) > k) - expected) < 5 * np.sqrt(expected)


def test_bits_are_balanced_and_uncorrelated():
  bits = np.asarray(rng.hash_bits(jnp.asarray([3, 4], jnp.uint32), N))
  ones = np.array([np.mean((bits >> b) & 1) for b in range(32)])
  assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / np.sqrt(N))  # 5 sd per bit
  # Consecutive counters, adjacent keys and adjacent blocks give uncorrelated normals: each
  # correlation has sd 1/sqrt(n); 5 sd tolerances.
  z = np.asarray(rng._bits_to_normal(jnp.asarray(bits)), np.float64)
  others = [
      z[1:],
      np.asarray(rng.normal(jnp.asarray([3, 5], jnp.uint32), (N,), jnp.float32)),
      np.asarray(rng.normal(jnp.asarray([4, 4], jnp.uint32), (N,), jnp.float32)),
      np.asarray(rng.normal(jnp.asarray([3, 4], jnp.uint32), (N,), jnp.float32, block=1)),
  ]
  for other in others:
    m = min(z.size, other.size)
    assert abs(np.corrcoef(z[:m], other[:m])[0, 1]) < 5 / np.sqrt(m)


def test_tree_noise_numbers_the_elements_consecutively():
  key = jnp.asarray([7, 8], jnp.uint32)
  tree = {"a": jnp.zeros((3, 5)), "b": [jnp.zeros(4, jnp.bfloat16), jnp.zeros(())]}
  out = rng.normal_like(key, tree)
  flat = np.asarray(rng.normal(key, (20,), jnp.float32))
  np.testing.assert_array_equal(np.asarray(out["a"], np.float32).ravel(), flat[:15])
  np.testing.assert_array_equal(np.asarray(out["b"][0]), flat[15:19])
  np.testing.assert_array_equal(np.asarray(out["b"][1], np.float32), flat[19])
  assert out["a"].dtype == jnp.float64 and out["b"][0].dtype == jnp.float32  # compute dtypes
  # Offsets: the same counters give the same numbers.
  np.testing.assert_array_equal(np.asarray(rng.normal(key, (5,), jnp.float32, offset=15)), flat[15:])


def test_counters_start_a_new_block_instead_of_wrapping():
  big = 2**31
  assert rng._counters([5, big, big, 3]) == [(0, 0), (5, 0), (0, 1), (big, 1)]
  with pytest.raises(ValueError, match="2\\^32"):
    rng._counters([2**32 + 1])
  with pytest.raises(ValueError, match="2\\^32"):
    rng.hash_bits(jnp.asarray([0, 0], jnp.uint32), 10, offset=2**32 - 5)


def test_same_key_same_noise_eagerly_and_under_jit():
  key = jnp.asarray([11, 12], jnp.uint32)
  eager = np.asarray(rng.normal(key, (1000,), jnp.float32))
  np.testing.assert_array_equal(eager, np.asarray(rng.normal(key, (1000,), jnp.float32)))
  jitted = np.asarray(jax.jit(lambda k: rng.normal(k, (1000,), jnp.float32))(key))
  # Identical bits; the float32 transform may differ by a few 1e-6 (FMA contraction; absolute
  # near z = 0, where the rational cancels).
  np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
