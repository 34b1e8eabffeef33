"""Run a gradtx transformation and a NumPy reference side by side, comparing every step."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax


def compare_trajectories(tx, reference, loss, init, steps=60, rtol=1e-10, extra_args=None):
  """Step ``tx`` (float64, jitted) and ``reference`` from ``init``; assert params agree each step.

  The gradient oracle for both is ``jax.grad(loss)`` in float64, evaluated at each side's own params.
  ``extra_args(params)`` returns the extra update inputs ``tx`` needs, if any.
  """
  grad = jax.jit(jax.grad(loss))
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  ref_params = {k: np.asarray(v, np.float64) for k, v in init.items()}
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    kwargs = extra_args(p) if extra_args else {}
    u, s = tx.update(grad(p), s, p, **kwargs)
    return optax.apply_updates(p, u), s

  for t in range(steps):
    ref_grads = {k: np.asarray(v) for k, v in grad(ref_params).items()}
    ref_params = reference.step(ref_params, ref_grads)
    params, state = step(params, state)
    try:
      chex.assert_trees_all_close(params, ref_params, rtol=rtol, atol=1e-14)
    except AssertionError as e:
      raise AssertionError(f"step {t + 1}: {e}") from None
  return params
