"""The privacy accountant: agreement with independent computations, calibration, monotonicity."""

import math

import dp_accounting
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.privacy as gp
from tests.reference import privacy_ref

ORDERS = dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_matches_a_direct_dp_accounting_computation(kind):
  # The same event built by hand with dp_accounting's own classes.
  sigma, q, steps, delta = 1.1, 0.01, 1000, 1e-5
  if kind == "rdp":
    acc = dp_accounting.rdp.RdpAccountant()
  else:
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
  acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
  expected = acc.get_epsilon(delta)
  got = gp.PrivacyAccountant(sigma, q, delta, accountant=kind).epsilon(steps)
  assert math.isclose(got, expected, rel_tol=1e-12)
  assert math.isclose(gp.compute_epsilon(sigma, q, steps, delta, accountant=kind), expected, rel_tol=1e-12)


def test_full_batch_rdp_is_the_closed_form():
  # q = 1: eps_step(alpha) = alpha / (2 sigma^2) exactly (Mironov), composed linearly.
  for sigma, steps in [(1.0, 10), (3.0, 500), (0.7, 1)]:
    got = gp.compute_epsilon(sigma, 1.0, steps, 1e-5)
    assert math.isclose(got, privacy_ref.rdp_full_batch_epsilon(sigma, steps, 1e-5, ORDERS), rel_tol=1e-9)


def test_full_batch_pld_matches_the_exact_gaussian_and_is_below_rdp():
  # T Gaussian steps compose to one Gaussian with mu = sqrt(T)/sigma (Balle & Wang's exact
  # epsilon); PLD is a pessimistic discretisation: exact <= pld <= exact + 1% and pld <= rdp.
  for sigma, steps in [(2.0, 20), (5.0, 300)]:
    exact = privacy_ref.gaussian_epsilon(sigma, steps, 1e-5)
    pld = gp.compute_epsilon(sigma, 1.0, steps, 1e-5, accountant="pld")
    assert exact - 1e-6 <= pld <= exact * 1.01
    assert pld <= gp.compute_epsilon(sigma, 1.0, steps, 1e-5)


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_calibration_round_trips(kind):
  # PLD calls are slower: one target, a short run (the search is the same code).
  q, steps, delta = (256 / 60000, 2000, 1e-5) if kind == "rdp" else (0.05, 100, 1e-5)
  for target in (1.0, 3.0, 8.0) if kind == "rdp" else (2.0,):
    # tol on sigma 1e-5: |d eps / d sigma| < 10 here, so the epsilon error stays below 1e-4.
    # A coarser PLD grid (1e-3) keeps the test fast; the round trip uses the same grid.
    sigma = gp.calibrate_noise_multiplier(
        target, delta, q, steps, accountant=kind, tol=1e-5, value_discretization_interval=1e-3
    )
    eps = gp.PrivacyAccountant(sigma, q, delta, accountant=kind, value_discretization_interval=1e-3).epsilon(steps)
    assert eps <= target + 1e-9
    assert abs(eps - target) < 1e-3, (target, sigma, eps)


@hypothesis.settings(max_examples=15, deadline=None, derandomize=True)
@hypothesis.given(
    log_sigma=st.floats(-0.3, 1.0), log_q=st.floats(-3, 0), steps=st.integers(1, 3000),
    more=st.integers(1, 3000), factor=st.floats(1.05, 3.0),
)
def test_epsilon_grows_with_steps_and_shrinks_with_sigma(log_sigma, log_q, steps, more, factor):
  sigma, q, delta = 10.0**log_sigma, 10.0**log_q, 1e-5
  eps = gp.compute_epsilon(sigma, q, steps, delta)
  assert eps > 0
  assert gp.compute_epsilon(sigma, q, steps + more, delta) >= eps
  assert gp.compute_epsilon(sigma * factor, q, steps, delta) <= eps
  assert gp.compute_epsilon(sigma, min(q * factor, 1.0), steps, delta) >= eps


def test_zero_steps_cost_nothing_and_the_state_gives_the_steps():
  acc = gp.PrivacyAccountant(1.0, 0.01, 1e-5)
  assert acc.epsilon(0) == 0.0
  tx = gp.dp_sgd(0.1, 1.0, 1.0, key=0, expected_batch_size=2)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  assert gp.dp_steps(state) == 0
  pe = {"w": jnp.ones((2, 3))}
  for _ in range(3):
    _, state = tx.update(params, state, params, per_example_grads=pe)
  assert gp.dp_steps(state) == 3
  assert acc.epsilon(state) == acc.epsilon(3)
  with pytest.raises(ValueError, match="DpAggregateState"):
    gp.dp_steps(gradtx_free_state := (jnp.zeros(()),))
  del gradtx_free_state


