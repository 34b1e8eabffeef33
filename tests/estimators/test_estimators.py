"""Forward gradients, two-point (SPSA/MeZO) and coordinate (DeepZero) estimates: float64 references,
statistical and exactness invariants, memory, no reverse pass, and bad input."""

import functools

import chex
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx.estimators import (
    coordinate_gradient,
    deepzero,
    forward_gradient,
    forward_gradient_estimate,
    forward_gradient_sgd,
    function_evals_per_step,
    mezo,
    spsa,
    two_point_gradient,
)
from tests.reference import estimators_ref as ref
from tests.reference import moments_ref
from tests.reference.problems import PROBLEMS

STEPS = 50


# The documented key stream: the state key splits once per update into (kept, used); probe k of
# leaf i is drawn from fold_in(fold_in(used, k), i) (leaves in jax.tree order); DeepZero's subset
# of leaf i in period q is permutation(fold_in(fold_in(key, q), i), size)[:n].
def _probes(used, params, num, distribution):
  shapes = tuple((name, tuple(np.shape(params[name]))) for name in sorted(params))  # jax.tree order
  return jax.device_get(_draw(used, shapes, num, distribution))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw(used, shapes, num, distribution):
  draw = jax.random.normal if distribution == "normal" else jax.random.rademacher
  out = []
  for k in range(num):
    pk = jax.random.fold_in(used, k)
    out.append({name: draw(jax.random.fold_in(pk, i), shape, jnp.float64) for i, (name, shape) in enumerate(shapes)})
  return out


class _KeyStream:
  def __init__(self, seed):
    self.key = jax.random.PRNGKey(seed)

  def next(self):
    self.key, used = jax.random.split(self.key)
    return used


def _selected(seed, period, params, density):
  out = {}
  for i, name in enumerate(sorted(params)):
    size = int(np.size(params[name]))
    d = density[name] if isinstance(density, dict) else density
    n = min(size, max(1, int(round(d * size))))
    out[name] = np.arange(size) if n == size else np.asarray(_subset(seed, period, i, size, n))
  return out


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def _subset(seed, period, i, size, n):
  lk = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), period), i)
  return jax.random.permutation(lk, size)[:n]


class ForwardRef:
  def __init__(self, base, seed, num=1, distribution="normal"):
    self.base, self.keys, self.num, self.dist = base, _KeyStream(seed), num, distribution

  def step(self, params, loss, grad):
    tangents = _probes(self.keys.next(), params, self.num, self.dist)
    return self.base.step(params, ref.forward_gradient(grad, params, tangents))


class TwoPointRef:
  def __init__(self, base, seed, eps, num=1, distribution="normal", difference="central"):
    self.base, self.keys, self.num, self.dist = base, _KeyStream(seed), num, distribution
    self.eps, self.difference, self.k = eps, difference, 0

  def step(self, params, loss, grad):
    probes = _probes(self.keys.next(), params, self.num, self.dist)
    eps = self.eps(self.k) if callable(self.eps) else self.eps
    self.k += 1
    return self.base.step(params, ref.two_point(loss, params, probes, eps, self.difference))


