"""The vocabulary of extra ``update`` inputs, and how a training loop builds them.

A transformation that needs more than the gradient takes it as a keyword-only ``update``
argument with one of the names below. Training loops (the contract tests, the demo race, user
code) build them from the loss with :func:`build_extra_args`, so every optimizer in the registry
can be driven by one loop.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax

EXTRA_INPUTS: dict[str, str] = {
    "obj_fn": "the loss on the current batch as a function of params",
    "grad_fn": "the gradient of the loss on the current batch as a function of params",
    "value": "the loss at the current params on the current batch",
    "per_example_grads": "per-example gradients: every leaf of the gradient with a leading batch axis",
}


def _per_example_grads(loss_fn: Callable[..., jax.Array], params: Any, batch: Any) -> Any:
  def one(example):
    return jax.grad(loss_fn)(params, jax.tree.map(lambda x: x[None], example))

  return jax.vmap(one)(batch)


def build_extra_args(
    names: Iterable[str],
    loss_fn: Callable[..., jax.Array],
    params: Any,
    batch: Any = None,
) -> dict[str, Any]:
  """Build the extra ``update`` inputs named in ``names`` for one step.

  Args:
    names: names from :data:`EXTRA_INPUTS`, e.g. ``spec.extra_inputs`` of a registry entry.
    loss_fn: ``loss_fn(params, batch) -> scalar`` (``loss_fn(params)`` when ``batch`` is None).
    params: the current parameters.
    batch: the current batch, a tree whose leaves share a leading example axis, or None.

  Returns:
    A dict of keyword arguments to pass to ``update``.
  """
  def obj(p):
    return loss_fn(p) if batch is None else loss_fn(p, batch)

  builders = {
      "obj_fn": lambda: obj,
      "grad_fn": lambda: jax.grad(obj),
      "value": lambda: obj(params),
      "per_example_grads": lambda: (
          jax.tree.map(lambda g: g[None], jax.grad(obj)(params))
          if batch is None
          else _per_example_grads(loss_fn, params, batch)
      ),
  }
  out = {}
  for name in names:
    if name not in builders:
      raise ValueError(f"build_extra_args: unknown extra input {name!r}; known: {sorted(builders)}.")
    out[name] = builders[name]()
  return out

