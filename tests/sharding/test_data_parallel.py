"""Data parallelism in ``jax.shard_map``: the same probe and noise where they must be, independent noise where needed.

Eight simulated devices on a mesh axis "data"; each holds one shard of the batch, the parameters
and the optimizer state are replicated, and the update runs on every device.

Two recipes average the gradient (and whatever an estimator differentiates) over the axis, and
which one is right depends on ``check_vma``:

* ``check_vma=True`` (``jax.shard_map``'s default): differentiating a device's local loss with
  respect to replicated parameters already *sums* the gradient over the axis (autodiff inserts
  the psum), and ``lax.pmean`` of that replicated sum is a no-op. The mean gradient is
  ``grad(lambda p: lax.pmean(local_loss(p), "data"))``; the same loss is the ``obj_fn``.
* ``check_vma=False``: gradients of the local loss are per-device, and
  ``lax.pmean(grad(local_loss))`` averages them; the curvature factories' ``axis_name=`` option
  averages their Hutchinson estimates the same way.

Runs in its own process (`make test-sharding`) with 8 simulated CPU devices, in float64 (the
test session enables x64) so that a sharded run, which sums in another order, still agrees with
the single-device run to ~1e-12, while a wrong probe, noise or reduction shows as O(1).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import gradtx

pytestmark = pytest.mark.sharding

AXIS = "data"
DEVICES = 8
STEPS = 4
BATCH = 64  # 8 examples per device

# Every entry that draws random probes through an ``obj_fn`` and has an ``axis_name=`` option.
HUTCHINSON = {"adahessian": {}, "sophia_h": {"update_interval": 2}, "oasis": {}}
# Noise injected into the update (Langevin dynamics); temperature 1 so the noise dominates.
NOISE = {"sgld": {"temperature": 1.0}, "sghmc": {"temperature": 1.0}, "adam_langevin": {"temperature": 1.0},
         "entropy_sgd": {"thermal_noise": 1e-2}}
OVERRIDES = {**HUTCHINSON, **NOISE}
ESTIMATORS = [n for n in gradtx.list_optimizers() if gradtx.get_spec(n).family == "estimators"]


def _mesh():
  return Mesh(np.asarray(jax.devices()[:DEVICES]), (AXIS,))


def _problem():
  rng = np.random.default_rng(0)
  batch = (jnp.asarray(rng.standard_normal((BATCH, 6))), jnp.asarray(rng.standard_normal((BATCH, 3))))
  params = {"w": jnp.asarray(0.3 * rng.standard_normal((6, 3))), "b": jnp.full((3,), 0.1)}
  return params, batch


def _loss(p, batch):
  """Mean over examples, so the mean of equal shards' losses is the full batch's loss."""
  x, y = batch
  return jnp.mean(jnp.sum((jnp.tanh(x @ p["w"] + p["b"]) - y) ** 2, axis=-1))


def _train(tx, extra_inputs, params, batch, mode):
  """``STEPS`` steps; ``mode`` "single" (one device, full batch), "checked" or "axis_name".

  "checked": ``check_vma=True``, the loss ``pmean``-ed inside (the mean-gradient recipe).
  "axis_name": ``check_vma=False``, gradients ``pmean``-ed after differentiation; curvature
  entries get ``axis_name="data"`` from the caller. Sharded modes return every device's final
  params and state stacked on a leading axis of 8, so replicas can be compared.
  """

  def loop(p, s, b):
    def step(_, carry):
      p, s = carry
      if mode == "checked":
        obj = lambda q: lax.pmean(_loss(q, b), AXIS)
      else:
        obj = functools.partial(_loss, batch=b)
      g = jax.grad(obj)(p)
      if mode == "axis_name":
        g = lax.pmean(g, AXIS)
      u, s = tx.update(g, s, p, **gradtx.build_extra_args(extra_inputs, obj, p))
      return optax.apply_updates(p, u), s

    out = lax.fori_loop(0, STEPS, step, (p, s))
    if mode == "single":
      return out
    if mode == "checked":  # replicated values must be marked varying before they are stacked
      out = jax.tree.map(lambda a: lax.pcast(a, AXIS, to="varying"), out)
    return jax.tree.map(lambda a: a[None], out)

  state = tx.init(params)
  if mode == "single":
    return jax.jit(loop)(params, state, batch)
  sharded = jax.shard_map(
      loop, mesh=_mesh(), in_specs=(P(), P(), P(AXIS)), out_specs=P(AXIS), check_vma=mode == "checked"
  )
  return jax.jit(sharded)(params, state, batch)


@functools.cache
def _single_device(name):
  """The single-device run of a registry entry with its overrides, shared by the tests of one entry."""
  params, batch = _problem()
  if name == "add_annealed_noise":
    tx, extra = optax.chain(gradtx.noise.add_annealed_noise(eta=1.0, key=0), optax.sgd(1e-2)), ()
  elif name == "noiseless":
    tx, extra = optax.sgd(1e-2), ()
  else:
    spec = gradtx.get_spec(name)
    tx, extra = spec.build(**OVERRIDES.get(name, {})), spec.extra_inputs
  return tx, extra, jax.device_get(_train(tx, extra, params, batch, "single"))


def _assert_replicated_and_equal(stacked, single, name):
  """Every device holds bit-identical params and state, and they equal the single-device run."""
  first = jax.tree.map(lambda a: a[0], stacked)
  for d in range(1, DEVICES):
    chex.assert_trees_all_equal(jax.tree.map(lambda a, d=d: a[d], stacked), first, custom_message=f"{name}: device {d}")
  chex.assert_trees_all_close(first, single, rtol=1e-8, atol=1e-10, custom_message=name)


# (a) The same probe and the same noise on every device.


@pytest.mark.parametrize("mode", ["axis_name", "checked"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"dp-{n}")) for n in HUTCHINSON])
def test_hutchinson_probes_are_shared_and_estimates_averaged(name, mode):
  """Replicated params after several steps, equal to one device on the full batch.

  Both need every device to draw the same probe z: the average of the devices' z * (H_d z) is
  z * (H z) of the full batch only for a shared z; per-device probes would give another estimate.
  """
  spec = gradtx.get_spec(name)
  params, batch = _problem()
  _, _, single = _single_device(name)
  axis = {"axis_name": AXIS} if mode == "axis_name" else {}
  stacked = _train(spec.build(**HUTCHINSON[name], **axis), spec.extra_inputs, params, batch, mode)
  _assert_replicated_and_equal(stacked, single, name)


def test_without_axis_name_hutchinson_replicas_diverge():
  """Control: per-device estimates that are not averaged leave the replicas apart (the check above can fail)."""
  spec = gradtx.get_spec("adahessian")
  params, batch = _problem()
  stacked = _train(spec.build(), spec.extra_inputs, params, batch, "axis_name")
  assert not np.allclose(stacked[0]["w"][0], stacked[0]["w"][1], rtol=1e-3)


@pytest.mark.parametrize("estimator", ["hutchinson", "gauss_newton"])
def test_axis_name_estimates_under_default_shard_map(estimator):
  """With axis_name and each device's local loss, the estimate is the full batch's in both modes.

  Under shard_map's default check_vma=True, autodiff of a local loss w.r.t. replicated params
  already sums over the axis; the estimators differentiate the axis-averaged loss, which is
  right there, under check_vma=False and under vmap alike (a regression test: they were 8x and
  64x off before).
  """
  params, batch = _problem()
  key = jax.random.PRNGKey(1)

  def sharded(b):
    if estimator == "hutchinson":
      return gradtx.curvature.estimate_hessian_diagonal(
          functools.partial(_loss, batch=b), params, key, probe="gaussian", axis_name=AXIS
      )
    logits_fn = lambda p: b[0] @ p["w"] + p["b"]
    return gradtx.curvature.estimate_gauss_newton_diagonal(logits_fn, params, key, axis_name=AXIS)

  got = jax.jit(jax.shard_map(sharded, mesh=_mesh(), in_specs=P(AXIS), out_specs=P()))(batch)
  # The full batch's estimate: unchecked shard_map (the tests around this one check it).
  want = jax.jit(jax.shard_map(sharded, mesh=_mesh(), in_specs=P(AXIS), out_specs=P(), check_vma=False))(batch)
  chex.assert_trees_all_close(got, want, rtol=1e-8)


def test_gauss_newton_labels_are_independent_per_device():
  """Sophia-G's sampled labels: device d draws from fold_in(key, d), and the estimate is the full batch's.

  Independent labels are what make the averaged estimate that of the global batch; with one key
  on every device, devices with equal logits would draw equal labels.
  """
  params, batch = _problem()
  key = jax.random.PRNGKey(2)
  x = batch[0]

  def logits_fn(p, bx):
    return bx @ p["w"] + p["b"]

  got = jax.jit(jax.shard_map(
      lambda bx: gradtx.curvature.estimate_gauss_newton_diagonal(
          functools.partial(logits_fn, bx=bx), params, key, axis_name=AXIS),
      mesh=_mesh(), in_specs=P(AXIS), out_specs=P(), check_vma=False,
  ))(x)

  def reference(key_of_device):
    z = logits_fn(params, x)
    shards = z.reshape(DEVICES, BATCH // DEVICES, -1)
    labels = jnp.concatenate([jax.random.categorical(key_of_device(d), shards[d]) for d in range(DEVICES)])
    dlogits = (jax.nn.softmax(z) - jax.nn.one_hot(labels, z.shape[-1])) / BATCH
    (g,) = jax.vjp(functools.partial(logits_fn, bx=x), params)[1](dlogits)
    return jax.tree.map(lambda a: BATCH * a * a, g)

  chex.assert_trees_all_close(got, reference(lambda d: jax.random.fold_in(key, d)), rtol=1e-10)
  same_key = reference(lambda d: jax.random.fold_in(key, 0))
  assert not np.allclose(got["w"], same_key["w"], rtol=1e-3)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_probes_are_shared(name):
  """Forward-gradient and zeroth-order estimators have no axis_name: the pmean-ed loss as obj_fn suffices.

  Their probes come from the replicated state key, so every device perturbs along the same
  direction and evaluates the global loss there: the same update as one device.
  """
  params, batch = _problem()
  tx, extra, single = _single_device(name)
  stacked = _train(tx, extra, params, batch, "checked")
  _assert_replicated_and_equal(stacked, single, name)


@pytest.mark.parametrize("name", [*NOISE, "add_annealed_noise"])
def test_injected_noise_is_the_same_on_every_device(name):
  """Langevin and annealed-noise updates draw from the replicated state key: replicas stay identical."""
  params, batch = _problem()
  tx, extra, single = _single_device(name)
  stacked = _train(tx, extra, params, batch, "checked")
  _assert_replicated_and_equal(stacked, single, name)
  if name == "add_annealed_noise":  # the noise is not negligible: the noiseless run ends elsewhere
    assert not np.allclose(stacked[0]["w"][0], _single_device("noiseless")[2][0]["w"], atol=1e-3)


# (b) Independent noise where each device noises its own part of a sum: DP-SGD.

DP_CLIP, DP_SIGMA = 1.0, 0.7
DP_SHAPE = (64, 64)  # 4096 noise coordinates per device for the statistics


def _dp_noise(per_device_key: bool):
  """Each device clips its 8 examples with dp_aggregate; returns every device's noise (in sum units) and the psum.

  With ``per_device_key`` the transformation is built inside the mapped function with
  ``key=fold_in(key, axis_index)`` and ``noise_multiplier=sigma/sqrt(8)``, so the psum of the
  devices' sums carries N(0, sigma^2 C^2) noise, the single-device mechanism's. Without it, the
  state (and its key) is replicated, the way an optimizer state is in data parallelism.
  """
  rng = np.random.default_rng(3)
  per_example = jnp.asarray(rng.standard_normal((BATCH, *DP_SHAPE)) * 0.02)  # norms ~1.3, some clip
  template = jnp.zeros(DP_SHAPE)
  key = jax.random.PRNGKey(4)

  def build(sigma):
    k = jax.random.fold_in(key, lax.axis_index(AXIS)) if per_device_key else key
    scale = 1.0 / np.sqrt(DEVICES) if per_device_key else 1.0
    return gradtx.privacy.dp_aggregate(DP_CLIP, sigma * scale, key=k, expected_batch_size=BATCH)

  def device(g):
    noisy, clean = (
        build(sigma).update(template, build(sigma).init(template), per_example_grads=g)[0]
        for sigma in (DP_SIGMA, 0.0)
    )
    noise = (noisy - clean) * BATCH
    return noise[None], lax.psum(noisy, AXIS), lax.psum(clean, AXIS)

  f = jax.shard_map(device, mesh=_mesh(), in_specs=P(AXIS), out_specs=(P(AXIS), P(), P()))
  noise, total, clean = jax.jit(f)(per_example)
  # The clipped part is the full batch's, as on one device.
  one = gradtx.privacy.dp_aggregate(DP_CLIP, 0.0, key=0, expected_batch_size=BATCH)
  chex.assert_trees_all_close(clean, one.update(template, one.init(template), per_example_grads=per_example)[0],
                              rtol=1e-10)
  return np.asarray(noise).reshape(DEVICES, -1), np.asarray(total - clean).reshape(-1) * BATCH


def test_dp_noise_with_replicated_state_is_the_same_on_every_device():
  """What happens today: a replicated dp_aggregate state noises every device's sum with the same draw.

  The psum then carries 8 * N(0, sigma^2 C^2), variance 64x the mechanism's: private, but
  over-noised. gradtx has no per-device option (see the next test for the construction by hand).
  """
  noise, summed = _dp_noise(per_device_key=False)
  for d in range(1, DEVICES):  # the same draw (each device's clipped sum rounds differently)
    np.testing.assert_allclose(noise[d], noise[0], rtol=1e-10, atol=1e-12)
  # 4096 coordinates: the sample variance is within 10% of the truth with ~4.5 sigma confidence.
  assert np.var(summed) / (DP_CLIP * DP_SIGMA) ** 2 == pytest.approx(DEVICES**2, rel=0.1)


def test_dp_noise_with_per_device_keys_is_independent_with_the_promised_variance():
  """Per-device keys (fold_in of axis_index) and sigma/sqrt(8): independent draws, psum ~ N(0, sigma^2 C^2).

  Statistics over 4096 coordinates, fixed seeds: pairwise correlations are within 0.1 (6 standard
  errors of 1/64) and the summed noise's variance within 10% of sigma^2 C^2 (4.5 standard errors).
  """
  noise, summed = _dp_noise(per_device_key=True)
  corr = np.corrcoef(noise)
  assert np.max(np.abs(corr - np.eye(DEVICES))) < 0.1
  np.testing.assert_allclose(np.var(noise, axis=1) / (DP_CLIP * DP_SIGMA) ** 2, 1.0 / DEVICES, rtol=0.1)
  assert np.var(summed) / (DP_CLIP * DP_SIGMA) ** 2 == pytest.approx(1.0, rel=0.1)
  assert abs(np.mean(summed)) < 5 * DP_CLIP * DP_SIGMA / np.sqrt(summed.size)


def test_per_example_gradients_need_varying_params_under_default_shard_map():
  """What happens today: with replicated params, a device's "per-example" gradients are sums over devices.

  Under check_vma=True, autodiff w.r.t. replicated params psums: row i of every device is the sum
  of the i-th examples of all 8 devices, so clipping would bound the wrong vectors. Marking the
  params varying first (``lax.pcast(p, "data", to="varying")``) gives each device its own rows.
  """
  params, batch = _problem()
  want = gradtx.clipping.per_example_gradients(_loss, params, batch)

  def per_device(b, vary):
    p = jax.tree.map(lambda a: lax.pcast(a, AXIS, to="varying"), params) if vary else params
    g = gradtx.clipping.per_example_gradients(_loss, p, b)
    return g if vary else jax.tree.map(lambda a: lax.pcast(a, AXIS, to="varying"), g)

  run = {v: jax.jit(jax.shard_map(functools.partial(per_device, vary=v), mesh=_mesh(), in_specs=P(AXIS),
                                  out_specs=P(AXIS)))(batch) for v in (False, True)}
  chex.assert_trees_all_close(run[True], want, rtol=1e-10)
  summed = jax.tree.map(lambda a: jnp.tile(a.reshape(DEVICES, BATCH // DEVICES, *a.shape[1:]).sum(0),
                                           (DEVICES,) + (1,) * (a.ndim - 1)), want)
  chex.assert_trees_all_close(run[False], summed, rtol=1e-10)


# (c) DP aggregation with axis_name: the shards' clipped sums are psum-ed and noised once.


def _dp_factory(name, sigma, **kw):
  if name == "dp_aggregate":
    return gradtx.privacy.dp_aggregate(DP_CLIP, sigma, **kw)
  if name == "dp_tree_aggregate":
    return gradtx.privacy.dp_tree_aggregate(DP_CLIP, sigma, batch_size=kw.pop("expected_batch_size"), **kw)
  return gradtx.privacy.dp_banded_aggregate(DP_CLIP, sigma, coefficients=(1.0, 0.5, -0.2), **kw)


def _dp_sharded(tx, template, per_example, mask, steps, checked):
  """``steps`` updates under shard_map, each device passing its 8 rows; every device's outputs, stacked.

  ``checked``: check_vma=True and out_specs=P(), so JAX itself proves the outputs replicated;
  otherwise check_vma=False and the devices' outputs are stacked on a leading axis of 8.
  """

  def loop(s, g, m):
    outs = []
    for _ in range(steps):
      u, s = tx.update(template, s, per_example_grads=g, example_mask=m)
      outs.append(u)
    out = (jax.tree.map(lambda *u: jnp.stack(u), *outs), s)
    return out if checked else jax.tree.map(lambda a: a[None], out)

  out_specs = P() if checked else P(AXIS)
  f = jax.shard_map(loop, mesh=_mesh(), in_specs=(P(), P(AXIS), P(AXIS)), out_specs=out_specs, check_vma=checked)
  out = jax.jit(f)(tx.init(template), per_example, mask)
  return jax.tree.map(lambda a: a[None], out) if checked else out


@pytest.mark.parametrize(("name", "denominator", "checked"), [
    ("dp_aggregate", "expected", True), ("dp_aggregate", "actual", False),
    ("dp_banded_aggregate", "expected", False), ("dp_banded_aggregate", "actual", True),
    ("dp_tree_aggregate", "expected", True),
])
def test_dp_axis_name_equals_one_device_on_the_whole_batch(name, denominator, checked):
  """With axis_name and a replicated state, 8 shards give the one-device update of the whole batch.

  The noise is drawn once from the replicated key (bit-identical on every device), the clipped
  sums and, for denominator="actual", the counts of real examples are psum-ed. 3 steps, so the
  key advances and the banded history is used; float64, only the summation order differs.
  """
  params, batch = _problem()
  per_example = gradtx.clipping.per_example_gradients(_loss, params, batch)
  per_example = jax.tree.map(lambda g: g * 3.0, per_example)  # some examples clip
  mask = jnp.asarray(np.arange(BATCH) % 7 != 3)  # padding on every device
  kw = dict(expected_batch_size=float(BATCH)) if denominator == "expected" else dict(denominator="actual")
  sharded = _dp_factory(name, DP_SIGMA, key=5, axis_name=AXIS, **kw)
  stacked = _dp_sharded(sharded, params, per_example, mask, 3, checked)
  one = _dp_factory(name, DP_SIGMA, key=5, **kw)

  @jax.jit
  def single_device(s):
    want = []
    for _ in range(3):
      u, s = one.update(params, s, per_example_grads=per_example, example_mask=mask)
      want.append(u)
    return jax.tree.map(lambda *u: jnp.stack(u), *want), s

  single = single_device(one.init(params))
  first = jax.tree.map(lambda a: a[0], stacked)
  for d in range(1, stacked[0]["w"].shape[0]):
    chex.assert_trees_all_equal(jax.tree.map(lambda a, d=d: a[d], stacked), first, custom_message=f"device {d}")
  chex.assert_trees_all_close(first, single, rtol=1e-10, atol=1e-13)


def test_dp_axis_name_noise_std_is_sigma_clip_over_the_global_batch():
  """Zero gradients: the update is pure noise with std sigma C / B for the global B = 64.

  Not sqrt(8) (independent per-device draws) nor 8 (a replicated draw psum-ed) times that.
  4096 coordinates: the sample std has relative sd 1/sqrt(2 * 4096) = 1.1%; 5% is 4.5 sd
  (two-sided confidence > 1 - 1e-5); the mean is within 5 sd of 0.
  """
  template = jnp.zeros(DP_SHAPE)
  zeros = jnp.zeros((BATCH, *DP_SHAPE))
  tx = gradtx.privacy.dp_aggregate(DP_CLIP, DP_SIGMA, key=6, expected_batch_size=BATCH, axis_name=AXIS)
  u, _ = _dp_sharded(tx, template, zeros, jnp.ones(BATCH, bool), 1, checked=False)
  for d in range(1, DEVICES):
    np.testing.assert_array_equal(u[d], u[0])
  z = np.asarray(u[0]).ravel()
  expected = DP_SIGMA * DP_CLIP / BATCH
  assert abs(z.std() / expected - 1) < 0.05
  assert abs(z.mean()) < 5 * expected / np.sqrt(z.size)