class CoordinateRef:
  def __init__(self, base, seed, mu, density, every=1, rescale=False):
    self.base, self.seed, self.mu, self.density, self.every, self.rescale = base, seed, mu, density, every, rescale
    self.k = 0

  def step(self, params, loss, grad):
    selected = _selected(self.seed, self.k // self.every, params, self.density)
    self.k += 1
    return self.base.step(params, ref.coordinate(loss, params, selected, self.mu, self.rescale))


a_ref, c_ref = ref.spsa_gains(0.05, 0.01, big_a=5.0, alpha=0.7, gamma=0.2)
CASES = {
    "forward_default": (lambda: forward_gradient_sgd(0.01, key=3), lambda: ForwardRef(moments_ref.SGD(0.01), 3)),
    "forward_custom": (
        lambda: forward_gradient_sgd(0.01, 0.5, 0.01, key=4, num_tangents=3, distribution="rademacher"),
        lambda: ForwardRef(moments_ref.SGD(0.01, 0.5, wd=0.01), 4, 3, "rademacher"),
    ),
    "mezo_default": (lambda: mezo(0.01, key=0), lambda: TwoPointRef(moments_ref.SGD(0.01), 0, 1e-3)),
    "mezo_custom": (
        lambda: mezo(0.02, eps=1e-2, weight_decay=0.05, key=5, num_probes=2, momentum=0.8),
        lambda: TwoPointRef(moments_ref.SGD(0.02, 0.8, wd=0.05), 5, 1e-2, num=2),
    ),
    "spsa_default": (
        lambda: spsa(0.05, key=1),
        lambda: TwoPointRef(ref.ZOSGD(ref.spsa_gains(0.05, 1e-3)[0]), 1, ref.spsa_gains(0.05, 1e-3)[1],
                            distribution="rademacher"),
    ),
    "spsa_custom": (
        lambda: spsa(0.05, eps=0.01, key=2, stability=5.0, alpha=0.7, gamma=0.2, num_probes=2),
        lambda: TwoPointRef(ref.ZOSGD(a_ref), 2, c_ref, num=2, distribution="rademacher"),
    ),
    "forward_difference": (
        lambda: optax.chain(two_point_gradient(key=6, eps=0.01, difference="forward"), scale_by_learning_rate(0.02)),
        lambda: TwoPointRef(moments_ref.SGD(0.02), 6, 0.01, difference="forward"),
    ),
    "deepzero_default": (
        lambda: deepzero(0.05, key=0),
        lambda: CoordinateRef(moments_ref.SGD(0.05), 0, 5e-3, 0.1),
    ),
    "deepzero_custom": (
        lambda: deepzero(0.05, mu=1e-2, momentum=0.5, weight_decay=0.01, key=7,
                         density={"w": 0.5, "b": 1.0}, regenerate_every=3, rescale=True, batch_size=2),
        lambda: CoordinateRef(moments_ref.SGD(0.05, 0.5, wd=0.01), 7, 1e-2, {"w": 0.5, "b": 1.0}, 3, True),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  # rtol 1e-9: the reference and gradtx sum the loss in different orders, and a difference
  # quotient divides that rounding by eps (1e-3), so agreement is ~1e-13 per step, not 1e-16.
  loss, init = PROBLEMS[problem]()
  make_tx, make_ref = CASES[case]
  tx, reference = make_tx(), make_ref()
  np_loss = jax.jit(loss)
  grad = jax.jit(jax.grad(loss))
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(None, s, p, obj_fn=loss)
    return optax.apply_updates(p, u), s

  for t in range(STEPS):
    ref_params = reference.step(
        ref_params, lambda p: float(np_loss(p)), lambda p: {k: np.asarray(v) for k, v in grad(p).items()}
    )
    params, state = step(params, state)
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=1e-9, atol=1e-12)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None


def _estimate(tx, params, loss):
  """One jitted update of ``tx`` from its initial state (eager dispatch is slow on loops)."""
  return jax.jit(lambda p: tx.update(None, tx.init(p), p, obj_fn=loss)[0])(params)


def _smooth():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((8, 3)))
  loss = lambda p: jnp.sum(jnp.log1p(jnp.exp(x @ p["w"] + p["b"]))) + 0.1 * jnp.sum(p["w"] ** 4)
  params = {"w": jnp.asarray(rng.standard_normal(3)), "b": jnp.asarray(0.3)}
  return loss, params


def test_forward_gradient_is_unbiased_with_the_stated_second_moment():
  # 20000 one-tangent estimates (seed 0). Each of the 4 coordinates' mean must lie within 4.5
  # standard errors of jax.grad (two-sided, about 1 - 7e-6 per coordinate; the seed is fixed).
  # Gaussian tangents: E||ghat||^2 = (n + 2) ||g||^2 (algorithms.md 8.1), also within 4.5 SE.
  loss, params = _smooth()
  g = jax.grad(loss)(params)
  flat_g = jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(g)])
  n, samples = flat_g.size, 20000
  keys = jax.random.split(jax.random.PRNGKey(0), samples)
  est = jax.jit(jax.vmap(lambda k: forward_gradient_estimate(loss, params, k)[1]))(keys)
  flat = jnp.concatenate([v.reshape(samples, -1) for v in jax.tree.leaves(est)], axis=1)
  se = flat.std(0) / np.sqrt(samples)
  assert np.all(np.abs(flat.mean(0) - flat_g) < 4.5 * se), (flat.mean(0), flat_g, se)
  sq = jnp.sum(flat**2, axis=1)
  assert abs(sq.mean() - (n + 2) * jnp.sum(flat_g**2)) < 4.5 * sq.std() / np.sqrt(samples)
  # Rademacher tangents: ||ghat||^2 = n (g . v)^2 exactly, and the mean is unbiased as well.
  est_r = jax.jit(jax.vmap(lambda k: forward_gradient_estimate(loss, params, k, distribution="rademacher")[1]))(keys)
  flat_r = jnp.concatenate([v.reshape(samples, -1) for v in jax.tree.leaves(est_r)], axis=1)
  se_r = flat_r.std(0) / np.sqrt(samples)
  assert np.all(np.abs(flat_r.mean(0) - flat_g) < 4.5 * se_r)
  v = flat_r / jnp.sqrt(jnp.sum(flat_r**2, axis=1, keepdims=True) / n)  # +-1 up to the sign of g.v
  dv = jnp.abs(v @ flat_g)
  np.testing.assert_allclose(jnp.sum(flat_r**2, axis=1), n * dv**2, rtol=1e-10)


