"""Invariants of the geometry optimizers: special cases, exact magnitudes, partition, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.geometry.ema_momentum import ema_momentum
from gradtx._src.geometry.orthogonalize import orthogonalize_newton_schulz, orthogonalize_polar
from gradtx._src.geometry.partition import default_muon_partition
from gradtx._src.geometry.scale_by_auon import auon_direction, scale_by_auon
from gradtx._src.geometry.scale_by_dualized_norm import dualize, scale_by_dualized_norm
from gradtx._src.geometry.scale_by_orthogonalized_momentum import scale_by_orthogonalized_momentum
from gradtx._src.geometry.scale_by_sign import scale_by_sign
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.optimizers import geometry as g

RNG = np.random.default_rng(0)
PARAMS = {"w": jnp.asarray(RNG.standard_normal((6, 4))), "b": jnp.asarray(RNG.standard_normal(4))}
GRADS = [jax.tree.map(lambda x: jnp.asarray(RNG.standard_normal(x.shape)), PARAMS) for _ in range(4)]


def run(tx, grads=GRADS, params=PARAMS):
  """Updates of ``tx`` for the gradient sequence (params held fixed)."""
  state, out = tx.init(params), []
  for gr in grads:
    u, state = tx.update(gr, state, params)
    out.append(u)
  return out


def test_sign_of_zero_is_zero_and_sign_sgd_steps_are_lr():
  u, _ = scale_by_sign().update({"x": jnp.asarray([0.0, -2.0, 3e-30])}, scale_by_sign().init(None))
  np.testing.assert_array_equal(u["x"], [0.0, -1.0, 1.0])
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  for tx in (g.sign_sgd(0.1), g.signum(0.1), g.lion(0.1, weight_decay=0.0)):
    chex.assert_trees_all_equal(run(tx, [zero])[0], zero)
  for u in run(g.sign_sgd(0.1)):
    assert set(np.unique(np.abs(np.asarray(u["w"])))) <= {0.1}


def test_lion_against_its_definition_on_hand_made_gradients():
  lr, b1, b2, wd = 0.1, 0.9, 0.99, 0.5
  p = {"x": jnp.asarray([1.0, -2.0, 0.5])}
  grads = [{"x": jnp.asarray(v)} for v in ([1.0, -1.0, 0.0], [-3.0, 0.5, 0.0], [0.2, 0.2, -1.0])]
  ups = run(g.lion(lr, b1, b2, weight_decay=wd), grads, p)
  m = np.zeros(3)
  for gr, u in zip(grads, ups):
    c = b1 * m + (1 - b1) * np.asarray(gr["x"])
    np.testing.assert_allclose(u["x"], -lr * (np.sign(c) + wd * np.asarray(p["x"])), rtol=1e-14)
    m = b2 * m + (1 - b2) * np.asarray(gr["x"])
  # First step is -lr sign(g_1); magnitudes are lr (+ decay) exactly.
  np.testing.assert_allclose(ups[0]["x"] + lr * wd * p["x"], -lr * np.sign(np.asarray(grads[0]["x"])), rtol=1e-14)
  for u in run(g.lion(lr, weight_decay=0.0)):
    np.testing.assert_allclose(np.abs(u["w"]), lr)


def test_signum_definition_and_equals_lion_with_equal_betas():
  lr, b = 0.05, 0.7
  grads = [{"x": jnp.asarray(v)} for v in ([1.0, -1.0], [-3.0, 0.5], [2.5, -0.6])]
  p = {"x": jnp.zeros(2)}
  ups = run(g.signum(lr, b), grads, p)
  m = np.zeros(2)
  for gr, u in zip(grads, ups):
    m = b * m + (1 - b) * np.asarray(gr["x"])
    np.testing.assert_allclose(u["x"], -lr * np.sign(m))
  chex.assert_trees_all_equal(run(g.signum(lr, b)), run(g.lion(lr, b, b, weight_decay=0.0)))


def test_normalized_sgd_step_length_and_scale_invariance():
  for u in run(g.normalized_sgd(0.3)):
    np.testing.assert_allclose(optax.tree.norm(u), 0.3, rtol=1e-12)
  scaled = [jax.tree.map(lambda x: 1e3 * x, gr) for gr in GRADS]
  chex.assert_trees_all_close(run(g.normalized_sgd(0.3), scaled), run(g.normalized_sgd(0.3)), rtol=1e-12)
  for u in run(g.normalized_sgd(0.3, per_leaf=True)):
    np.testing.assert_allclose(np.linalg.norm(u["b"]), 0.3, rtol=1e-12)


def test_dualized_norm_special_cases():
  """Trust-region dualization after EMA momentum is Muon (spectral), Signum (linf), normalized SGD."""
  mats = {"w": PARAMS["w"], "v": PARAMS["w"].T}
  mgrads = [{"w": gr["w"], "v": gr["w"].T * 2.0} for gr in GRADS]
  via_dual = optax.chain(ema_momentum(0.9, nesterov=True), scale_by_dualized_norm("spectral"),
                         scale_by_learning_rate(0.1))
  chex.assert_trees_all_close(run(via_dual, mgrads, mats), run(g.muon(0.1, b1=0.9, shape_scaling="none"), mgrads, mats),
                              rtol=1e-12)
  sign_dual = optax.chain(ema_momentum(0.8), scale_by_dualized_norm("linf"), scale_by_learning_rate(0.1))
  chex.assert_trees_all_equal(run(sign_dual), run(g.signum(0.1, 0.8)))
  l2_dual = optax.chain(ema_momentum(0.8), scale_by_dualized_norm("global_l2"), scale_by_learning_rate(0.1))
  chex.assert_trees_all_close(run(l2_dual), run(g.normalized_sgd(0.1, 0.8)), rtol=1e-12)
  # Without momentum and with the dual-norm step, l2 steepest descent is gradient descent.
  sd = run(g.steepest_descent(0.1, "l2", scale_by_dual_norm=True))
  chex.assert_trees_all_close(sd, [jax.tree.map(lambda x: -0.1 * x, gr) for gr in GRADS], rtol=1e-12)


@pytest.mark.parametrize("norm", ["l2", "linf", "spectral", "rms_to_rms"])
def test_dual_map_attains_the_dual_norm(norm):
  gw = np.asarray(GRADS[0]["w"])
  d = np.asarray(dualize({"w": GRADS[0]["w"]}, norm, method="svd")["w"])
  sigma = np.linalg.svd(gw, compute_uv=False)
  fan_in, fan_out = gw.shape
  unit_norm, dual = {
      "l2": (np.linalg.norm(d), np.linalg.norm(gw)),
      "linf": (np.abs(d).max(), np.abs(gw).sum()),
      "spectral": (np.linalg.norm(d, 2), sigma.sum()),
      "rms_to_rms": (np.sqrt(fan_in / fan_out) * np.linalg.norm(d, 2), np.sqrt(fan_out / fan_in) * sigma.sum()),
  }[norm]
  np.testing.assert_allclose(unit_norm, 1.0, rtol=1e-12)
  np.testing.assert_allclose(np.sum(gw * d), dual, rtol=1e-12)
  d2 = np.asarray(dualize({"w": 5.0 * GRADS[0]["w"]}, norm, method="svd")["w"])
  np.testing.assert_allclose(d2, d, rtol=1e-10, atol=1e-13)  # scale-invariant


def test_muon_exact_polar_and_orthogonality():
  # method="svd": every Muon update of a square leaf has singular values exactly lr (shape factor 1).
  p = {"w": jnp.asarray(RNG.standard_normal((5, 5)))}
  grads = [{"w": jnp.asarray(RNG.standard_normal((5, 5)))} for _ in range(3)]
  for u in run(g.muon(0.1, method="svd"), grads, p):
    np.testing.assert_allclose(np.linalg.svd(np.asarray(u["w"]), compute_uv=False), 0.1, rtol=1e-10)
  # Muon with many steps of the converging quintic equals Muon with the exact polar factor.
  ns = run(g.muon(0.1, ns_steps=40, coeffs=(15 / 8, -10 / 8, 3 / 8)), grads, p)
  chex.assert_trees_all_close(ns, run(g.muon(0.1, method="svd"), grads, p), atol=1e-9)


def test_muon_shape_factor_uses_fan_out_over_fan_in():
  tx = scale_by_orthogonalized_momentum(0.0, nesterov=False, method="svd")
  wide = jnp.asarray(RNG.standard_normal((2, 8)))  # (in=2, out=8): factor sqrt(4) = 2
  tall = wide.T  # (in=8, out=2): factor 1
  u, _ = tx.update({"a": wide, "b": tall}, tx.init({"a": wide, "b": tall}))
  np.testing.assert_allclose(u["a"], 2.0 * np.asarray(orthogonalize_polar(wide)), rtol=1e-12)
  np.testing.assert_allclose(u["b"], np.asarray(orthogonalize_polar(tall)), rtol=1e-12)
  # Conv kernels (H, W, I, O) are orthogonalized as (H*W*I, O) matrices.
  k = jnp.asarray(RNG.standard_normal((3, 3, 2, 4)))
  u, _ = tx.update({"k": k}, tx.init({"k": k}))
  np.testing.assert_allclose(u["k"], np.asarray(orthogonalize_polar(k.reshape(18, 4))).reshape(k.shape), rtol=1e-12)


def test_auon_invariants():
  gamma = 1.5
  n = jnp.asarray(RNG.standard_normal((6, 4)))
  u0 = np.asarray(auon_direction(n, gamma))
  ratio = u0 / np.asarray(n)
  np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-12)  # a positive multiple: never rotates
  assert ratio.flat[0] > 0
  r = 1.0 / (ratio.flat[0] * (np.linalg.norm(n) + 1e-7)) - 1e-8
  assert 1.0 <= r <= np.cosh(gamma)
  assert np.linalg.norm(u0, 2) <= np.linalg.norm(u0) <= 1.0
  np.testing.assert_allclose(np.asarray(auon_direction(7.0 * n, gamma)), u0, rtol=1e-7)
  ups = run(scale_by_auon(0.9))
  ups_scaled = run(scale_by_auon(0.9), [jax.tree.map(lambda x: 100.0 * x, gr) for gr in GRADS])
  # Exact up to the 1e-7 added to ||N||_F (relative effect ~1e-7 / ||N||_F on the first steps).
  chex.assert_trees_all_close(ups, ups_scaled, rtol=1e-5)


def test_hybrid_auon_is_one_newton_schulz_step_then_the_brake():
  n = jnp.asarray(RNG.standard_normal((6, 4)))
  gn = np.asarray(orthogonalize_newton_schulz(n, 1))
  r = np.sqrt(np.mean(np.cosh(1.5 * gn) ** 2))
  np.testing.assert_allclose(np.asarray(auon_direction(n, 1.5, hybrid=True)), gn / (r + 1e-8), rtol=1e-12)
  with pytest.raises(ValueError, match="'b'"):
    scale_by_auon(hybrid=True).init(PARAMS)


def test_bfloat16_muon_stays_bfloat16_and_finite():
  p = jax.tree.map(lambda x: x.astype(jnp.bfloat16), {"w": PARAMS["w"], "b": PARAMS["b"]})
  u = run(g.muon(0.02), [jax.tree.map(lambda x: x.astype(jnp.bfloat16), gr) for gr in GRADS[:2]], p)[-1]
  for leaf in jax.tree.leaves(u):
    assert leaf.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(leaf)))


def test_default_partition_and_stable_state():
  assert default_muon_partition("layer_0/mlp/kernel", jnp.zeros((4, 8)))
  assert default_muon_partition("conv1/kernel", jnp.zeros((3, 3, 2, 4)))
  assert default_muon_partition("attn/multihead/q", jnp.zeros((4, 4)))
  for path in ("embed", "tok_embeddings/weight", "lm_head", "model/head/kernel", "wte"):
    assert not default_muon_partition(path, jnp.zeros((8, 4))), path
  assert not default_muon_partition("layer_0/bias", jnp.zeros(4))
  params = {"embed": jnp.ones((10, 4)), "hidden": jnp.ones((4, 4)), "head": jnp.ones((4, 10)), "bias": jnp.ones(4)}
  grads = jax.tree.map(lambda x: jnp.asarray(RNG.standard_normal(x.shape)), params)
  tx = g.muon(0.1, method="svd", adam_learning_rate=0.01)
  state = tx.init(params)
  u, new_state = jax.jit(tx.update)(grads, state, params)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
  np.testing.assert_allclose(np.linalg.svd(np.asarray(u["hidden"]), compute_uv=False), 0.1, rtol=1e-10)
  # Adam's first step is -lr sign(g) up to eps: the fallback leaves moved by ~0.01.
  np.testing.assert_allclose(np.abs(u["embed"]), 0.01, rtol=1e-5)
  # User-overridable rule over paths: everything 2-D gets Muon.
  tx2 = g.muon(0.1, method="svd", partition=lambda path, x: x.ndim == 2)
  u2, _ = tx2.update(grads, tx2.init(params), params)
  np.testing.assert_allclose(np.linalg.svd(np.asarray(u2["embed"]), compute_uv=False), 0.1, rtol=1e-10)
  # A tree of bools works as well.
  flags = {"embed": False, "hidden": True, "head": False, "bias": False}
  tx3 = g.muon(0.1, method="svd", adam_learning_rate=0.01, partition=flags)
  chex.assert_trees_all_close(tx3.update(grads, tx3.init(params), params)[0], u, rtol=1e-12)


def test_bad_inputs_name_the_argument():
  for make, arg in [
      (lambda: g.muon(0.1, b1=1.5), "b1"),
      (lambda: g.muon(0.1, ns_steps=0), "ns_steps"),
      (lambda: g.muon(0.1, shape_scaling="big"), "shape_scaling"),
      (lambda: g.muon(0.1, method="qr"), "method"),
      (lambda: g.lion(0.1, b2=1.0), "b2"),
      (lambda: g.lion(-0.1), "learning_rate"),
      (lambda: g.signum(0.1, b1=-0.1), "b1"),
      (lambda: g.normalized_sgd(0.1, momentum=2.0), "momentum"),
      (lambda: g.auon(0.1, gamma=-1.0), "gamma"),
      (lambda: g.sign_sgd(0.1, weight_decay=-1.0), "weight_decay"),
      (lambda: g.steepest_descent(0.1, "l7"), "norm"),
  ]:
    with pytest.raises(ValueError, match=arg):
      make()
  with pytest.raises(ValueError, match="'b'"):
    scale_by_orthogonalized_momentum().init(PARAMS)
  with pytest.raises(ValueError, match="matrix leaf"):
    dualize({"b": PARAMS["b"]}, "spectral")
  tx = g.sign_sgd(0.1, weight_decay=0.1)
  with pytest.raises(TypeError, match="params="):
    tx.update(GRADS[0], tx.init(PARAMS))
