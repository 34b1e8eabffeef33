"""Banded matrix-factorisation noise: reference, covariance, special cases, sensitivity, accounting."""

import itertools
import math

import chex
import dp_accounting
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.privacy as gp
from tests.privacy.test_reference import MASK, PROBLEMS
from tests.reference import privacy_ref

STEPS = 55
UNNORMALISED = (1.0, 0.6, -0.3, 0.2)  # an arbitrary strategy: the accounting must scale by its norm

CASES = {
    # name: (factory kwargs, reference kwargs)
    "strategy_sqrt": (
        dict(coefficients=gp.banded_sqrt_coefficients(4), banded="strategy", expected_batch_size=8.0),
        dict(lr=0.05, c=1.0, sigma=0.5, d=8.0, momentum=0.0, mask=None),
    ),
    "strategy_unnormalised_momentum_actual_mask": (
        dict(coefficients=UNNORMALISED, banded="strategy", denominator="actual"),
        dict(lr=0.03, c=0.7, sigma=1.2, d=None, momentum=0.9, mask=MASK),
    ),
    "correlation_nu": (
        dict(coefficients=gp.nu_dp_ftrl_coefficients(5, 0.1), banded="correlation", expected_batch_size=6.0),
        dict(lr=0.05, c=0.5, sigma=2.0, d=6.0, momentum=0.5, mask=MASK),
    ),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case, problem):
  # The draws z_t come from a twin dp_aggregate with the same key (sigma = C = D = 1, zero
  # gradients): the banded transformation splits its key exactly as dp_aggregate does.
  kw, hp = CASES[case]
  pe_fn, ref_pe_fn, init = PROBLEMS[problem]()
  tx = optax.chain(
      gp.dp_banded_aggregate(hp["c"], hp["sigma"], key=7, **kw), optax.sgd(hp["lr"], hp["momentum"] or None)
  )
  twin = gp.dp_aggregate(1.0, 1.0, key=7, expected_batch_size=1.0)
  ref = privacy_ref.DpBanded(
      hp["lr"], hp["c"], hp["sigma"], hp["d"], kw["coefficients"], kw["banded"], hp["momentum"], hp["mask"]
  )
  mask = None if hp["mask"] is None else jnp.asarray(hp["mask"])
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}

  @jax.jit
  def step(p, s, ts):
    pe = pe_fn(p)
    g = jax.tree.map(lambda x: x[0], pe)
    u, s = tx.update(g, s, p, per_example_grads=pe, example_mask=mask)
    z, ts = twin.update(g, ts, per_example_grads=jax.tree.map(jnp.zeros_like, pe))
    return optax.apply_updates(p, u), s, ts, z

  state, twin_state = tx.init(params), twin.init(params)
  for t in range(STEPS):
    params, state, twin_state, z = step(params, state, twin_state)
    ref_params = ref.step(ref_params, ref_pe_fn(ref_params), {k: np.asarray(v) for k, v in z.items()})
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=1e-10, atol=1e-12)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None
  assert gp.dp_steps(state) == STEPS


@pytest.mark.parametrize("banded", ["strategy", "correlation"])
def test_noise_recursion_matches_the_matrix_form(banded):
  # zero gradients: the update is zeta_t / D; reference: C^{-1} w by a dense solve / product.
  coefs = (1.3, -0.4, 0.25, 0.1, -0.05)
  sigma, clip = 0.8, 1.5
  tx = gp.dp_banded_aggregate(clip, sigma, coefficients=coefs, key=4, expected_batch_size=1.0, banded=banded)
  twin = gp.dp_aggregate(1.0, 1.0, key=4, expected_batch_size=1.0)
  like = {"w": jnp.zeros((3, 4), jnp.float64), "b": jnp.zeros(2, jnp.float64)}
  pe = jax.tree.map(lambda x: x[None], like)
  state, ts = tx.init(like), twin.init(like)
  step = jax.jit(lambda s, ts: (tx.update(like, s, per_example_grads=pe), twin.update(like, ts, per_example_grads=pe)))
  w = []
  for _ in range(40):
    (zeta, state), (z, ts) = step(state, ts)
    w.append({k: sigma * clip * np.asarray(v) for k, v in z.items()})
    expected = privacy_ref.banded_noise(coefs, w, banded)
    chex.assert_trees_all_close(zeta, expected, rtol=1e-10, atol=1e-13)
  assert len(state.history) == len(coefs) - 1  # memory: bands - 1 parameter-sized trees


