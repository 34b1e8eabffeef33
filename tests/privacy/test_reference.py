"""DP-SGD and DP-Adam vs the float64 NumPy references, 60 steps, noise included.

The noise does not depend on the data, so it is read off a twin ``dp_aggregate`` with the same key
fed zero gradients (``sigma C z / D``) and handed to the reference as ``z``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.privacy as gp
from tests.reference import privacy_ref

STEPS = 60


def least_squares():
  rng = np.random.default_rng(1)
  x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
  init = {"w": rng.standard_normal((5, 3)) * 0.5, "b": rng.standard_normal(3) * 0.5}

  def loss(p, xi, yi):
    return 0.5 * jnp.sum((xi @ p["w"] + p["b"] - yi) ** 2)

  jax_pe = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
  return (lambda p: jax_pe(p, x, y)), privacy_ref.per_example_least_squares(x, y), init


def softmax():
  rng = np.random.default_rng(2)
  x, labels = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
  init = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}

  def loss(p, xi, li):
    return -jax.nn.log_softmax(xi @ p["w"] + p["b"])[li]

  jax_pe = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))
  return (lambda p: jax_pe(p, x, labels)), privacy_ref.per_example_softmax(x, labels, 3), init


PROBLEMS = {"least_squares": least_squares, "softmax": softmax}
MASK = np.array([True, True, False, True, True, True, False, True])

CASES = {
    "dp_sgd_default": (
        lambda: gp.dp_sgd(0.05, 1.0, 0.5, key=0, expected_batch_size=8.0),
        lambda: privacy_ref.DpSgd(0.05), dict(l2_clip=1.0, sigma=0.5, d=8.0, mask=None),
    ),
    "dp_sgd_momentum_nesterov_wd_actual_mask": (
        lambda: gp.dp_sgd(0.03, 0.7, 1.2, key=5, momentum=0.9, nesterov=True, weight_decay=1e-2,
                          denominator="actual"),
        lambda: privacy_ref.DpSgd(0.03, 0.9, True, 1e-2), dict(l2_clip=0.7, sigma=1.2, d=None, mask=MASK),
    ),
    "dp_adam_default": (
        lambda: gp.dp_adam(1e-2, 1.0, 0.5, key=1, expected_batch_size=8.0),
        lambda: privacy_ref.DpAdam(1e-2), dict(l2_clip=1.0, sigma=0.5, d=8.0, mask=None),
    ),
    "dp_adam_wd_betas_mask": (
        lambda: gp.dp_adam(3e-3, 0.3, 2.0, key=2, expected_batch_size=6.0, b1=0.8, b2=0.99, eps=1e-6,
                           weight_decay=0.1),
        lambda: privacy_ref.DpAdam(3e-3, 0.8, 0.99, 1e-6, 0.1), dict(l2_clip=0.3, sigma=2.0, d=6.0, mask=MASK),
    ),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case, problem):
  make_tx, make_ref, hp = CASES[case]
  pe_fn, ref_pe_fn, init = PROBLEMS[problem]()
  tx, ref = make_tx(), make_ref()
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  mask = None if hp["mask"] is None else jnp.asarray(hp["mask"])
  # the twin: same key, zero gradients, no clipping of zeros, divisor 1 -> sigma C z
  key = tx.init(params)[0].key
  twin = gp.dp_aggregate(hp["l2_clip"], hp["sigma"], key=key, expected_batch_size=1.0)

  @jax.jit
  def step(p, s, ts):
    pe = pe_fn(p)
    u, s = tx.update(jax.tree.map(lambda g: g[0], pe), s, p, per_example_grads=pe, example_mask=mask)
    zeros = jax.tree.map(jnp.zeros_like, pe)
    noise, ts = twin.update(jax.tree.map(lambda g: g[0], pe), ts, per_example_grads=zeros)
    return optax.apply_updates(p, u), s, ts, noise

  state, twin_state = tx.init(params), twin.init(params)
  for t in range(STEPS):
    params, state, twin_state, noise = step(params, state, twin_state)
    z = {k: np.asarray(v) / (hp["sigma"] * hp["l2_clip"]) for k, v in noise.items()}
    gbar = privacy_ref.dp_aggregate(ref_pe_fn(ref_params), z, hp["l2_clip"], hp["sigma"], hp["d"], hp["mask"])
    ref_params = ref.step(ref_params, gbar)
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=1e-10, atol=1e-13)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None
  assert int(gp.dp_steps(state)) == STEPS
