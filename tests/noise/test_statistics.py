"""Statistical tests of the noise family: fixed seeds, confidence stated per test, small dims, lax.scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx.noise as gn
from gradtx._src.core.rng import _bits_to_normal, hash_bits, normal
from gradtx._src.optimizers.noise import sghmc, sgld

N = 20000  # noise elements per check: a variance estimate has relative sd sqrt(2/N) = 1%


@pytest.mark.parametrize("rng", ["fast", "threefry"])
def test_annealed_noise_variance_follows_the_schedule(rng):
  eta, gamma = 0.3, 0.55
  tx = gn.add_annealed_noise(eta, gamma, key=0, rng=rng)
  zeros = {"a": jnp.zeros((N // 4, 3)), "b": jnp.zeros(N // 4)}

  def body(s, _):
    u, s = tx.update(zeros, s)
    x = jnp.concatenate([u["a"].ravel(), u["b"]])
    return s, (jnp.mean(x), jnp.var(x))

  _, (means, variances) = jax.lax.scan(body, tx.init(zeros), None, length=8)
  expected = eta / (1.0 + np.arange(8)) ** gamma
  # variance: relative sd 1%, tolerance 6% (6 sd); mean: sd sqrt(var/N), tolerance 6 sd.
  # Each of the 16 checks fails with probability < 1e-8 for a correct generator.
  np.testing.assert_allclose(variances, expected, rtol=0.06)
  assert np.all(np.abs(means) < 6 * np.sqrt(expected / N))


def test_same_key_same_noise_different_keys_independent():
  zeros = {"a": jnp.zeros(N), "b": jnp.zeros(N)}
  run = lambda k: gn.add_annealed_noise(1.0, key=k).update(zeros, gn.add_annealed_noise(1.0, key=k).init(zeros))
  (u1, s1), (u1b, _), (u2, _) = run(1), run(1), run(2)
  np.testing.assert_array_equal(u1["a"], u1b["a"])
  tx = gn.add_annealed_noise(1.0, key=1)
  u1_next, _ = tx.update(zeros, s1)
  # Correlations of independent standard normals have sd 1/sqrt(N); |r| < 5/sqrt(N) holds with
  # probability 1 - 6e-7 each: across keys, across leaves, across steps.
  bound = 5 / np.sqrt(N)
  for x, y in [(u1["a"], u2["a"]), (u1["a"], u1["b"]), (u1["a"], u1_next["a"]), (u1["b"], u2["b"])]:
    assert abs(np.corrcoef(x, y)[0, 1]) < bound
  # Same bits under jit; the float32 transform may differ by a few 1e-6 (FMA contraction; the
  # rational cancels near z = 0, so the difference is absolute, not relative).
  jitted, _ = jax.jit(lambda z, s: tx.update(z, s))(zeros, tx.init(zeros))
  np.testing.assert_allclose(jitted["a"], u1["a"], rtol=1e-5, atol=1e-5)


def test_fast_generator_is_standard_normal():
  z = np.asarray(normal(jax.random.PRNGKey(0), (200_000,), jnp.float32))
  n = z.size
  # mean sd 1/sqrt(n), variance sd sqrt(2/n), kurtosis sd sqrt(24/n): 6 sd tolerances.
  assert abs(z.mean()) < 6 / np.sqrt(n)
  assert abs(z.var() - 1) < 6 * np.sqrt(2 / n)
  assert abs(np.mean(z**4) / z.var() ** 2 - 3) < 6 * np.sqrt(24 / n)
  # Tail and central probabilities against the normal CDF: binomial sd, 6 sd tolerances.
  for threshold, p in [(1.0, 0.6826894921), (2.0, 0.9544997361), (3.0, 0.9973002039)]:
    frac = np.mean(np.abs(z) < threshold)
    assert abs(frac - p) < 6 * np.sqrt(p * (1 - p) / n)
  # The extreme bit patterns map to finite values; the top bit is the sign, exactly.
  words = jnp.asarray([0, 1, 2**31 - 1, 2**31, 2**32 - 1], jnp.uint32)
  ends = np.asarray(_bits_to_normal(words))
  flipped = np.asarray(_bits_to_normal(words ^ jnp.uint32(2**31)))
  assert np.all(np.isfinite(ends)) and np.all(np.abs(ends) < 6.4) and np.array_equal(ends, -flipped)
  # bits: every output bit is set half of the time (sd 0.5/sqrt(n), 6 sd tolerance).
  bits = np.asarray(hash_bits(jnp.asarray([1, 2], jnp.uint32), n))
  ones = np.array([np.mean((bits >> b) & 1) for b in range(32)])
  assert np.all(np.abs(ones - 0.5) < 6 * 0.5 / np.sqrt(n))


def _blr():
  """Bayesian linear regression y = X theta + N(0, 1), prior N(0, I): U = ||y-X th||^2/2 + ||th||^2/2."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((10, 2))
  y = x @ np.array([1.0, -2.0]) + rng.standard_normal(10)
  precision = x.T @ x + np.eye(2)
  cov = np.linalg.inv(precision)
  mean = cov @ x.T @ y
  grad = lambda th: {"th": jnp.asarray(precision) @ th["th"] - jnp.asarray(x.T @ y)}
  return grad, mean, cov, float(np.linalg.eigvalsh(precision).max())


def _final_samples(tx, grad, chains, steps):
  theta0 = {"th": jnp.zeros(2)}
  state0 = tx.init(theta0)
  chain_keys = jax.random.split(jax.random.PRNGKey(42), chains)
  states = jax.vmap(lambda k: jax.tree.map(lambda x: x, (state0[0]._replace(key=jax.random.key_data(k)),)))(
      chain_keys)
  thetas = jax.tree.map(lambda x: jnp.broadcast_to(x, (chains,) + x.shape), theta0)

  def one(th, s):
    u, s = tx.update(grad(th), s, th)
    return jax.tree.map(lambda a, b: a + b, th, u), s

  def body(carry, _):
    return jax.vmap(one)(*carry), None

  (thetas, _), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps))((thetas, states))
  return np.asarray(thetas["th"])


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_sgld_recovers_the_gaussian_posterior(temperature):
  grad, mean, cov, lam_max = _blr()
  lr = 0.05 / lam_max  # discretisation bias of the covariance: lr * lam / 4 <= 1.25%
  samples = _final_samples(sgld(lr, key=0, temperature=temperature), grad, chains=4000, steps=1500)
  target = temperature * cov
  # 4000 independent chains (burn-in 1500 steps shrinks the start by e^-12): the mean is within
  # 0.1 posterior sd (6 sd of the estimate) and the covariance within 12% in spectral norm
  # (about 5 sd of the estimate plus the 1.25% bias).
  sd = np.sqrt(np.diag(target))
  assert np.all(np.abs(samples.mean(0) - mean) < 0.1 * sd)
  emp = np.cov(samples.T)
  assert np.linalg.norm(emp - target, 2) < 0.12 * np.linalg.norm(target, 2)


def test_sghmc_recovers_the_gaussian_posterior():
  grad, mean, cov, lam_max = _blr()
  tx = sghmc(0.01 / lam_max, friction=0.2, key=0)
  samples = _final_samples(tx, grad, chains=4000, steps=3000)
  sd = np.sqrt(np.diag(cov))
  # Same tolerances as the SGLD test (the friction-0.2 chain forgets its start within ~1000 steps).
  assert np.all(np.abs(samples.mean(0) - mean) < 0.1 * sd)
  assert np.linalg.norm(np.cov(samples.T) - cov, 2) < 0.12 * np.linalg.norm(cov, 2)