@pytest.mark.parametrize("banded", ["strategy", "correlation"])
def test_noise_covariance_across_steps_matches_the_construction(banded):
  # 40,000 iid coordinates per step; Cov(zeta_s, zeta_t) = sigma^2 C^2 (C^{-1} C^{-T})_{st}.
  # Each empirical entry has sd <= sqrt(2/n) max_var = 0.0071 max_var; the tolerance
  # 0.05 max_var is 7 sd, so all 28 entries pass with confidence > 1 - 1e-10 (seed fixed).
  coefs = gp.banded_sqrt_coefficients(3, 0.05) if banded == "strategy" else gp.nu_dp_ftrl_coefficients(3, 0.05)
  sigma, clip, n_steps = 1.5, 2.0, 7
  tx = gp.dp_banded_aggregate(clip, sigma, coefficients=coefs, key=123, expected_batch_size=1.0, banded=banded)
  like = {"w": jnp.zeros((200, 200), jnp.float32)}
  pe = {"w": jnp.zeros((1, 200, 200), jnp.float32)}
  state = tx.init(like)
  step = jax.jit(lambda s: tx.update(like, s, per_example_grads=pe))
  rows = []
  for _ in range(n_steps):
    u, state = step(state)
    rows.append(np.asarray(u["w"], np.float64).reshape(-1))
  x = np.stack(rows)
  empirical = x @ x.T / x.shape[1]
  expected = privacy_ref.noise_covariance(coefs, n_steps, banded, sigma * clip)
  assert np.max(np.abs(empirical - expected)) < 0.05 * np.max(np.diag(expected))
  # the construction correlates the steps: the off-diagonal entries are far from zero
  assert np.abs(expected[1, 0]) > 0.1 * expected[0, 0]


def test_one_band_is_dp_sgd_bit_for_bit():
  pe_fn, _, init = PROBLEMS["least_squares"]()
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), init)
  pe = pe_fn(params)
  g = jax.tree.map(lambda x: x[0], pe)
  mask = jnp.asarray(MASK)
  plain = gp.dp_aggregate(0.7, 1.3, key=9, expected_batch_size=5.0)
  for banded in ("strategy", "correlation"):
    tx = gp.dp_banded_aggregate(0.7, 1.3, coefficients=(1.0,), key=9, expected_batch_size=5.0, banded=banded)
    pair = jax.jit(lambda s1, s2, tx=tx: (plain.update(g, s1, params, per_example_grads=pe, example_mask=mask),
                                          tx.update(g, s2, params, per_example_grads=pe, example_mask=mask)))
    s1, s2 = plain.init(params), tx.init(params)
    for _ in range(3):
      (u1, s1), (u2, s2) = pair(s1, s2)
      chex.assert_trees_all_equal(u1, u2)
  # the optimizer: dp_ftrl(mechanism="banded", bands=1) is dp_sgd with the same key
  a = gp.dp_sgd(0.1, 0.7, 1.3, key=2, expected_batch_size=5.0, momentum=0.9)
  b = gp.dp_ftrl(0.1, 0.7, 1.3, key=2, batch_size=5.0, momentum=0.9, mechanism="banded", bands=1)
  pair = jax.jit(lambda sa, sb: (a.update(g, sa, params, per_example_grads=pe),
                                 b.update(g, sb, params, per_example_grads=pe)))
  sa, sb = a.init(params), b.init(params)
  for _ in range(3):
    (ua, sa), (ub, sb) = pair(sa, sb)
    chex.assert_trees_all_equal(ua, ub)


