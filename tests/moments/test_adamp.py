"""AdamP: float64 reference (with and without projection, JAX layouts), invariants, bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.moments.scale_by_adamp import scale_by_adamp
from gradtx._src.optimizers.adam_variants import adamp
from gradtx._src.optimizers.moments import adamw
from tests.moments.adam_variants_util import random_grads, run_updates
from tests.reference import adamp_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS


def _normalized(view):
  """Least squares through weights normalized per output unit ("channel": the last axis) or per
  leaf ("layer"): the loss is scale-invariant in those weights, so AdamP projects them."""
  rng = np.random.default_rng(5)
  x = rng.standard_normal((20, 5))
  xc = rng.standard_normal((20, 2, 2, 2))
  y = rng.standard_normal((20, 3))

  def norm(w):
    axes = tuple(range(w.ndim - 1)) if view == "channel" else None
    return w / jnp.sqrt(jnp.sum(w**2, axis=axes, keepdims=True))

  def loss(p):
    conv = jnp.einsum("nhwi,hwio->no", xc, norm(p["k"]))
    return 0.5 * jnp.mean(jnp.sum((x @ norm(p["w"]) + conv + p["b"] - y) ** 2, axis=1))

  init = {"w": rng.standard_normal((5, 3)), "k": rng.standard_normal((2, 2, 2, 3)),
          "b": rng.standard_normal(3) * 0.5}
  return loss, init


ALL_PROBLEMS = {**PROBLEMS, "channel_invariant": lambda: _normalized("channel"),
                "layer_invariant": lambda: _normalized("layer")}

CASES = {
    "default": (lambda: adamp(0.01), lambda: ref.AdamP(0.01)),
    "custom_wd_nesterov": (
        lambda: adamp(0.02, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1, delta=0.2, wd_ratio=0.5,
                      nesterov=True),
        lambda: ref.AdamP(0.02, b1=0.8, b2=0.99, eps=1e-6, wd=0.1, delta=0.2, wd_ratio=0.5, nesterov=True),
    ),
}


@pytest.mark.parametrize("problem", sorted(ALL_PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = ALL_PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=50)


@pytest.mark.parametrize("view", ["channel", "layer"])
def test_projection_triggers_and_removes_the_radial_component(view):
  loss, init = _normalized(view)
  params = jax.tree.map(jnp.asarray, init)
  g = jax.jit(jax.grad(loss))(params)
  reference = ref.AdamP(0.1)
  reference.step({k: np.asarray(v) for k, v in params.items()}, {k: np.asarray(v) for k, v in g.items()})
  assert reference.projected == {"w": True, "k": True, "b": False}
  (u,) = run_updates(adamp(0.1), [g], params)
  for name in ("w", "k"):
    rows_u = np.moveaxis(np.asarray(u[name]), -1, 0).reshape(3, -1)
    rows_p = np.moveaxis(np.asarray(params[name]), -1, 0).reshape(3, -1)
    if view == "layer":
      rows_u, rows_p = rows_u.reshape(1, -1), rows_p.reshape(1, -1)
    # ~0, not 0: p_hat = p / (||p|| + eps) leaves a radial part of relative size ~eps / ||p||.
    cos = np.sum(rows_u * rows_p, axis=1) / (
        np.linalg.norm(rows_u, axis=1) * np.linalg.norm(rows_p, axis=1))
    np.testing.assert_array_less(np.abs(cos), 1e-7)


def test_equals_adamw_on_vectors_and_on_weights_that_are_not_scale_invariant():
  # 1-D leaves are never projected; a gradient parallel to the weights (cos = 1) is not either.
  params = {"w": jnp.asarray(np.random.default_rng(6).standard_normal((4, 3))), "b": jnp.ones(3)}
  grads = [{"w": s * params["w"], "b": g["b"]}
           for s, g in zip(np.linspace(0.5, 2.0, 10) * (-1.0) ** np.arange(10), random_grads(10, like=params))]
  a = run_updates(adamp(0.01, weight_decay=0.1), grads, params)
  b = run_updates(adamw(0.01, weight_decay=0.1), grads, params)
  chex.assert_trees_all_close(a, b, rtol=1e-12)


def test_projected_weight_decay_uses_wd_ratio():
  loss, init = _normalized("layer")
  params = jax.tree.map(jnp.asarray, init)
  g = jax.jit(jax.grad(loss))(params)
  lr, wd = 0.1, 0.3
  (with_decay,) = run_updates(adamp(lr, weight_decay=wd, wd_ratio=0.25), [g], params)
  (no_decay,) = run_updates(adamp(lr, weight_decay=0.0), [g], params)
  chex.assert_trees_all_close(with_decay["w"] - no_decay["w"], -lr * wd * 0.25 * params["w"], rtol=1e-10)
  chex.assert_trees_all_close(with_decay["b"] - no_decay["b"], -lr * wd * params["b"], rtol=1e-10)


def test_needs_params():
  params = {"w": jnp.ones((2, 2))}
  tx = scale_by_adamp()
  with pytest.raises(TypeError, match="params="):
    tx.update(params, tx.init(params))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b1=1.0), "b1"),
        (dict(b2=-1.0), "b2"),
        (dict(eps=-1.0), "eps"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(delta=-0.1), "delta"),
        (dict(wd_ratio=1.5), "wd_ratio"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    adamp(0.01, **kwargs)
