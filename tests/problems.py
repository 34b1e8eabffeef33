"""The zoo of test problems shared by the contract suite and the per-family tests."""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
  """A deterministic objective with a known minimum value (0 for all problems here).

  A classification problem also has ``logits`` (params -> logits of shape ``(examples,
  classes)``), and its loss is the mean KL divergence of ``softmax(logits)`` from fixed target
  distributions: softmax cross-entropy less the targets' entropy, so its Gauss-Newton matrix is
  that of cross-entropy and the minimum is 0 where the model reproduces the targets.
  """

  name: str
  loss: Callable[[Any], jax.Array]
  init: Callable[[Any], Any]  # dtype -> initial params
  logits: Callable[[Any], jax.Array] | None = None


def _quadratic() -> Problem:
  rng = np.random.default_rng(0)
  dw = rng.uniform(0.5, 4.0, (4, 3))
  db = rng.uniform(0.5, 4.0, (3,))
  tw = rng.standard_normal((4, 3))
  tb = rng.standard_normal((3,))

  def loss(p):
    w, b = p["w"], p["b"]
    return 0.5 * jnp.sum(dw * (w - tw.astype(w.dtype)) ** 2) + 0.5 * jnp.sum(
        db * (b - tb.astype(b.dtype)) ** 2
    )

  def init(dtype=jnp.float32):
    return {"w": jnp.zeros((4, 3), dtype), "b": jnp.zeros((3,), dtype)}

  return Problem("quadratic", loss, init)


def _rosenbrock() -> Problem:
  def loss(p):
    x = p["x"]
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

  def init(dtype=jnp.float32):
    return {"x": jnp.asarray([-1.2, 1.0], dtype)}

  return Problem("rosenbrock", loss, init)


def _mean_kl(targets: np.ndarray, logits: jax.Array) -> jax.Array:
  """Mean over examples of KL(targets || softmax(logits)); targets: (examples, classes), all > 0."""
  q = targets.astype(logits.dtype)
  entropy = np.sum(targets * np.log(targets), axis=-1).astype(logits.dtype)
  return jnp.mean(entropy - jnp.sum(q * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def _softmax_regression() -> Problem:
  """Softmax regression (4 features, 3 classes, 32 examples) onto a teacher of the same form.

  The classification counterpart of the quadratic (same parameter tree): smooth, convex, with
  feature scales from 0.5 to 2 and a singular direction (a constant added to every class).
  """
  rng = np.random.default_rng(1)
  x = rng.standard_normal((32, 4)) * np.asarray([0.5, 1.0, 1.5, 2.0])
  tw = rng.standard_normal((4, 3))
  tb = rng.standard_normal((3,))
  z = x @ tw + tb
  targets = np.exp(z - z.max(-1, keepdims=True))
  targets /= targets.sum(-1, keepdims=True)

  def logits(p):
    w, b = p["w"], p["b"]
    return x.astype(w.dtype) @ w + b

  def init(dtype=jnp.float32):
    return {"w": jnp.zeros((4, 3), dtype), "b": jnp.zeros((3,), dtype)}

  return Problem("softmax_regression", lambda p: _mean_kl(targets, logits(p)), init, logits)


def _softmax_rosenbrock() -> Problem:
  """Rosenbrock's valley as classification: two binary examples with logits 10(y - x^2) and 1 - x.

  The classification counterpart of Rosenbrock (same parameter tree and start): each target is
  (1/2, 1/2), so the minimum 0 is at (1, 1), and near the valley the loss is Rosenbrock / 16; far
  from it the loss grows linearly, not quartically.
  """
  targets = np.full((2, 2), 0.5)

  def logits(p):
    x = p["x"]
    residuals = jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])
    return jnp.stack([residuals, jnp.zeros_like(residuals)], axis=-1)

  def init(dtype=jnp.float32):
    return {"x": jnp.asarray([-1.2, 1.0], dtype)}

  return Problem("softmax_rosenbrock", lambda p: _mean_kl(targets, logits(p)), init, logits)


QUADRATIC = _quadratic()
ROSENBROCK = _rosenbrock()
PROBLEMS = (QUADRATIC, ROSENBROCK)

SOFTMAX_REGRESSION = _softmax_regression()
SOFTMAX_ROSENBROCK = _softmax_rosenbrock()
# Entries that need the model's logits (extra input "logits_fn", e.g. Sophia-G) run each problem's
# classification counterpart: the same parameter tree, a loss that is softmax cross-entropy.
WITH_LOGITS = {QUADRATIC.name: SOFTMAX_REGRESSION, ROSENBROCK.name: SOFTMAX_ROSENBROCK}