def test_coefficients_are_the_papers_series():
  # (1 - x)^{-1/2} squared is 1/(1 - x): the unnormalised banded sqrt self-convolves to ones;
  # sqrt(1 - (1-nu)x) times (1 - (1-nu)x)^{-1/2} is 1: the nu-DP-FTRL taps invert the damped sqrt.
  b, nu = 9, 0.2
  c = np.asarray(gp.banded_sqrt_coefficients(b))
  c = c / c[0]
  np.testing.assert_allclose(np.convolve(c, c)[:b], np.ones(b), rtol=1e-13)
  beta = np.asarray(gp.nu_dp_ftrl_coefficients(b, nu))
  gamma = np.asarray(gp.banded_sqrt_coefficients(b, nu))
  np.testing.assert_allclose(np.convolve(beta, gamma / gamma[0])[:b], np.eye(1, b)[0], atol=1e-14)
  np.testing.assert_allclose(beta[:4], [1.0, -0.5 * 0.8, -0.125 * 0.64, -0.0625 * 0.512], rtol=1e-13)
  assert math.isclose(np.linalg.norm(gp.banded_sqrt_coefficients(b, nu)), 1.0, rel_tol=1e-14)
  assert gp.banded_sqrt_coefficients(1) == (1.0,)


def test_optimal_coefficients_lower_the_prefix_sum_error():
  n = 40
  c = np.asarray(gp.banded_sqrt_coefficients(5))
  loss, grad = gp.prefix_sum_loss(c, n)
  assert math.isclose(loss, privacy_ref.prefix_sum_error(c, n), rel_tol=1e-10)
  h = 1e-6  # central differences: truncation error O(h^2) ~ 1e-9 relative here
  fd = [(gp.prefix_sum_loss(c + h * e, n)[0] - gp.prefix_sum_loss(c - h * e, n)[0]) / (2 * h) for e in np.eye(5)]
  np.testing.assert_allclose(grad, fd, rtol=1e-6)
  opt = gp.optimal_banded_coefficients(5, n)
  assert math.isclose(np.linalg.norm(opt), 1.0, rel_tol=1e-13)
  assert privacy_ref.prefix_sum_error(opt, n) < 0.99 * privacy_ref.prefix_sum_error(c, n)  # 3% lower here
  _, g = gp.prefix_sum_loss(opt, n)
  assert np.linalg.norm(g) < 1e-4 * np.linalg.norm(grad)  # stationary (the gradient at the start is O(100))
  assert gp.optimal_banded_coefficients(1, n) == (1.0,)
  assert len(gp.optimal_banded_coefficients(8, 3)) == 3
  with pytest.raises(ValueError, match="steps"):
    gp.optimal_banded_coefficients(4, 0)


