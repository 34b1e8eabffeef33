"""The vocabulary of extra ``update`` inputs, and how a training loop builds them.

A transformation that needs more than the gradient takes it as a keyword-only ``update``
argument with one of the names below. Training loops (the contract tests, the demo race, user
code) build them from the loss (and, for ``logits_fn``, the model's output function) with
:func:`build_extra_args`, so every optimizer in the registry can be driven by one loop.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax

EXTRA_INPUTS: dict[str, str] = {
    "obj_fn": "the loss on the current batch as a function of params",
    "grad_fn": "the gradient of the loss on the current batch as a function of params",
    "value": "the loss at the current params on the current batch",
    "per_example_grads": "per-example gradients: every leaf of the gradient with a leading batch axis",
    "logits_fn": "the model's logits on the current batch, shape (..., num_classes), as a function of params",
    "value_and_jvp_fn": "(params, tangent) -> (loss, directional derivative) on the current batch",
    "loss_fn": "the mean loss of a batch, loss_fn(params, batch) -> scalar (with batch=: SAM's m-sharpness)",
    "batch": "the current batch, a tree of arrays with a leading example axis",
}

_LOGITS_FN_EXAMPLE = (
    "build_extra_args(spec.extra_inputs, loss_fn, params, batch, "
    "logits_fn=lambda p, batch: model.apply(p, batch['x']))"
)


def _per_example_grads(loss_fn: Callable[..., jax.Array], params: Any, batch: Any) -> Any:
  def one(example):
    return jax.grad(loss_fn)(params, jax.tree.map(lambda x: x[None], example))

  return jax.vmap(one)(batch)


def build_extra_args(
    names: Iterable[str],
    loss_fn: Callable[..., jax.Array],
    params: Any,
    batch: Any = None,
    *,
    logits_fn: Callable[..., jax.Array] | None = None,
) -> dict[str, Any]:
  """Build the extra ``update`` inputs named in ``names`` for one step.

  Args:
    names: names from :data:`EXTRA_INPUTS`, e.g. ``spec.extra_inputs`` of a registry entry.
    loss_fn: ``loss_fn(params, batch) -> scalar`` (``loss_fn(params)`` when ``batch`` is None).
    params: the current parameters.
    batch: the current batch, a tree whose leaves share a leading example axis, or None.
    logits_fn: ``logits_fn(params, batch) -> logits`` of shape ``(..., num_classes)``
      (``logits_fn(params)`` when ``batch`` is None), the model output whose softmax
      cross-entropy is the loss; needed only for the extra input ``"logits_fn"`` (Sophia-G).

  Returns:
    A dict of keyword arguments to pass to ``update``.

  Raises:
    ValueError: a name is not in :data:`EXTRA_INPUTS`, or ``"logits_fn"`` is named and no
      ``logits_fn`` was given.
  """
  def obj(p):
    return loss_fn(p) if batch is None else loss_fn(p, batch)

  def logits():
    if logits_fn is None:
      raise ValueError(
          "build_extra_args: the extra input 'logits_fn' needs logits_fn=, the model's logits as a "
          f"function of params (and batch), e.g. {_LOGITS_FN_EXAMPLE}."
      )
    return logits_fn if batch is None else (lambda p: logits_fn(p, batch))

  def batched(value):
    def build():
      if batch is None:
        raise ValueError("build_extra_args: the extra inputs 'loss_fn' and 'batch' need a batch, "
                         "e.g. build_extra_args(spec.extra_inputs, loss_fn, params, batch).")
      return value
    return build

  builders = {
      "obj_fn": lambda: obj,
      "value_and_jvp_fn": lambda: lambda p, v: jax.jvp(obj, (p,), (v,)),
      "loss_fn": batched(loss_fn),
      "batch": batched(batch),
      "grad_fn": lambda: jax.grad(obj),
      "value": lambda: obj(params),
      "per_example_grads": lambda: (
          jax.tree.map(lambda g: g[None], jax.grad(obj)(params))
          if batch is None
          else _per_example_grads(loss_fn, params, batch)
      ),
      "logits_fn": logits,
  }
  out = {}
  for name in names:
    if name not in builders:
      raise ValueError(f"build_extra_args: unknown extra input {name!r}; known: {sorted(builders)}.")
    out[name] = builders[name]()
  return out