def test_forward_gradient_is_exact_on_linear_functions_and_matches_its_helper():
  # f = c . theta: ghat = (c . v) v with the tangent v regenerated from the key stream, so the
  # estimate is exact along v and E[ghat] = c; its mean over many keys converges to c.
  c = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray(3.0)}
  loss = lambda p: jnp.sum(c["w"] * p["w"]) + c["b"] * p["b"]
  params = {"w": jnp.zeros(3), "b": jnp.asarray(0.0)}
  out = _estimate(forward_gradient(key=11, num_tangents=2), params, loss)
  _, used = jax.random.split(jax.random.PRNGKey(11))
  expected = {k: 0.0 for k in params}
  for v in _probes(used, {k: np.asarray(x) for k, x in params.items()}, 2, "normal"):
    dv = sum(np.sum(np.asarray(c[k]) * v[k]) for k in params)
    expected = {k: expected[k] + dv * v[k] / 2 for k in params}
  chex.assert_trees_all_close(out, expected, rtol=1e-12)
  value, helper = jax.jit(lambda p: forward_gradient_estimate(loss, p, used, num_tangents=2))(params)
  chex.assert_trees_all_close(helper, out, rtol=1e-12)
  assert float(value) == 0.0


def test_no_reverse_mode_pass_is_traced():
  # The loss runs a lax.while_loop: forward mode differentiates it, reverse mode cannot. The
  # estimators work on it, jax.grad raises, and their jaxprs hold no transpose.
  def loss(p):
    def body(carry):
      i, acc = carry
      return i + 1, acc + jnp.sin(p["w"] * i)

    return jnp.sum(jax.lax.while_loop(lambda c: c[0] < 3, body, (0, jnp.zeros_like(p["w"])))[1] ** 2)

  params = {"w": jnp.asarray([0.1, 0.2, 0.3])}
  with pytest.raises(ValueError, match="while_loop"):
    jax.grad(loss)(params)
  for tx in (forward_gradient(key=0, num_tangents=2), two_point_gradient(key=0), coordinate_gradient(key=0)):
    state = tx.init(params)
    fn = lambda p, s, tx=tx: tx.update(None, s, p, obj_fn=loss)
    fn(params, state)
    assert "transpose" not in str(jax.make_jaxpr(fn)(params, state))


