"""Fuse many small leaves into one flat buffer per dtype, so elementwise math runs as one kernel."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradtx._src.core import validate
from gradtx._src.core.tree import check_matching


class FuseLeavesState(NamedTuple):
  inner: Any  # the inner transformation's state over the packed tree


def _plan(tree: Any, max_leaf_size: int):
  """Static packing plan: which leaves stay alone, and which join which dtype group."""
  leaves, treedef = jax.tree.flatten(tree)
  alone: list[int] = []
  groups: dict[str, list[int]] = {}
  for i, leaf in enumerate(leaves):
    size = int(np.prod(jnp.shape(leaf)))
    if size > max_leaf_size:
      alone.append(i)
    else:
      groups.setdefault(jnp.asarray(leaf).dtype.name, []).append(i)
  return treedef, alone, groups


def _pack(tree: Any, plan) -> dict:
  treedef, alone, groups = plan
  leaves = jax.tree.leaves(tree)
  return {
      "alone": tuple(leaves[i] for i in alone),
      "packed": {dtype: jnp.concatenate([jnp.ravel(leaves[i]) for i in idx]) for dtype, idx in groups.items()},
  }


def _unpack(packed: dict, like: Any, plan) -> Any:
  treedef, alone, groups = plan
  like_leaves = jax.tree.leaves(like)
  out = [None] * len(like_leaves)
  for i, leaf in zip(alone, packed["alone"]):
    out[i] = leaf
  for dtype, idx in groups.items():
    flat, offset = packed["packed"][dtype], 0
    for i in idx:
      shape = jnp.shape(like_leaves[i])
      size = int(np.prod(shape))
      out[i] = flat[offset : offset + size].reshape(shape)
      offset += size
  return jax.tree.unflatten(treedef, out)


def fuse_leaves(
    inner: optax.GradientTransformation,
    *,
    max_leaf_size: int = 65536,
) -> optax.GradientTransformationExtraArgs:
  r"""Run ``inner`` on small leaves concatenated into one flat buffer per dtype.

  Leaves with at most ``max_leaf_size`` elements are packed, per dtype, into one vector; larger
  leaves pass through as they are. ``inner`` sees the tree ``{"alone": (...), "packed": {dtype:
  vector}}``, and its updates are unpacked back into the parameters' structure. Where per-leaf
  overhead dominates (hundreds of small leaves) this replaces hundreds of small kernels with one.

  Args:
    inner: an elementwise transformation (Adam, AdamW, AMSGrad, RMSProp, AdaGrad, SGD, Lion, ...)
      or one whose reductions are global (AdaGrad-Norm).
    max_leaf_size: leaves with more elements than this are not packed (copying them would cost
      more than it saves); an integer >= 1.

  Returns:
    A gradient transformation with the same updates as ``inner``.

  Example:
    >>> opt = gradtx.fuse_leaves(gradtx.adam(1e-3))

  References:
    The same idea as the multi-tensor ("foreach"/fused) kernels of torch.optim and apex.

  Notes:
    Results equal ``inner`` exactly for elementwise and globally reduced transformations. Do not
    wrap a transformation that uses per-leaf shapes or norms (Muon, Shampoo, AdamP, LARS-style
    trust ratios, per-leaf clipping): it would see packed vectors instead of the leaves. Extra
    ``update`` inputs are forwarded unchanged.
  """
  validate.positive_int("max_leaf_size", max_leaf_size)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    plan = _plan(params, max_leaf_size)
    return FuseLeavesState(inner=inner.init(_pack(params, plan)))

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      check_matching("fuse_leaves", updates, params, ("updates", "params"))
    plan = _plan(updates, max_leaf_size)
    packed_params = None if params is None else _pack(params, plan)
    packed, inner_state = inner.update(_pack(updates, plan), state.inner, packed_params, **extra_args)
    return _unpack(packed, updates, plan), FuseLeavesState(inner=inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
