"""m-sharpness: one ascent point per disjoint sub-batch of m examples, gradients averaged."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.core.tree import compute_dtype


def split_batch(transform: str, batch: Any, m: int) -> Any:
  """``batch`` with every leaf reshaped from ``(B, ...)`` to ``(B // m, m, ...)``.

  Raises ValueError if the leaves' leading axes differ or ``B`` is not a multiple of ``m``.
  """
  leaves = jax.tree.leaves(batch)
  if not leaves:
    raise ValueError(f"{transform}: batch= has no arrays; it must hold the current batch's examples.")
  sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
  if len(sizes) != 1 or None in sizes:
    raise ValueError(
        f"{transform}: every leaf of batch= needs the same leading example axis, got leading sizes "
        f"{sorted(str(s) for s in sizes)}."
    )
  (size,) = sizes
  assert size is not None  # excluded above; narrows the type
  if size % m:
    raise ValueError(
        f"{transform}: the batch of {size} examples does not split into sub-batches of m={m}; "
        f"choose m dividing the batch size."
    )
  return jax.tree.map(lambda x: jnp.reshape(x, (size // m, m) + jnp.shape(x)[1:]), batch)


def mean_of_perturbed_gradients(
    loss_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    sub_batches: Any,
    perturb: Callable[[Any, Any], Any],
) -> Any:
  r""":math:`\frac1k \sum_j \nabla L_{S_j}(\mathrm{perturb}(\nabla L_{S_j}(w), w))`, in float32 or wider.

  ``sub_batches`` has leaves ``(k, m, ...)``; ``perturb(g, w)`` returns the ascent point of one
  sub-batch. The ``k`` sub-batches run under ``vmap``, so ``k`` gradients are held at once.
  """
  grad = jax.grad(loss_fn)

  def one(sub):
    return grad(perturb(grad(params, sub), params), sub)

  stacked = jax.vmap(one)(sub_batches)
  return jax.tree.map(lambda g: jnp.mean(g.astype(compute_dtype(g.dtype)), axis=0), stacked)
