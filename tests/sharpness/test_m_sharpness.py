"""m-sharpness (SAM with one ascent point per sub-batch of m examples): float64 NumPy reference,
special cases and bad input."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.optimizers.moments import adam, sgd
from gradtx.sharpness import asam_sgd, sam, sam_sgd
from tests.reference import moments_ref
from tests.reference import sharpness_ref as ref

STEPS = 30
BATCH = 12


def _least_squares():
  """0.5 mean_i ||x_i W + b - y_i||^2 with W (4, 3), b (3,); gradients in closed form."""
  rng = np.random.default_rng(3)
  data = (rng.standard_normal((60, 4)), rng.standard_normal((60, 3)))

  def loss(p, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, axis=1))

  def np_grad(p, batch):
    x, y = batch
    r = x @ p["w"] + p["b"] - y
    return {"w": x.T @ r / len(x), "b": r.mean(0)}

  init = {"w": rng.standard_normal((4, 3)) * 0.5, "b": rng.standard_normal(3) * 0.5}
  return loss, np_grad, init, data


def _softmax_regression():
  """Mean cross-entropy of a linear classifier plus 0.01 ||W||^2; gradients in closed form."""
  rng = np.random.default_rng(4)
  data = (rng.standard_normal((60, 5)), rng.integers(0, 3, 60))

  def loss(p, batch):
    x, labels = batch
    logp = jax.nn.log_softmax(x @ p["w"] + p["b"])
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1)) + 0.01 * jnp.sum(p["w"] ** 2)

  def np_grad(p, batch):
    x, labels = batch
    z = x @ p["w"] + p["b"]
    prob = np.exp(z - z.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(len(x)), labels] -= 1.0
    return {"w": x.T @ prob / len(x) + 0.02 * p["w"], "b": prob.mean(0)}

  init = {"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(3)}
  return loss, np_grad, init, data


PROBLEMS = {"least_squares": _least_squares, "softmax_regression": _softmax_regression}

# name -> (gradtx transformation, float64 reference).
CASES = {
    "m1_sgd_momentum": (
        lambda: sam(sgd(0.05, momentum=0.9), 0.05, m=1),
        lambda: ref.MSAM(moments_ref.SGD(0.05, 0.9), 0.05, 1),
    ),
    "m4_sam_sgd_wd_nesterov": (
        lambda: sam_sgd(0.03, rho=0.2, momentum=0.8, nesterov=True, weight_decay=0.01, m=4),
        lambda: ref.MSAM(moments_ref.SGD(0.03, 0.8, nesterov=True, wd=0.01), 0.2, 4),
    ),
    "m3_unnormalized_adam": (
        lambda: sam(adam(0.01), rho=0.3, normalize=False, m=3),
        lambda: ref.MSAM(moments_ref.Adam(0.01), 0.3, 3, normalize=False),
    ),
    "m2_asam": (
        lambda: asam_sgd(0.05, rho=0.5, m=2),
        lambda: ref.MSAM(moments_ref.SGD(0.05, 0.9), 0.5, 2, adaptive=True, scaled={"w": True, "b": True}),
    ),
}


def _batches(data, steps):
  """Batch t holds examples [12 t, 12 t + 12) of the data, cycling."""
  n = len(data[0])
  for t in range(steps):
    idx = (np.arange(BATCH) + BATCH * t) % n
    yield tuple(x[idx] for x in data)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  # rtol 1e-10: same arithmetic in float64, summed in different orders.
  loss, np_grad, init, data = PROBLEMS[problem]()
  make_tx, make_ref = CASES[case]
  tx, reference = make_tx(), make_ref()
  params = jax.tree.map(jnp.asarray, init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  state = tx.init(params)

  @jax.jit
  def step(p, s, batch):
    u, s = tx.update(None, s, p, loss_fn=loss, batch=batch)
    return optax.apply_updates(p, u), s

  for t, batch in enumerate(_batches(data, STEPS)):
    ref_params = reference.step(ref_params, np_grad, batch)
    params, state = step(params, state, jax.tree.map(jnp.asarray, batch))
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=1e-10, atol=1e-14)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None


def test_m_equal_to_the_batch_size_is_plain_sam_and_rho_zero_is_the_base():
  loss, _, init, data = _softmax_regression()
  params = jax.tree.map(jnp.asarray, init)
  batches = [jax.tree.map(jnp.asarray, b) for b in _batches(data, 5)]

  def run(tx, kind):
    p, s = params, tx.init(params)
    for batch in batches:
      g = jax.grad(loss)(p, batch)
      if kind == "m":
        u, s = tx.update(g, s, p, loss_fn=loss, batch=batch)
      else:
        u, s = tx.update(g, s, p, grad_fn=lambda q, batch=batch: jax.grad(loss)(q, batch))
      p = optax.apply_updates(p, u)
    return p

  base = lambda: sgd(0.1, momentum=0.9)
  for adaptive in (False, True):
    whole = jax.jit(lambda a=adaptive: run(sam(base(), 0.1, adaptive=a, m=BATCH), "m"))()
    plain = jax.jit(lambda a=adaptive: run(sam(base(), 0.1, adaptive=a), "grad_fn"))()
    # The same arithmetic, with the batch reshaped to (1, 12, ...) under vmap: last-bit agreement.
    chex.assert_trees_all_close(whole, plain, rtol=1e-13, atol=1e-15)
  # rho = 0: every sub-batch gradient is taken at w, and their mean is the batch gradient.
  zero = jax.jit(lambda: run(sam(base(), 0.0, m=2), "m"))()
  plain_sgd = jax.jit(lambda: run(sam(base(), 0.0), "grad_fn"))()
  chex.assert_trees_all_close(zero, plain_sgd, rtol=1e-13, atol=1e-15)


def test_each_sub_batch_has_its_own_ascent_point():
  # With m = 1 and one example per sub-batch, example j's gradient is taken at w + rho g_j/||g_j||.
  loss, np_grad, init, data = _least_squares()
  batch = tuple(x[:4] for x in data)
  params = jax.tree.map(jnp.asarray, init)

  @functools.partial(jax.jit, static_argnums=2)
  def g_sam(p, batch, m):
    tx = sam(optax.identity(), 0.3, m=m)
    return tx.update(None, tx.init(p), p, loss_fn=loss, batch=batch)[0]

  jbatch = jax.tree.map(jnp.asarray, batch)
  out = g_sam(params, jbatch, 1)
  expected = {k: 0.0 for k in init}
  for j in range(4):
    one = tuple(x[j:j + 1] for x in batch)
    g = np_grad(init, one)
    norm = np.sqrt(sum(np.sum(v**2) for v in g.values()))
    at = np_grad({k: init[k] + 0.3 * g[k] / norm for k in init}, one)
    expected = {k: expected[k] + at[k] / 4 for k in init}
  chex.assert_trees_all_close(out, expected, rtol=1e-12)
  # It differs from one ascent point for the whole batch.
  whole = g_sam(params, jbatch, 4)
  assert not np.allclose(whole["w"], out["w"], rtol=1e-6)


def test_m_sharpness_chains_and_forwards_its_inputs():
  loss, _, init, data = _least_squares()
  params = jax.tree.map(jnp.asarray, init)
  batch = jax.tree.map(jnp.asarray, tuple(x[:BATCH] for x in data))
  seen = {}

  def update(updates, state, params=None, **extra):
    seen.update(extra)
    return updates, state

  base = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
  tx = optax.chain(optax.clip_by_global_norm(1e6), sam(base, 0.05, m=3), optax.scale(-0.1))
  g = jax.grad(loss)(params, batch)
  jax.jit(lambda g, p, b: tx.update(g, tx.init(p), p, loss_fn=loss, batch=b, value=1.0))(g, params, batch)
  assert set(seen) == {"loss_fn", "batch", "value"}


def test_bfloat16_params_give_bfloat16_updates():
  loss, _, init, data = _least_squares()
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), init)
  batch = jax.tree.map(lambda x: jnp.asarray(x[:BATCH], jnp.bfloat16), data)
  tx = sam(sgd(0.1), m=4)
  out, _ = jax.jit(lambda p, b: tx.update(None, tx.init(p), p, loss_fn=loss, batch=b))(params, batch)
  assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(out))


def test_bad_m_and_missing_inputs():
  loss, _, init, data = _least_squares()
  params = jax.tree.map(jnp.asarray, init)
  batch = jax.tree.map(jnp.asarray, tuple(x[:BATCH] for x in data))
  for bad in (0, 2.0, True):
    with pytest.raises(ValueError, match="sam: m must be an integer >= 1"):
      sam(sgd(0.1), m=bad)
  with pytest.raises(ValueError, match="m must be an integer"):
    sam_sgd(0.1, m=-1)
  tx = sam(sgd(0.1), m=5)
  with pytest.raises(ValueError, match="batch of 12 examples does not split into sub-batches of m=5"):
    tx.update(None, tx.init(params), params, loss_fn=loss, batch=batch)
  with pytest.raises(ValueError, match="same leading example axis"):
    tx.update(None, tx.init(params), params, loss_fn=loss, batch=(batch[0], batch[1][:10]))
  tx = sam(sgd(0.1), m=4)
  with pytest.raises(TypeError, match="loss_fn="):
    tx.update(None, tx.init(params), params, batch=batch, grad_fn=jax.grad(lambda p: loss(p, batch)))
  with pytest.raises(TypeError, match="batch="):
    tx.update(None, tx.init(params), params, loss_fn=loss)
  with pytest.raises(TypeError, match="params="):
    tx.update(None, tx.init(params), None, loss_fn=loss, batch=batch)
