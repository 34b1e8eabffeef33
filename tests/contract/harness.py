"""Drives any registered optimizer through a problem: one loop for every entry of the registry."""

from typing import Any

import jax
import jax.numpy as jnp
import optax

import gradtx
from tests.problems import WITH_LOGITS, Problem

CONVERGENCE_STEPS = 3000
# Final loss as a fraction of the initial loss that counts as converged.
CONVERGENCE_FACTOR = {"quadratic": 1e-3, "rosenbrock": 1e-2, "softmax_regression": 1e-3, "softmax_rosenbrock": 1e-2}


def problem_for(spec: gradtx.OptimizerSpec, problem: Problem) -> Problem:
  """``problem``, or its classification counterpart for entries that need the model's logits."""
  if "logits_fn" in spec.extra_inputs and problem.logits is None:
    return WITH_LOGITS[problem.name]
  return problem


def extra_args(spec: gradtx.OptimizerSpec, problem: Problem, params: Any) -> dict:
  return gradtx.build_extra_args(spec.extra_inputs, problem.loss, params, logits_fn=problem.logits)


def step(spec: gradtx.OptimizerSpec, tx: optax.GradientTransformation, problem: Problem, params, state):
  """One training step: gradient, extra inputs, update, apply."""
  grads = jax.grad(problem.loss)(params)
  updates, state = tx.update(grads, state, params, **extra_args(spec, problem, params))
  return optax.apply_updates(params, updates), state, updates


def run_scan(spec, tx, problem: Problem, steps: int, dtype=jnp.float32):
  """Final params, final state and the loss after every step, in one compiled scan."""
  params = problem.init(dtype)

  def body(carry, _):
    p, s = carry
    p, s, _ = step(spec, tx, problem, p, s)
    return (p, s), problem.loss(p)

  @jax.jit
  def run(p):
    return jax.lax.scan(body, (p, tx.init(p)), None, length=steps)

  (params, state), losses = run(params)
  return params, state, losses
