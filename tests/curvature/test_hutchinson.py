"""Hutchinson oracles, packed probes, the trace estimator and the Gauss-Newton-Bartlett estimator."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx import curvature as cv
from tests.curvature.util import DenseQuadratic, Separable, flat, tree_of
from tests.reference import curvature_ref as ref


def test_packed_rademacher_probe_values_dtypes_and_balance():
  tree = {"a": jnp.zeros((257, 33), jnp.float32), "b": jnp.zeros((5,), jnp.bfloat16), "c": jnp.zeros((), jnp.float64)}
  z = cv.rademacher_like(jax.random.PRNGKey(3), tree)
  for leaf, like in zip(jax.tree.leaves(z), jax.tree.leaves(tree)):
    assert leaf.dtype == like.dtype and leaf.shape == like.shape
    assert set(np.unique(np.asarray(leaf, np.float64))) <= {-1.0, 1.0}
  a = np.asarray(z["a"], np.float64).ravel()
  # 8481 fair signs: the mean has standard deviation 1/sqrt(8481) ~ 0.011; 5 sigma bound.
  assert abs(a.mean()) < 5 / np.sqrt(a.size)
  # Neighbouring bits of one word are independent: their product is also a fair sign.
  assert abs(np.mean(a[1:] * a[:-1])) < 5 / np.sqrt(a.size)
  z2 = cv.rademacher_like(jax.random.PRNGKey(4), tree)
  assert not np.array_equal(np.asarray(z["a"]), np.asarray(z2["a"]))
  typed = cv.rademacher_like(jax.random.key(3), tree)  # typed keys work too
  assert typed["a"].shape == (257, 33)


def test_gaussian_probe_moments():
  z = cv.gaussian_like(jax.random.PRNGKey(0), {"a": jnp.zeros((100, 100))})["a"]
  # 1e4 normals: mean sd 0.01, variance sd ~0.014; 5 sigma bounds.
  assert abs(float(z.mean())) < 0.05 and abs(float(z.var()) - 1) < 0.07


@pytest.mark.parametrize("num_probes", [1, 3])
@pytest.mark.parametrize("seed", [0, 7])
def test_exact_on_diagonal_hessian_with_any_probe(num_probes, seed):
  prob = Separable()
  params = tree_of(prob.x0)
  d = cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(seed), num_probes)
  np.testing.assert_allclose(flat(d), np.diag(prob.hess_np(prob.x0)), rtol=1e-12)


def test_fused_matches_value_and_grad_and_the_plain_estimate():
  prob = DenseQuadratic()
  params = tree_of(prob.x0)
  key = jax.random.PRNGKey(1)
  for k in (1, 4):
    value, grad, diag = jax.jit(lambda p, k=k: cv.value_grad_and_hessian_diagonal(prob.loss, p, key, k))(params)
    v_ref, g_ref = jax.value_and_grad(prob.loss)(params)
    chex.assert_trees_all_close((value, grad), (v_ref, g_ref), rtol=1e-12)
    chex.assert_trees_all_close(diag, cv.estimate_hessian_diagonal(prob.loss, params, key, k), rtol=1e-12)
    # Against the reference built from the same probes.
    zs = [flat(cv.rademacher_like(cv.probe_key(key, j), params)) for j in range(k)]
    np.testing.assert_allclose(flat(diag), ref.hutchinson(prob.A, zs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_unbiased_on_dense_hessian(probe):
  prob = DenseQuadratic()
  params = tree_of(prob.x0)
  k = 4000
  est = flat(cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(11), k, probe=probe))
  A = prob.A
  off = np.sum(A**2, axis=1) - np.diag(A) ** 2
  var = off if probe == "rademacher" else off + 2 * np.diag(A) ** 2
  se = np.sqrt(var / k)
  # Fixed seed; each coordinate within 5 standard errors (two-sided miss chance < 1e-6 each).
  assert np.all(np.abs(est - np.diag(A)) < 5 * se)


def test_single_probe_variance_matches_formula():
  prob = DenseQuadratic()
  params = tree_of(prob.x0)
  one = lambda s: flat_jax(cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(s)))
  samples = jax.jit(jax.vmap(one))(
      jnp.arange(3000)
  )
  var = np.asarray(samples).var(axis=0)
  expected = np.sum(prob.A**2, axis=1) - np.diag(prob.A) ** 2
  # Sample variance of 3000 draws: relative sd ~ sqrt(2/3000) * kurtosis factor; 25% bound is > 5 sd.
  np.testing.assert_allclose(var, expected, rtol=0.25)


def flat_jax(tree):
  return jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])


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
  return loss, params


def _dense_hessian(loss, params):
  from jax.flatten_util import ravel_pytree

  x, unravel = ravel_pytree(params)
  return np.asarray(jax.hessian(lambda v: loss(unravel(v)))(x))


def test_trace_estimate_vs_exact_on_small_mlp():
  loss, params = _mlp()
  H = _dense_hessian(loss, params)
  tr, se = jax.jit(lambda p: cv.estimate_hessian_trace(loss, p, jax.random.PRNGKey(0), 2000))(params)
  exact = np.trace(H)
  sd_one = np.sqrt(2 * (np.sum(H**2) - np.sum(np.diag(H) ** 2)))
  # The reported standard error estimates the true one (within 15% at 2000 probes).
  np.testing.assert_allclose(float(se), sd_one / np.sqrt(2000), rtol=0.15)
  assert abs(float(tr) - exact) < 5 * sd_one / np.sqrt(2000)  # fixed seed, 5 sigma


def test_trace_exact_on_diagonal_hessian_and_nan_stderr_for_one_probe():
  prob = Separable()
  params = tree_of(prob.x0)
  tr, se = cv.estimate_hessian_trace(prob.loss, params, jax.random.PRNGKey(0), 5)
  np.testing.assert_allclose(float(tr), np.trace(prob.hess_np(prob.x0)), rtol=1e-12)
  assert float(se) == 0.0
  _, se1 = cv.estimate_hessian_trace(prob.loss, params, jax.random.PRNGKey(0), 1)
  assert np.isnan(float(se1))


def test_axis_name_averages_over_devices():
  prob = DenseQuadratic()
  params = tree_of(prob.x0)
  scales = jnp.asarray([0.5, 1.0, 2.5])
  key = jax.random.PRNGKey(5)

  def local(s):
    return cv.value_grad_and_hessian_diagonal(lambda p: s * prob.loss(p), params, key, 2, axis_name="i")

  value, grad, diag = jax.jit(jax.vmap(local, axis_name="i"))(scales)
  mean = float(scales.mean())
  v_ref, g_ref, d_ref = cv.value_grad_and_hessian_diagonal(lambda p: mean * prob.loss(p), params, key, 2)
  chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], (value, grad, diag)), (v_ref, g_ref, d_ref), rtol=1e-12)
  def local_trace(s):
    return cv.estimate_hessian_trace(lambda p: s * prob.loss(p), params, key, 3, axis_name="i")[0]

  tr = jax.jit(jax.vmap(local_trace, axis_name="i"))(scales)
  tr_ref = cv.estimate_hessian_trace(lambda p: mean * prob.loss(p), params, key, 3)[0]
  np.testing.assert_allclose(np.asarray(tr), float(tr_ref), rtol=1e-12)


def test_bad_arguments():
  prob = Separable()
  params = tree_of(prob.x0)
  with pytest.raises(ValueError, match="num_probes"):
    cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(0), 0)
  with pytest.raises(ValueError, match="probe"):
    cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(0), probe="uniform")
  with pytest.raises(ValueError, match="num_probes"):
    cv.estimate_hessian_trace(prob.loss, params, jax.random.PRNGKey(0), 0)


# --- Gauss-Newton-Bartlett (Sophia-G) -----------------------------------------------------------

def _softmax_model(batch=5, classes=4, dim=3, seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": jnp.asarray(rng.standard_normal((dim, classes))), "b": jnp.asarray(rng.standard_normal(classes) * 0.1)}
  x = jnp.asarray(rng.standard_normal((batch, dim)))
  return params, x, lambda p: x @ p["w"] + p["b"]


def test_gnb_matches_its_definition_with_the_sampled_labels():
  params, x, logits_fn = _softmax_model()
  key = jax.random.PRNGKey(3)
  h = jax.jit(lambda p: cv.estimate_gauss_newton_diagonal(logits_fn, p, key))(params)
  labels = jax.random.categorical(key, logits_fn(params), axis=-1)

  def sampled_loss(p):
    logp = jax.nn.log_softmax(logits_fn(p))
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

  g = jax.grad(sampled_loss)(params)
  chex.assert_trees_all_close(h, jax.tree.map(lambda v: 5 * v * v, g), rtol=1e-12)


def test_gnb_expectation_is_the_gauss_newton_diagonal():
  params, x, logits_fn = _softmax_model(batch=1)
  n_keys = 20000
  one = lambda s: flat_jax(cv.estimate_gauss_newton_diagonal(logits_fn, params, jax.random.PRNGKey(s)))
  hs = jax.jit(jax.vmap(one))(
      jnp.arange(n_keys)
  )
  from jax.flatten_util import ravel_pytree

  xflat, unravel = ravel_pytree(params)
  J = np.asarray(jax.jacobian(lambda v: logits_fn(unravel(v))[0])(xflat))
  expected = ref.gnb_expected(J, np.asarray(logits_fn(params)[0]))
  hs = np.asarray(hs)
  se = hs.std(axis=0) / np.sqrt(n_keys)
  # Fixed seed; every coordinate within 5 standard errors of the enumerated expectation.
  assert np.all(np.abs(hs.mean(axis=0) - expected) <= 5 * se + 1e-12)


def test_gnb_axis_name_is_the_global_batch_estimate():
  params, x, logits_fn = _softmax_model(batch=6)
  xs = x.reshape(3, 2, -1)
  key = jax.random.PRNGKey(0)

  def local(xb):
    return cv.estimate_gauss_newton_diagonal(lambda p: xb @ p["w"] + p["b"], params, key, axis_name="i")

  h = jax.jit(jax.vmap(local, axis_name="i"))(xs)
  # Rebuild with the labels each device sampled: B_total * (mean of local sampled-loss grads)^2.
  grads = []
  for i in range(3):  # eager, but tiny
    lg = xs[i] @ params["w"] + params["b"]
    y = jax.random.categorical(jax.random.fold_in(key, i), lg, axis=-1)
    grads.append(jax.grad(lambda p, i=i, y=y: -jnp.mean(jnp.take_along_axis(
        jax.nn.log_softmax(xs[i] @ p["w"] + p["b"]), y[:, None], axis=-1)))(params))
  g = jax.tree.map(lambda *a: sum(a) / 3, *grads)
  chex.assert_trees_all_close(jax.tree.map(lambda v: v[0], h), jax.tree.map(lambda v: 6 * v * v, g), rtol=1e-12)