def test_two_point_estimate_is_exact_for_quadratics_and_has_order_eps_squared_bias():
  # On a quadratic the central difference is exact for any eps: p = grad . z, so the estimate
  # equals the forward gradient drawn from the same key (the same z); on a non-quadratic loss
  # the difference to it shrinks like eps^2.
  a = jnp.asarray(np.diag([1.0, 3.0, 0.5]) + 0.2)
  quad = lambda p: 0.5 * p["w"] @ a @ p["w"] + jnp.sum(p["b"] * p["w"][:2]) + 2.0 * jnp.sum(p["b"])
  params = {"w": jnp.asarray([1.0, -1.0, 2.0]), "b": jnp.asarray([0.5, -0.5])}
  for distribution in ("normal", "rademacher"):
    expected = _estimate(forward_gradient(key=9, num_tangents=3, distribution=distribution), params, quad)
    two_point = jax.jit(lambda e, p, d=distribution: two_point_gradient(key=9, eps=e, num_probes=3, distribution=d)
                        .update(None, two_point_gradient(key=9).init(p), p, obj_fn=quad)[0])
    for eps in (1e-3, 0.5, 10.0):
      chex.assert_trees_all_close(two_point(eps, params), expected, rtol=1e-8, atol=1e-10)
  cubic = lambda p: jnp.sum(p["w"] ** 3) + jnp.sum(jnp.sin(p["b"]))
  exact = _estimate(forward_gradient(key=9), params, cubic)
  two_point = jax.jit(lambda e, p: two_point_gradient(key=9, eps=e)
                      .update(None, two_point_gradient(key=9).init(p), p, obj_fn=cubic)[0])
  errors = [float(optax.tree.norm(jax.tree.map(jnp.subtract, two_point(eps, params), exact))) for eps in (1e-1, 1e-2)]
  np.testing.assert_allclose(errors[0] / errors[1], 100.0, rtol=0.05)