def test_sensitivity_is_the_largest_column_norm_of_the_factor():
  n = 12
  coefs = UNNORMALISED
  strategy = privacy_ref.toeplitz_lower(coefs, n)
  assert math.isclose(gp.banded_sensitivity(coefs, n), np.max(np.linalg.norm(strategy, axis=0)), rel_tol=1e-13)
  beta = gp.nu_dp_ftrl_coefficients(4, 0.1)
  dense = np.linalg.inv(privacy_ref.toeplitz_lower(beta, n))
  got = gp.banded_sensitivity(beta, n, banded="correlation")
  assert math.isclose(got, np.max(np.linalg.norm(dense, axis=0)), rel_tol=1e-12)
  # k participations >= b apart: brute force over all patterns of a 12-step run
  for k in (2, 3):
    best = max(
        np.linalg.norm(strategy[:, list(p)].sum(axis=1))
        for p in itertools.combinations(range(n), k)
        if all(j - i >= len(coefs) for i, j in zip(p, p[1:]))
    )
    got = gp.banded_sensitivity(coefs, n, participations=k, min_separation=len(coefs))
    assert math.isclose(got, best, rel_tol=1e-12)
  with pytest.raises(NotImplementedError, match="min_separation"):
    gp.banded_sensitivity(coefs, n, participations=2, min_separation=2)
  with pytest.raises(NotImplementedError, match="participations=1"):
    gp.banded_sensitivity(beta, n, banded="correlation", participations=2, min_separation=8)


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_banded_accounting_matches_a_direct_dp_accounting_computation(kind):
  sigma, q, n, delta = 1.3, 0.05, 203, 1e-5
  norm = float(np.linalg.norm(UNNORMALISED))

  def direct(event):
    acc = dp_accounting.rdp.RdpAccountant() if kind == "rdp" else dp_accounting.pld.PLDAccountant(
        value_discretization_interval=1e-4)
    acc.compose(event)
    return acc.get_epsilon(delta)

  g = dp_accounting.GaussianDpEvent(sigma / norm)
  amplified = direct(dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, g), 51))  # ceil(203/4)
  got = gp.banded_epsilon(sigma, UNNORMALISED, n, delta, sampling_rate=q, accountant=kind)
  assert math.isclose(got, amplified, rel_tol=1e-12)
  fixed = direct(dp_accounting.SelfComposedDpEvent(g, 3))
  got = gp.banded_epsilon(sigma, UNNORMALISED, n, delta, participations=3, min_separation=50, accountant=kind)
  assert math.isclose(got, fixed, rel_tol=1e-12)
  beta = gp.nu_dp_ftrl_coefficients(6, 0.05)
  sens = gp.banded_sensitivity(beta, n, banded="correlation")
  single = direct(dp_accounting.GaussianDpEvent(sigma / sens))
  got = gp.banded_epsilon(sigma, beta, n, delta, banded="correlation", accountant=kind)
  assert math.isclose(got, single, rel_tol=1e-12)


def test_one_band_accounts_as_dp_sgd_and_unsupported_cases_say_so():
  one_band = gp.banded_epsilon(1.1, (1.0,), 500, 1e-5, sampling_rate=0.01)
  assert math.isclose(one_band, gp.compute_epsilon(1.1, 0.01, 500, 1e-5), rel_tol=1e-12)
  # k Gaussians of noise sigma/|c| compose to one with sensitivity sqrt(k)|c| (RDP is linear)
  c = gp.banded_sqrt_coefficients(4)
  a = gp.banded_epsilon(2.0, c, 100, 1e-5, participations=4, min_separation=25)
  assert math.isclose(a, gp.compute_epsilon(1.0, 1.0, 1, 1e-5), rel_tol=1e-9)
  # the calibration recipe of the docstring: DP-SGD's sigma for ceil(n/b) steps, times |c|
  raw = UNNORMALISED
  sigma = np.linalg.norm(raw) * gp.calibrate_noise_multiplier(2.0, 1e-5, 0.05, math.ceil(203 / 4), tol=1e-6)
  assert abs(gp.banded_epsilon(sigma, raw, 203, 1e-5, sampling_rate=0.05) - 2.0) < 1e-3
  with pytest.raises(NotImplementedError, match="min_separation"):
    gp.banded_epsilon(1.0, c, 100, 1e-5, participations=2, min_separation=3)
  with pytest.raises(NotImplementedError, match="amplification"):
    gp.banded_epsilon(1.0, gp.nu_dp_ftrl_coefficients(4, 0.1), 100, 1e-5, sampling_rate=0.1, banded="correlation")
  with pytest.raises(NotImplementedError, match="participations=1"):
    gp.banded_epsilon(1.0, gp.nu_dp_ftrl_coefficients(4, 0.1), 100, 1e-5, participations=2, min_separation=50,
                      banded="correlation")
  with pytest.raises(ValueError, match="noise_multiplier"):
    gp.banded_epsilon(0.0, c, 100, 1e-5)
  with pytest.raises(ValueError, match="coefficients"):
    gp.banded_epsilon(1.0, (0.0, 1.0), 100, 1e-5)