def test_bad_input_names_the_argument():
  with pytest.raises(ValueError, match="noise_multiplier"):
    gp.PrivacyAccountant(0.0, 0.1, 1e-5)
  with pytest.raises(ValueError, match="sampling_rate"):
    gp.PrivacyAccountant(1.0, 1.5, 1e-5)
  with pytest.raises(ValueError, match="delta"):
    gp.PrivacyAccountant(1.0, 0.1, 0.0)
  with pytest.raises(ValueError, match="accountant"):
    gp.PrivacyAccountant(1.0, 0.1, 1e-5, accountant="prv")
  with pytest.raises(ValueError, match="steps"):
    gp.compute_epsilon(1.0, 0.1, -1, 1e-5)
  with pytest.raises(ValueError, match="target_epsilon"):
    gp.calibrate_noise_multiplier(0.0, 1e-5, 0.1, 10)


def test_poisson_batches_sample_at_the_rate_and_pad_with_a_mask():
  n, q, cap = 500, 0.1, 120
  sizes = []
  for idx, mask in gp.poisson_batches(n, q, cap, key=0, steps=40):
    assert idx.shape == mask.shape == (cap,)
    idx, mask = np.asarray(idx), np.asarray(mask)
    k = int(mask.sum())
    assert mask[:k].all() and not mask[k:].any()
    real = np.asarray(idx[:k])
    assert np.all(np.diff(real) > 0) and real.min(initial=0) >= 0 and real.max(initial=0) < n
    assert np.all(np.asarray(idx[k:]) == 0)
    sizes.append(k)
  # 40 batches of Binomial(500, 0.1): mean 50, sd of the mean sqrt(45/40) = 1.06; 6 sd.
  assert abs(np.mean(sizes) - 50) < 6 * 1.06


def test_poisson_batches_are_reproducible_resumable_and_never_truncated():
  a = list(gp.poisson_batches(100, 0.2, 60, key=3, steps=5))
  b = list(gp.poisson_batches(100, 0.2, 60, key=jax.random.PRNGKey(3), steps=5))
  c = list(gp.poisson_batches(100, 0.2, 60, key=3, steps=2, start=3))
  for (i, m), (j, n) in zip(a, b):
    np.testing.assert_array_equal(i, j)
    np.testing.assert_array_equal(m, n)
  for (i, _), (j, _) in zip(a[3:], c):
    np.testing.assert_array_equal(i, j)
  with pytest.raises(ValueError, match="max_batch_size"):
    list(gp.poisson_batches(100, 0.5, 10, key=0, steps=3))
  with pytest.raises(ValueError, match="sampling_rate"):
    next(gp.poisson_batches(100, 0.0, 10, key=0))


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_changing_noise_multiplier_matches_a_direct_composition(kind):
  q, delta = 0.02, 1e-5
  segments = [(300, 2.0), (200, 1.0), (150, 1.5)]
  if kind == "rdp":
    acc = dp_accounting.rdp.RdpAccountant()
  else:
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
  for n, sigma in [(300, 2.0), (200, 1.0), (100, 1.5)]:  # the first 600 steps
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), n)
  expected = acc.get_epsilon(delta)
  got = gp.PrivacyAccountant(segments, q, delta, accountant=kind, value_discretization_interval=1e-3).epsilon(600)
  assert math.isclose(got, expected, rel_tol=1e-9)
  # a schedule step -> sigma with the same values gives the same events
  schedule = optax.piecewise_constant_schedule(2.0, {300: 0.5, 500: 1.5})
  got = gp.PrivacyAccountant(schedule, q, delta, accountant=kind, value_discretization_interval=1e-3).epsilon(600)
  assert math.isclose(got, expected, rel_tol=1e-9)


def test_changing_noise_multiplier_special_cases_and_monotonicity():
  q, delta = 0.01, 1e-5
  flat = gp.compute_epsilon(1.1, q, 800, delta)
  assert math.isclose(gp.compute_epsilon([(500, 1.1), (300, 1.1)], q, 800, delta), flat, rel_tol=1e-12)
  assert math.isclose(gp.compute_epsilon(lambda t: 1.1, q, 800, delta), flat, rel_tol=1e-12)
  base = [(400, 1.0), (400, 2.0)]
  eps = gp.compute_epsilon(base, q, 800, delta)
  assert gp.compute_epsilon(base, q, 400, delta) < eps  # grows with steps
  assert gp.compute_epsilon([(400, 1.2), (400, 2.0)], q, 800, delta) < eps  # shrinks with sigma
  assert gp.compute_epsilon([(400, 1.0), (400, 2.5)], q, 800, delta) < eps
  # per-step schedule (one event per distinct value) equals the explicit composition
  decay = lambda t: 1.0 + 0.01 * np.asarray(t)  # noqa: E731
  acc = dp_accounting.rdp.RdpAccountant()
  for t in range(30):
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.0 + 0.01 * t)))
  assert math.isclose(gp.compute_epsilon(decay, q, 30, delta), acc.get_epsilon(delta), rel_tol=1e-9)
  with pytest.raises(ValueError, match="exceeds"):
    gp.compute_epsilon(base, q, 801, delta)
  with pytest.raises(ValueError, match="noise_multiplier"):
    gp.PrivacyAccountant([(10, 0.0)], q, delta)
  with pytest.raises(ValueError, match="pairs"):
    gp.PrivacyAccountant([1.0, 2.0], q, delta)
  with pytest.raises(ValueError, match="schedule"):
    gp.compute_epsilon(lambda t: 0.0 * np.asarray(t), q, 10, delta)