def test_zeroth_order_state_and_compiled_memory_do_not_grow_with_probes_or_steps():
  params = {"w": jnp.zeros((200, 100), jnp.float32), "b": jnp.zeros((100,), jnp.float32)}
  loss = lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2) + jnp.sum(p["b"] ** 2)
  temps = []
  for num in (2, 32):
    tx = mezo(1e-3, key=0, num_probes=num)
    state = tx.init(params)
    sizes = [x.size for x in jax.tree.leaves(state)]
    # Step counters, one uint32[2] key and the int32 evaluation count: no probe is stored.
    assert sum(sizes) <= 5, sizes
    step = jax.jit(lambda s, p, tx=tx: tx.update(None, s, p, obj_fn=loss))
    _, new_state = step(state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
    temps.append(step.lower(state, params).compile().memory_analysis().temp_size_in_bytes)
  assert temps[1] <= temps[0], temps


def test_coordinate_estimate_is_exact_for_linear_and_quadratic_losses():
  # 0.5 theta^T A theta: ghat_i = (A theta)_i + (mu / 2) A_ii on the selected coordinates, else 0.
  rng = np.random.default_rng(1)
  m = rng.standard_normal((6, 6))
  a = jnp.asarray(m @ m.T + np.eye(6))
  quad = lambda p: 0.5 * jnp.concatenate([p["b"], p["w"].ravel()]) @ a @ jnp.concatenate([p["b"], p["w"].ravel()])
  params = {"w": jnp.asarray(rng.standard_normal((2, 2))), "b": jnp.asarray(rng.standard_normal(2))}
  theta = jnp.concatenate([params["b"], params["w"].ravel()])
  mu = 1e-2
  out = _estimate(coordinate_gradient(key=0, mu=mu, density=0.5), params, quad)
  full = a @ theta + 0.5 * mu * jnp.diag(a)
  selected = _selected(0, 0, {k: np.asarray(v) for k, v in params.items()}, 0.5)
  for name, lo in (("b", 0), ("w", 2)):
    size = params[name].size
    want = np.zeros(size)
    want[selected[name]] = full[lo:lo + size][selected[name]]
    np.testing.assert_allclose(np.ravel(out[name]), want, rtol=1e-8, atol=1e-12)
    assert np.count_nonzero(np.ravel(out[name])) == len(selected[name]) == 1 if name == "b" else 2
  # Linear loss: exact on the selected coordinates for any mu.
  c = jnp.asarray(rng.standard_normal(6))
  lin = lambda p: c @ jnp.concatenate([p["b"], p["w"].ravel()])
  out = _estimate(coordinate_gradient(key=0, mu=0.7, density=1.0), params, lin)
  np.testing.assert_allclose(np.concatenate([out["b"], np.ravel(out["w"])]), c, rtol=1e-10)


def test_coordinate_subsets_persist_for_a_period_and_rescale_by_density():
  params = {"w": jnp.zeros(20)}
  loss = lambda p: jnp.sum(jnp.arange(1.0, 21.0) * p["w"])
  tx = coordinate_gradient(key=3, mu=1e-3, density=0.25, regenerate_every=2)
  state = tx.init(params)
  supports = []
  step = jax.jit(lambda s: tx.update(None, s, params, obj_fn=loss))
  for _ in range(4):
    out, state = step(state)
    supports.append(tuple(np.flatnonzero(np.asarray(out["w"]))))
  assert supports[0] == supports[1] and supports[2] == supports[3] and supports[0] != supports[2]
  assert len(supports[0]) == 5
  scaled = coordinate_gradient(key=3, mu=1e-3, density=0.25, regenerate_every=2, rescale=True)
  big, first = _estimate(scaled, params, loss), _estimate(tx, params, loss)
  chex.assert_trees_all_close(big, jax.tree.map(lambda x: 4.0 * x, first), rtol=1e-12)


@pytest.mark.parametrize("leaf_groups", [1, 5, 12])
def test_coordinate_estimate_over_many_mixed_dtype_leaves_equals_a_loop_over_coordinates(leaf_groups):
  # Leaves of two dtypes share one evaluation loop; each difference must still perturb one
  # coordinate of one leaf, in that leaf's dtype, and land back in that leaf.
  rng = np.random.default_rng(4)
  params = {f"p{i:02d}": jnp.asarray(rng.standard_normal(3 + i % 4), jnp.float32 if i % 3 else jnp.bfloat16)
            for i in range(12)}
  weights = {k: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for k, v in params.items()}
  loss = lambda p: sum(jnp.sum(weights[k] * p[k].astype(jnp.float32) ** 2) for k in p)
  mu, density = 0.125, 0.5
  out = _estimate(coordinate_gradient(key=2, mu=mu, density=density, leaf_groups=leaf_groups), params, loss)
  selected = _selected(2, 0, {k: np.asarray(v, np.float32) for k, v in params.items()}, density)
  f0 = loss(params)
  for name, leaf in params.items():
    want = np.zeros(leaf.size, np.float32)
    for j in selected[name]:
      moved = dict(params, **{name: leaf.ravel().at[j].add(jnp.asarray(mu, leaf.dtype)).reshape(leaf.shape)})
      want[j] = (loss(moved) - f0) / mu
    assert out[name].dtype == leaf.dtype
    got = np.ravel(out[name]).astype(np.float32)
    np.testing.assert_allclose(got, want.astype(leaf.dtype), rtol=1e-4, atol=1e-5)  # f32 sums, / mu


@pytest.mark.parametrize("num_leaves, leaf_groups, loops", [(40, 8, 8), (40, 1, 1), (3, 8, 3)])
def test_coordinate_estimate_runs_one_loop_per_leaf_group(num_leaves, leaf_groups, loops):
  # obj_fn is traced once per loop, so the program must not grow with the number of leaves.
  params = {f"p{i:03d}": jnp.ones(4) for i in range(num_leaves)}
  tx = coordinate_gradient(key=0, density=0.5, leaf_groups=leaf_groups)
  jaxpr = jax.make_jaxpr(lambda s, p: tx.update(None, s, p, obj_fn=lambda q: sum(jnp.sum(x) for x in q.values())))
  eqns = jaxpr(tx.init(params), params).jaxpr.eqns
  assert sum(e.primitive.name in ("scan", "while") for e in eqns) == loops


def test_coordinate_estimate_of_an_empty_tree_is_empty():
  tx = coordinate_gradient(key=0)
  out, _ = tx.update(None, tx.init({}), {}, obj_fn=lambda p: jnp.zeros(()))
  assert out == {}


def test_bfloat16_params_give_bfloat16_estimates():
  params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.zeros((2,), jnp.bfloat16)}
  loss = lambda p: jnp.sum(p["w"].astype(jnp.float32) ** 2) + jnp.sum(p["b"].astype(jnp.float32))
  for tx in (forward_gradient(key=0), two_point_gradient(key=0, eps=0.1), coordinate_gradient(key=0, mu=0.1)):
    out = _estimate(tx, params, loss)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(out))