@hypothesis.settings(max_examples=10, deadline=None, derandomize=True)
@hypothesis.given(log_sigma=st.floats(-0.2, 1.0), bands=st.integers(1, 6), steps=st.integers(1, 2000),
                  more=st.integers(1, 2000), factor=st.floats(1.05, 3.0))
def test_banded_epsilon_grows_with_steps_and_shrinks_with_sigma(log_sigma, bands, steps, more, factor):
  sigma, c = 10.0**log_sigma, gp.banded_sqrt_coefficients(bands)
  eps = gp.banded_epsilon(sigma, c, steps, 1e-5, sampling_rate=0.05)
  assert gp.banded_epsilon(sigma, c, steps + more, 1e-5, sampling_rate=0.05) >= eps
  assert gp.banded_epsilon(sigma * factor, c, steps, 1e-5, sampling_rate=0.05) <= eps


def test_cyclic_poisson_batches_keep_each_example_in_one_residue_class():
  n, q, b, cap = 400, 0.5, 4, 120
  seen = {}
  sizes = []
  for t, (idx, mask) in enumerate(gp.poisson_batches(n, q, cap, key=1, steps=40, partitions=b)):
    real = np.asarray(idx)[np.asarray(mask)]
    sizes.append(real.size)
    for i in real:
      assert seen.setdefault(int(i), t % b) == t % b  # participations are >= b steps apart
  # 40 batches of Binomial(~100, 0.5): mean 50, sd of the mean < 5/sqrt(40) + group-size spread; 8 units is > 4 sd
  assert abs(np.mean(sizes) - q * n / b) < 8
  with pytest.raises(ValueError, match="partitions"):
    next(gp.poisson_batches(n, q, cap, key=1, partitions=0))


def test_bad_input():
  with pytest.raises(ValueError, match="coefficients"):
    gp.dp_banded_aggregate(1.0, 1.0, coefficients=(0.0, 1.0), key=0, expected_batch_size=1)
  with pytest.raises(ValueError, match="coefficients"):
    gp.dp_banded_aggregate(1.0, 1.0, coefficients=(), key=0, expected_batch_size=1)
  with pytest.raises(ValueError, match="banded"):
    gp.dp_banded_aggregate(1.0, 1.0, coefficients=(1.0,), key=0, expected_batch_size=1, banded="dense")
  with pytest.raises(ValueError, match="expected_batch_size"):
    gp.dp_banded_aggregate(1.0, 1.0, coefficients=(1.0,), key=0)
  with pytest.raises(TypeError, match="key"):
    gp.dp_banded_aggregate(1.0, 1.0, coefficients=(1.0,), expected_batch_size=1)
  with pytest.raises(ValueError, match="bands"):
    gp.banded_sqrt_coefficients(0)
  with pytest.raises(ValueError, match="nu"):
    gp.nu_dp_ftrl_coefficients(3, 1.5)
  with pytest.raises(ValueError, match="mechanism"):
    gp.dp_ftrl(0.1, key=0, batch_size=1, mechanism="dense")
  with pytest.raises(ValueError, match="bands"):
    gp.dp_ftrl(0.1, key=0, batch_size=1, mechanism="banded")
  with pytest.raises(ValueError, match="restart_every"):
    gp.dp_ftrl(0.1, key=0, batch_size=1, mechanism="banded", bands=2, restart_every=5)
  with pytest.raises(ValueError, match="bands"):
    gp.dp_ftrl(0.1, key=0, batch_size=1, bands=2)
  tx = gp.dp_banded_aggregate(1.0, 1.0, coefficients=(1.0, 0.5), key=0, expected_batch_size=1)
  g = {"w": jnp.zeros(3)}
  with pytest.raises(TypeError, match="per_example_grads="):
    tx.update(g, tx.init(g))
  with pytest.raises(TypeError, match="leading batch axis"):
    tx.update(g, tx.init(g), per_example_grads=g)
