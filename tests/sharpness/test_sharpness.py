"""SAM, ASAM and GAM against float64 NumPy references, their invariants and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.optimizers.moments import adam, sgd
from gradtx.sharpness import asam_sgd, gam, gam_sgd, sam, sam_sgd
from tests.reference import moments_ref
from tests.reference import sharpness_ref as ref
from tests.reference.problems import PROBLEMS

STEPS = 50


def _hvp_oracle(loss):
  hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,))[1])
  return lambda p, v: {k: np.asarray(x) for k, x in hvp(p, v).items()}


# name -> (gradtx transformation, reference factory taking the problem's loss).
CASES = {
    "sam_default": (lambda: sam(sgd(0.05, momentum=0.9)), lambda loss: ref.SAM(moments_ref.SGD(0.05, 0.9), 0.05)),
    "sam_sgd_wd_nesterov": (
        lambda: sam_sgd(0.03, rho=0.2, momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda loss: ref.SAM(moments_ref.SGD(0.03, 0.8, nesterov=True, wd=0.01), 0.2),
    ),
    "sam_unnormalized_adam": (
        lambda: sam(adam(0.01), rho=0.3, normalize=False),
        lambda loss: ref.SAM(moments_ref.Adam(0.01), 0.3, normalize=False),
    ),
    "asam_default": (lambda: asam_sgd(0.05), lambda loss: ref.SAM(moments_ref.SGD(0.05, 0.9), 0.5, adaptive=True)),
    "asam_masked_eta": (
        lambda: sam(sgd(0.05, weight_decay=0.1), rho=0.3, adaptive=True, eta=0.1, mask={"w": True, "b": False}),
        lambda loss: ref.SAM(moments_ref.SGD(0.05, wd=0.1), 0.3, adaptive=True, eta=0.1,
                             scaled={"w": True, "b": False}),
    ),
    "gam_default": (lambda: gam_sgd(0.05), lambda loss: ref.GAM(moments_ref.SGD(0.05, 0.9))),
    "gam_custom_adaptive": (
        lambda: gam(sgd(0.02, weight_decay=0.01), rho=0.05, rho2=0.1, b1=0.6, b2=-0.5, b3=0.4, gamma=0.1,
                    adaptive=True, eta=0.05),
        lambda loss: ref.GAM(moments_ref.SGD(0.02, wd=0.01), 0.05, 0.1, 0.6, -0.5, 0.4, 0.1, adaptive=True,
                             eta=0.05),
    ),
    "gam_hvp": (
        lambda: gam(sgd(0.05, momentum=0.9), rho=0.05, rho2=0.3, hessian="hvp"),
        lambda loss: ref.GAM(moments_ref.SGD(0.05, 0.9), 0.05, 0.3, hvp_fn=_hvp_oracle(loss)),
    ),
}


def _run(tx, reference, loss, init, steps=STEPS, rtol=1e-10):
  """Step both from ``init`` in float64 with the same gradient oracle; compare params every step."""
  grad = jax.jit(jax.grad(loss))

  def np_grad(p):
    return {k: np.asarray(v) for k, v in grad(p).items()}

  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, grad_fn=jax.grad(loss), obj_fn=loss)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    ref_params = reference.step(ref_params, np_grad(ref_params), np_grad)
    params, state = step(params, state)
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=rtol, atol=1e-14)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None
  return params


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  loss, init = PROBLEMS[problem]()
  make_tx, make_ref = CASES[case]
  _run(make_tx(), make_ref(loss), loss, init)


def _quadratic():
  a = jnp.asarray(np.diag([1.0, 2.0, 5.0]) + 0.3, jnp.float64)
  loss = lambda p: 0.5 * p["w"] @ a @ p["w"] + 0.5 * jnp.sum(p["b"] ** 2)
  params = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray([0.3, -0.1])}
  return a, loss, params


def test_sam_with_rho_zero_equals_its_base():
  loss, init = PROBLEMS["softmax_regression"]()
  grad = jax.grad(loss)
  for base in (lambda: sgd(0.1, momentum=0.9), lambda: adam(0.01)):
    tx_sam, tx_base = sam(base(), rho=0.0), base()

    def run(p, tx_sam=tx_sam, tx_base=tx_base):
      s_sam, s_base, p_sam, p_base = tx_sam.init(p), tx_base.init(p), p, p
      for _ in range(10):
        u, s_sam = tx_sam.update(grad(p_sam), s_sam, p_sam, grad_fn=grad)
        p_sam = optax.apply_updates(p_sam, u)
        u, s_base = tx_base.update(grad(p_base), s_base, p_base)
        p_base = optax.apply_updates(p_base, u)
      return p_sam, p_base

    p_sam, p_base = jax.jit(run)(jax.tree.map(jnp.asarray, init))
    # e = 0 exactly, so the same gradients reach the base; XLA may fuse the two copies of the
    # computation differently, hence a last-bit tolerance rather than bitwise equality.
    chex.assert_trees_all_close(p_sam, p_base, rtol=1e-14, atol=1e-16)


def test_sam_gradient_on_a_quadratic_and_perturbation_norm():
  # L = 0.5 w^T A w: g_sam = A (w + rho A w / ||A w||) (algorithms.md 7.1); identity base returns g_sam.
  a, loss, params = _quadratic()
  rho = 0.07
  tx = sam(optax.identity(), rho)
  g = jax.grad(loss)(params)
  out, _ = tx.update(g, tx.init(params), params, grad_fn=jax.grad(loss))
  norm = jnp.sqrt(jnp.sum(g["w"] ** 2) + jnp.sum(g["b"] ** 2))
  chex.assert_trees_all_close(out["w"], a @ (params["w"] + rho * g["w"] / norm), rtol=1e-12)
  # grad_fn = identity exposes the ascent point: ||e|| = rho.
  point, _ = tx.update(g, tx.init(params), params, grad_fn=lambda p: p)
  e = jax.tree.map(jnp.subtract, point, params)
  np.testing.assert_allclose(optax.tree.norm(e), rho, rtol=1e-10)


def test_asam_relative_perturbation_has_norm_rho_and_is_scale_invariant():
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.standard_normal((3, 2))), "bias": jnp.asarray(rng.standard_normal(2))}
  grads = {"w": jnp.asarray(rng.standard_normal((3, 2))), "bias": jnp.asarray(rng.standard_normal(2))}
  rho, eta = 0.5, 0.01

  def perturbation(p, g, eta):
    tx = sam(optax.identity(), rho, adaptive=True, eta=eta)
    point, _ = tx.update(g, tx.init(p), p, grad_fn=lambda q: q)
    return jax.tree.map(jnp.subtract, point, p)

  e = perturbation(params, grads, eta)
  # Default mask: the leaf named "bias" is not scaled (T = 1 there).
  t = {"w": jnp.abs(params["w"]) + eta, "bias": jnp.ones(2)}
  np.testing.assert_allclose(optax.tree.norm(jax.tree.map(jnp.divide, e, t)), rho, rtol=1e-10)
  # eta = 0: w -> c w with g -> g / c gives e_w -> c e_w (the bias is unchanged).
  c = 3.0
  e0 = perturbation(params, grads, 0.0)
  e1 = perturbation({**params, "w": c * params["w"]}, {**grads, "w": grads["w"] / c}, 0.0)
  chex.assert_trees_all_close(e1["w"], c * e0["w"], rtol=1e-10)
  chex.assert_trees_all_close(e1["bias"], e0["bias"], rtol=1e-10)


def test_sam_forwards_every_extra_input_to_its_base_and_chains():
  seen = {}

  def update(updates, state, params=None, *, value=None, grad_fn=None, custom=None, **extra):
    seen.update(value=value, custom=custom, has_grad_fn=grad_fn is not None, extra=extra)
    return jax.tree.map(lambda u: u * value, updates), state

  base = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
  _, loss, params = _quadratic()
  g = jax.grad(loss)(params)
  tx = optax.chain(optax.clip_by_global_norm(1e6), sam(base, 0.0), optax.scale(1.0))
  out, _ = tx.update(g, tx.init(params), params, grad_fn=jax.grad(loss), value=2.0, custom="x", other=1)
  assert seen == {"value": 2.0, "custom": "x", "has_grad_fn": True, "extra": {"other": 1}}
  chex.assert_trees_all_close(out, jax.tree.map(lambda x: 2 * x, g), rtol=1e-12)
  # A plain optax base (no extra-args support) works too.
  tx = sam(optax.sgd(0.1), 0.05)
  tx.update(g, tx.init(params), params, grad_fn=jax.grad(loss), value=1.0)


def test_gam_special_cases():
  a, loss, params = _quadratic()
  g = jax.grad(loss)(params)
  grad_fn = jax.grad(loss)
  # rho = rho2 = 0: every gradient is g0 and the base gets 2 g0 at the default weights.
  tx = gam(optax.identity(), rho=0.0, rho2=0.0)
  out, _ = tx.update(g, tx.init(params), params, grad_fn=grad_fn)
  chex.assert_trees_all_close(out, jax.tree.map(lambda x: 2 * x, g), rtol=1e-12)
  # rho2 = 0: theta2 = theta, so g2 = g0 and g3 = g1 (the SAM gradient).
  tx = gam(optax.identity(), rho=0.1, rho2=0.0, gamma=0.0)
  out, _ = tx.update(g, tx.init(params), params, grad_fn=grad_fn)
  g_sam, _ = sam(optax.identity(), 0.1).update(g, sam(optax.identity()).init(params), params, grad_fn=grad_fn)
  chex.assert_trees_all_close(out, jax.tree.map(lambda x: 2 * x, g_sam), rtol=1e-12)
  # On a quadratic g1 - g0 is parallel to H g0, so the exact Hessian-vector product gives the
  # same step as the official finite difference.
  diff, _ = gam(optax.identity()).update(g, gam(optax.identity()).init(params), params, grad_fn=grad_fn)
  tx = gam(optax.identity(), hessian="hvp")
  exact, _ = tx.update(g, tx.init(params), params, grad_fn=grad_fn, obj_fn=loss)
  chex.assert_trees_all_close(exact, diff, rtol=1e-9)


def test_bfloat16_params_give_bfloat16_updates_with_float32_math():
  _, loss, params = _quadratic()
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  grad_fn = jax.grad(lambda p: loss(jax.tree.map(lambda x: x.astype(jnp.float64), p)))
  for tx in (sam(sgd(0.1), adaptive=True), gam(sgd(0.1))):
    out, _ = tx.update(grad_fn(params), tx.init(params), params, grad_fn=grad_fn)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(out))


def test_rho_schedule_is_evaluated_at_the_zero_based_step():
  _, loss, params = _quadratic()
  g = jax.grad(loss)(params)
  tx = sam(optax.identity(), rho=lambda count: 0.1 * (count + 1))
  state = tx.init(params)
  norms = []
  for _ in range(3):
    point, state = tx.update(g, state, params, grad_fn=lambda p: p)
    norms.append(float(optax.tree.norm(jax.tree.map(jnp.subtract, point, params))))
  np.testing.assert_allclose(norms, [0.1, 0.2, 0.3], rtol=1e-10)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: sam(sgd(0.1), rho=-0.1), "sam: rho must be >= 0"),
        (lambda: sam(sgd(0.1), eta=-1.0, adaptive=True), "sam: eta must be >= 0"),
        (lambda: sam(sgd(0.1), eps=float("nan")), "sam: eps"),
        (lambda: sam_sgd(-0.1), "learning_rate"),
        (lambda: asam_sgd(0.1, rho=-1.0), "rho"),
        (lambda: gam(sgd(0.1), rho2=-0.2), "gam: rho2 must be >= 0"),
        (lambda: gam(sgd(0.1), gamma=float("inf")), "gam: gamma must be finite"),
        (lambda: gam(sgd(0.1), hessian="exact"), "gam: hessian must be one of"),
        (lambda: gam_sgd(0.1, momentum=1.5), "momentum"),
    ],
)
def test_bad_hyperparameters_raise_value_error(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_missing_inputs_raise_type_error_naming_them():
  _, loss, params = _quadratic()
  g = jax.grad(loss)(params)
  for tx in (sam(sgd(0.1)), gam(sgd(0.1))):
    with pytest.raises(TypeError, match="grad_fn="):
      tx.update(g, tx.init(params), params)
    with pytest.raises(TypeError, match="params="):
      tx.update(g, tx.init(params), None, grad_fn=jax.grad(loss))
  tx = gam(sgd(0.1), hessian="hvp")
  with pytest.raises(TypeError, match="obj_fn="):
    tx.update(g, tx.init(params), params, grad_fn=jax.grad(loss))
