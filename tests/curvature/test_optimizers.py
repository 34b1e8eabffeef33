"""AdaHessian, Sophia-H/G and OASIS against float64 NumPy references, invariants and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx import curvature as cv
from tests.curvature.util import PROBLEMS, N, Separable, flat, logits_problem, probes_for_steps, tree_of
from tests.reference import curvature_ref as ref

STEPS = 50
SHAPES = [(4,), (3, 4)]  # flat order b, w


def _run(tx, ref_step, prob, seed, num_probes, probe="rademacher", steps=STEPS):
  """Run gradtx and the reference side by side, comparing the params after every step."""
  params = tree_of(prob.x0)
  state = tx.init(params)
  x = prob.x0.copy()
  all_probes = probes_for_steps(seed, steps, num_probes, probe)

  @jax.jit
  def step(p, s):
    g = jax.grad(prob.loss)(p)
    u, s = tx.update(g, s, p, obj_fn=prob.loss)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    params, state = step(params, state)
    x = ref_step(x, prob.grad_np(x), prob.hess_np(x), all_probes[t])
    np.testing.assert_allclose(flat(params), x, rtol=1e-10, atol=1e-12, err_msg=f"step {t + 1}")
  return params, state


ADAHESSIAN_CASES = [
    dict(),
    dict(b1=0.8, b2=0.95, eps=1e-3, hessian_power=0.5, weight_decay=0.01, num_probes=2),
    dict(b1=0.5, b2=0.9, hessian_power=1.0, spatial_averaging="official", weight_decay=0.05),
]


@pytest.mark.parametrize("prob", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", range(len(ADAHESSIAN_CASES)))
def test_adahessian_matches_reference(prob, case):
  kw = ADAHESSIAN_CASES[case]
  lr = 0.05
  tx = cv.adahessian(lr, key=3, **kw)
  r = ref.AdaHessian(
      N, lr, b1=kw.get("b1", 0.9), b2=kw.get("b2", 0.999), eps=kw.get("eps", 1e-4),
      k=kw.get("hessian_power", 1.0), wd=kw.get("weight_decay", 0.0),
      shapes=SHAPES if kw.get("spatial_averaging") else None,
  )
  _run(tx, lambda x, g, H, zs: r.step(x, g, H, zs), prob, 3, kw.get("num_probes", 1))


SOPHIA_CASES = [
    dict(),
    dict(b1=0.9, b2=0.95, rho=0.05, weight_decay=0.1, update_interval=3, num_probes=2),
    dict(b1=0.0, b2=0.5, rho=0.2, eps=1e-3, update_interval=1),
]


@pytest.mark.parametrize("prob", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", range(len(SOPHIA_CASES)))
def test_sophia_h_matches_reference(prob, case):
  kw = dict(SOPHIA_CASES[case])
  kw.setdefault("weight_decay", 0.0)
  lr = 0.02
  tx = cv.sophia_h(lr, key=5, **kw)
  r = ref.Sophia(
      N, lr, b1=kw.get("b1", 0.965), b2=kw.get("b2", 0.99), rho=kw.get("rho", 0.01),
      eps=kw.get("eps", 1e-12), wd=kw["weight_decay"], k=kw.get("update_interval", 10),
  )
  _run(tx, lambda x, g, H, zs: r.step(x, g, ref.hutchinson(H, zs)), prob, 5, kw.get("num_probes", 1))


OASIS_CASES = [dict(), dict(b2=0.9, alpha=0.5, num_init_probes=3), dict(adaptive=False, b2=0.5, num_init_probes=2)]


@pytest.mark.parametrize("prob", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", range(len(OASIS_CASES)))
def test_oasis_matches_reference(prob, case):
  kw = OASIS_CASES[case]
  lr = 0.1
  tx = cv.oasis(lr, key=2, **kw)
  r = ref.Oasis(N, lr, b2=kw.get("b2", 0.99), alpha=kw.get("alpha", 1e-5), adaptive=kw.get("adaptive", True))
  _run(tx, r.step, prob, 2, kw.get("num_init_probes", 10))


def test_sophia_g_matches_reference_with_its_estimator():
  params, loss, logits_fn = logits_problem()
  lr, k = 0.05, 3
  tx = cv.sophia_g(lr, weight_decay=0.1, update_interval=k, key=4)
  state = tx.init(params)
  r = ref.Sophia(16, lr, b1=0.965, b2=0.99, rho=0.04, eps=1e-12, wd=0.1, k=k)
  xf = flat(params)
  from gradtx._src.core import keys

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, logits_fn=logits_fn)
    return optax.apply_updates(p, u), s

  @jax.jit
  def reference_inputs(key, xf):
    key, use = keys.split(key)
    p = tree_of_like(xf, params)
    return key, ravel(cv.estimate_gauss_newton_diagonal(logits_fn, p, use)), ravel(jax.grad(loss)(p))

  key = keys.as_key(4)
  for _ in range(20):
    key, hhat, g = reference_inputs(key, jnp.asarray(xf))
    params, state = step(params, state)
    xf = r.step(xf, np.asarray(g), np.asarray(hhat))
    np.testing.assert_allclose(flat(params), xf, rtol=1e-10, atol=1e-12)


def ravel(tree):
  from jax.flatten_util import ravel_pytree

  return ravel_pytree(tree)[0]


def tree_of_like(x, like):
  from jax.flatten_util import ravel_pytree

  return ravel_pytree(like)[1](jnp.asarray(x))


# --- invariants ---------------------------------------------------------------------------------

def _quadratic_diag():
  lam = jnp.asarray([0.5, 2.0, 4.0, 8.0])
  return lam, (lambda p: 0.5 * jnp.sum(lam * p**2)), jnp.asarray([1.0, -2.0, 0.5, 3.0])


def test_adahessian_is_a_scaled_newton_step_on_a_separable_quadratic():
  lam, f, x = _quadratic_diag()
  tx = cv.scale_by_adahessian(b1=0.0, b2=0.9, eps=0.0)
  state = tx.init(x)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=f))
  for _ in range(5):
    u, state = update(jax.grad(f)(x), state, x)
    np.testing.assert_allclose(u, x, rtol=1e-12)  # m/(sqrt(vhat)) = lam x / lam
    c2 = 1 - 0.9 ** int(state.count)
    np.testing.assert_allclose(state.nu / c2, lam**2, rtol=1e-12)
    x = x - 0.3 * u


def test_adahessian_power_zero_is_bias_corrected_momentum_sgd():
  lam, f, x = _quadratic_diag()
  tx = cv.scale_by_adahessian(b1=0.9, hessian_power=0.0, eps=1e-4)
  state = tx.init(x)
  g = jax.grad(f)(x)
  u, _ = tx.update(g, state, x, obj_fn=f)
  np.testing.assert_allclose(u, g / (1 + 1e-4), rtol=1e-12)


def test_sophia_steps_are_bounded_and_sign_momentum_without_curvature():
  lam, f, x = _quadratic_diag()
  tx = cv.sophia_h(0.1, weight_decay=0.0, rho=1e6, update_interval=2, key=0)
  state = tx.init(x)
  u, state = tx.update(jax.grad(f)(x), state, x, obj_fn=f)
  assert np.all(np.abs(u) <= 0.1 + 1e-15)
  # Zero estimate: the update is -lr sign(m).
  tx = cv.sophia_h(0.1, weight_decay=0.0, update_interval=2, key=0)
  state = tx.init(x)
  u, _ = tx.update(jax.grad(f)(x), state, x, hessian_diag=jnp.zeros(4))
  np.testing.assert_allclose(u, -0.1 * jnp.sign(jax.grad(f)(x)), rtol=1e-12)


def test_sophia_skips_the_estimate_between_refreshes():
  calls = []
  lam, f, x = _quadratic_diag()

  def counting(p):
    jax.debug.callback(lambda: calls.append(1))
    return f(p)

  tx = cv.sophia_h(0.01, update_interval=3, key=0)
  state = tx.init(x)
  step = jax.jit(lambda x, s: tx.update(jax.grad(f)(x), s, x, obj_fn=counting))
  for _ in range(7):
    u, state = step(x, state)
  jax.effects_barrier()
  assert len(calls) == 3  # steps 1, 4, 7


def test_oasis_invariants_on_a_separable_quadratic():
  lam, f, x = _quadratic_diag()
  # b2 = 0 and alpha below |lam|: Dhat = lam and the second term of the eta rule is exactly 1/2.
  tx = cv.scale_by_oasis(0.3, b2=0.0, alpha=1e-3, num_init_probes=1)
  state = tx.init(x)
  update = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=f))
  for _ in range(4):
    u, state = update(jax.grad(f)(x), state, x)
    np.testing.assert_allclose(u / x, np.full(4, float(state.eta_prev)), rtol=1e-12)
    x = x - u
  assert float(state.eta_prev) <= 0.5 + 1e-15
  # alpha above every |D|: adaptive GD with step eta / alpha.
  tx = cv.scale_by_oasis(0.3, alpha=100.0, adaptive=False)
  state = tx.init(x)
  u, _ = tx.update(jax.grad(f)(x), state, x, obj_fn=f)
  np.testing.assert_allclose(u, 0.3 * jax.grad(f)(x) / 100.0, rtol=1e-12)


def test_precomputed_hessian_diag_equals_obj_fn_path():
  prob = Separable()
  params = tree_of(prob.x0)
  g = jax.grad(prob.loss)(params)
  for make in (lambda: cv.adahessian(0.1, key=1), lambda: cv.sophia_h(0.1, key=1), lambda: cv.oasis(0.1, key=1)):
    tx = make()
    s = tx.init(params)
    u1, _ = jax.jit(lambda s, tx=tx: tx.update(g, s, params, obj_fn=prob.loss))(s)
    d = cv.estimate_hessian_diagonal(prob.loss, params, jax.random.PRNGKey(0))
    u2, _ = jax.jit(lambda s, tx=tx, d=d: tx.update(g, s, params, hessian_diag=d))(s)
    chex.assert_trees_all_close(u1, u2, rtol=1e-12)


def test_sophia_g_works_under_inject_hyperparams_and_keeps_state_shapes():
  params, x = {"w": jnp.ones((3, 4)) * 0.1}, jnp.ones((2, 3))
  logits_fn = lambda p: x @ p["w"]
  tx = optax.inject_hyperparams(cv.sophia_g, static_args=("update_interval", "key"))(learning_rate=0.1, key=0)
  s = tx.init(params)
  u, s2 = jax.jit(lambda s: tx.update(jax.tree.map(jnp.ones_like, params), s, params, logits_fn=logits_fn))(s)
  chex.assert_trees_all_equal_shapes_and_dtypes(s, s2)


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("factory,arg,value", [
    (cv.adahessian, "b1", 1.0), (cv.adahessian, "b2", -0.1), (cv.adahessian, "eps", -1.0),
    (cv.adahessian, "hessian_power", 1.5), (cv.adahessian, "spatial_averaging", "rows"),
    (cv.adahessian, "num_probes", 0),
    (cv.sophia_h, "rho", 0.0), (cv.sophia_h, "eps", 0.0), (cv.sophia_h, "update_interval", 0),
    (cv.sophia_h, "b1", 1.2), (cv.sophia_h, "probe", "normal"), (cv.sophia_g, "b2", 1.0),
    (cv.oasis, "alpha", 0.0), (cv.oasis, "b2", 1.0), (cv.oasis, "learning_rate", -1.0),
    (cv.oasis, "num_init_probes", 0),
])
def test_illegal_hyperparameters_name_the_argument(factory, arg, value):
  with pytest.raises(ValueError, match=arg):
    factory(**{arg: value})


@pytest.mark.parametrize("factory", [cv.adahessian, cv.sophia_h, cv.oasis])
def test_missing_obj_fn_names_it_and_shows_the_call(factory):
  params = {"w": jnp.ones((2, 2))}
  tx = factory(key=0)
  with pytest.raises(TypeError, match=r"obj_fn=.*lambda p: loss\(p, batch\)"):
    tx.update(params, tx.init(params), params)


def test_sophia_g_missing_logits_fn_names_it():
  params = {"w": jnp.ones((2, 2))}
  tx = cv.sophia_g(key=0)
  with pytest.raises(TypeError, match="logits_fn="):
    tx.update(params, tx.init(params), params, obj_fn=lambda p: 0.0)


@pytest.mark.parametrize("factory", [cv.adahessian, cv.sophia_h, cv.sophia_g, cv.oasis])
def test_wrong_hessian_diag_tree_names_the_leaf(factory):
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  tx = factory(key=0)
  bad = {"w": jnp.ones((3, 2)), "b": jnp.ones(3)}
  with pytest.raises(ValueError, match="hessian_diag.*'w'"):
    tx.update(params, tx.init(params), params, hessian_diag=bad)
