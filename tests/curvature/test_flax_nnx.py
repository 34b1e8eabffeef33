"""Hessian-based optimizers driven through flax.nnx.Optimizer with obj_fn= as an extra input."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradtx import curvature as cv


@pytest.mark.parametrize("make", [lambda: cv.sophia_h(0.05, weight_decay=0.0, update_interval=2, key=0),
                                  lambda: cv.adahessian(0.1, key=0)])
def test_nnx_optimizer_update_passes_obj_fn(make):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((16, 3)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((16, 2)), jnp.float32)
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, make(), wrt=nnx.Param)
  graphdef, _, rest = nnx.split(model, nnx.Param, ...)

  def loss_of_model(m):
    return jnp.mean((m(x) - y) ** 2)

  def obj_fn(params):  # the loss as a function of the parameter state, batch closed over
    return loss_of_model(nnx.merge(graphdef, params, rest))

  @nnx.jit
  def train_step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_of_model)(model)
    optimizer.update(model, grads, obj_fn=obj_fn)
    return loss

  losses = [float(train_step(model, optimizer)) for _ in range(30)]
  assert np.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]