def _value_and_jvp_of(loss):
  return lambda p, v: jax.jvp(loss, (p,), (v,))


def test_value_and_jvp_fn_gives_the_obj_fn_estimate_exactly():
  # The same key and the same (value, directional derivative) give bit-identical estimates, in
  # the transformation, a full optimizer and the training-step helper; a hand-written forward
  # mode (closed-form directional derivative) agrees to rounding. One compilation.
  loss, params = _smooth()
  quad = lambda p: 0.5 * jnp.sum(p["w"] ** 2) + p["b"]
  by_hand = lambda p, v: (quad(p), jnp.sum(p["w"] * v["w"]) + v["b"])
  txs = [forward_gradient(key=5), forward_gradient(key=5, num_tangents=3, distribution="rademacher"),
         forward_gradient_sgd(0.01, 0.9, key=2, num_tangents=2)]

  @jax.jit
  def both(p):
    pairs = []
    for tx in txs:
      s = tx.init(p)
      pairs.append((tx.update(None, s, p, value_and_jvp_fn=_value_and_jvp_of(loss)),
                    tx.update(None, s, p, obj_fn=loss)))
    pairs.append((forward_gradient_estimate(None, p, 7, value_and_jvp_fn=_value_and_jvp_of(loss)),
                  forward_gradient_estimate(loss, p, 7)))
    s = txs[1].init(p)
    close = (txs[1].update(None, s, p, value_and_jvp_fn=by_hand)[0], txs[1].update(None, s, p, obj_fn=quad)[0])
    return pairs, close

  pairs, close = both(params)
  for from_jvp, from_obj in pairs:
    chex.assert_trees_all_equal(from_jvp, from_obj)
  chex.assert_trees_all_close(*close, rtol=1e-12)


def _value_and_jvp_of(loss):
  return lambda p, v: jax.jvp(loss, (p,), (v,))


def test_value_and_jvp_fn_is_never_differentiated():
  # The directional derivative comes from a host callback that JAX cannot differentiate in
  # either mode: the update still runs, so gradtx applies no jvp, vjp or transpose to it, and
  # the jaxpr holds neither a transpose nor a jvp/vjp call.
  c = np.asarray([1.0, -2.0, 0.5])

  def host(w, v):
    return np.asarray(0.5 * np.sum(c * w**2)), np.asarray(np.sum(c * w * v))

  def value_and_jvp(p, v):
    shape = (jax.ShapeDtypeStruct((), p["w"].dtype),) * 2
    return jax.pure_callback(host, shape, p["w"], v["w"])

  params = {"w": jnp.asarray([0.3, 0.2, -0.1])}
  tx = forward_gradient(key=3, num_tangents=2)
  fn = lambda p, s: tx.update(None, s, p, value_and_jvp_fn=value_and_jvp)
  out, _ = jax.jit(fn)(params, tx.init(params))
  expected = _estimate(tx, params, lambda p: 0.5 * jnp.sum(jnp.asarray(c) * p["w"] ** 2))
  chex.assert_trees_all_close(out, expected, rtol=1e-12)
  names = _primitives(jax.make_jaxpr(fn)(params, tx.init(params)).jaxpr)
  assert "pure_callback" in names
  assert not [n for n in names if any(w in n for w in ("transpose", "jvp", "vjp", "linear"))], names


def _primitives(jaxpr):
  """Names of every primitive in ``jaxpr`` and the jaxprs nested in its equations."""
  names = set()
  for eqn in jaxpr.eqns:
    names.add(eqn.primitive.name)
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      names |= _primitives(sub)
  return names


