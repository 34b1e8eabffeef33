"""Clipping: illegal hyperparameters and missing inputs give errors that name the argument."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx.clipping as gc
from gradtx._src.optimizers.clipping import clipped_adagrad


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: gc.clip_by_global_norm(-1.0), "max_norm"),
        (lambda: gc.clip_by_global_norm(0.0), "max_norm"),
        (lambda: gc.clip_by_global_norm(np.nan), "max_norm"),
        (lambda: gc.clip_by_value(-0.5), "max_value"),
        (lambda: gc.clip_by_block_norm(-2.0), "max_norm"),
        (lambda: gc.adaptive_grad_clip(-0.01), "clipping"),
        (lambda: gc.adaptive_grad_clip(0.01, eps=-1.0), "eps"),
        (lambda: gc.clip_by_quantile(1.5), "quantile"),
        (lambda: gc.clip_by_quantile(0.5, -0.1), "step_size"),
        (lambda: gc.clip_by_quantile(0.5, 0.1, initial_threshold=-1.0), "initial_threshold"),
        (lambda: gc.per_example_clip(-1.0), "max_norm"),
        (lambda: gc.per_example_clip(1.0, aggregate="max"), "aggregate"),
        (lambda: clipped_adagrad(1.0, max_norm=-1.0), "max_norm"),
        (lambda: clipped_adagrad(1.0, delayed=True), "initial_accumulator_value"),
        (lambda: clipped_adagrad(1.0, delayed=True, coordinatewise=True, initial_accumulator_value=1.0), "delayed"),
    ],
)
def test_illegal_hyperparameters(make, name):
  with pytest.raises(ValueError, match=name):
    make()


def test_missing_inputs_are_named():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  tx = gc.per_example_clip(1.0)
  with pytest.raises(TypeError, match="per_example_grads="):
    tx.update(params, tx.init(params), params)
  tx = gc.adaptive_grad_clip()
  with pytest.raises(TypeError, match="params="):
    tx.update(params, tx.init(params))


def test_mismatched_per_example_grads_name_the_leaf():
  params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  tx = gc.per_example_clip(1.0)
  bad = {"w": jnp.ones((4, 3, 2)), "b": jnp.ones((4, 3))}
  with pytest.raises(ValueError, match="'w'"):
    tx.update(params, tx.init(params), params, per_example_grads=bad)