def test_function_evals_per_step_counts_every_loss_evaluation():
  # A host callback inside each case's loss counts the evaluations one update really makes
  # (all cases in one compiled function, each with its own tag).
  calls = []

  def loss_for(tag):
    def loss(p):
      jax.debug.callback(lambda _: calls.append(tag), p["b"][0])
      return jnp.sum(jnp.sin(p["w"]) ** 2) + jnp.sum(p["b"] ** 2)

    return loss

  params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
  cases = [
      (mezo(1e-3, key=0), 2),
      (mezo(1e-3, key=0, num_probes=3, momentum=0.9), 6),
      (spsa(0.1, key=0, num_probes=2), 4),
      (two_point_gradient(key=0, num_probes=3, difference="forward"), 4),
      (deepzero(0.1, key=0, density=0.25), 1 + 3 + 1),  # round(0.25 * 12) = 3, max(1, round(0.75)) = 1
      (deepzero(0.1, key=0, density={"w": 0.5, "b": 1.0}), 1 + 6 + 3),
  ]
  states = [tx.init(params) for tx, _ in cases]
  assert [function_evals_per_step(s) for s in states] == [n for _, n in cases]
  step = jax.jit(lambda states: [tx.update(None, s, params, obj_fn=loss_for(i))[1]
                                 for i, ((tx, _), s) in enumerate(zip(cases, states))])
  new_states = jax.block_until_ready(step(states))
  jax.effects_barrier()
  assert [calls.count(i) for i in range(len(cases))] == [n for _, n in cases]
  # The count is constant across steps; forward gradients count their jvp passes; a plain
  # optimizer has no estimator (None); a chain sums its estimators; inject_hyperparams works.
  assert [function_evals_per_step(s) for s in new_states] == [n for _, n in cases]
  assert function_evals_per_step(forward_gradient_sgd(0.1, key=0, num_tangents=3).init(params)) == 3
  assert function_evals_per_step(optax.adam(1e-3).init(params)) is None
  both = optax.chain(two_point_gradient(key=0), coordinate_gradient(key=1, density=1.0))
  assert function_evals_per_step(both.init(params)) == 2 + 16
  injected = optax.inject_hyperparams(mezo, static_args=("key", "num_probes"))(learning_rate=0.1, key=0, num_probes=4)
  assert function_evals_per_step(injected.init(params)) == 8


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: forward_gradient(key=0, num_tangents=0), "forward_gradient: num_tangents must be an integer >= 1"),
        (lambda: forward_gradient(key=0, distribution="uniform"), "distribution must be one of"),
        (lambda: two_point_gradient(key=0, eps=0.0), "two_point_gradient: eps must be > 0"),
        (lambda: two_point_gradient(key=0, difference="backward"), "difference must be one of"),
        (lambda: mezo(-1.0, key=0), "learning_rate"),
        (lambda: mezo(0.1, key=0, num_probes=1.5), "num_probes"),
        (lambda: spsa(0.1, key=0, alpha=-0.6), "spsa: alpha must be >= 0"),
        (lambda: spsa(0.1, eps=-1.0, key=0), "spsa: eps must be > 0"),
        (lambda: deepzero(0.1, key=0, density=0.0), "density must be in \\(0, 1\\]"),
        (lambda: deepzero(0.1, key=0, density={"w": 1.5}), "density must be in"),
        (lambda: deepzero(0.1, mu=0.0, key=0), "mu must be > 0"),
        (lambda: coordinate_gradient(key=0, regenerate_every=0), "regenerate_every"),
        (lambda: coordinate_gradient(key=0, leaf_groups=0), "leaf_groups"),
        (lambda: forward_gradient_sgd(0.1, momentum=1.0, key=0), "momentum"),
    ],
)
def test_bad_hyperparameters_raise_value_error(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_missing_obj_fn_and_bad_key_raise_type_error():
  params = {"w": jnp.zeros(3)}
  for tx in (forward_gradient(key=0), two_point_gradient(key=0), coordinate_gradient(key=0), mezo(0.1, key=0)):
    with pytest.raises(TypeError, match="obj_fn="):
      tx.update(params, tx.init(params), params)
    with pytest.raises(TypeError, match="params="):
      tx.update(None, tx.init(params), None, obj_fn=lambda p: 0.0)
  with pytest.raises(TypeError, match="value_and_jvp_fn="):
    forward_gradient(key=0).update(None, forward_gradient(key=0).init(params), params)
  with pytest.raises(TypeError, match="obj_fn="):
    forward_gradient_estimate(None, params, 0)
  with pytest.raises(TypeError, match="key must be an int seed or a PRNG key"):
    forward_gradient(key="seed").init(params)
