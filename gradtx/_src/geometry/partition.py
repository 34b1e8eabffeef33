"""Which leaves Muon-like optimizers orthogonalize, and which go to their fallback."""

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradtx._src.geometry.gather import path_name

_EXCLUDED = re.compile(
    r"(^|[_.-])(embed|embeds|embedding|embeddings|wte|wpe|unembed|head|logits|readout|classifier)$")


def default_muon_partition(path: str, leaf: Any) -> bool:
  """The default rule: True (orthogonalize) for hidden matrices, False (fallback) otherwise.

  A leaf is a hidden matrix when it is 2-D (a dense ``(in, out)`` kernel) or 4-D (a conv
  ``(H, W, I, O)`` kernel) and no component of its ``/``-joined path names an embedding or an
  output head: a component that, lowercased, is or ends in ``_`` + one of ``embed(s)``,
  ``embedding(s)``, ``wte``, ``wpe``, ``unembed``, ``head``, ``logits``, ``readout``,
  ``classifier`` (e.g. ``"embed"``, ``"tok_embeddings"``, ``"lm_head"``, ``"head"``; not
  ``"multihead"``). Everything else (biases,
  norm gains, 1-D and 3-D leaves, embeddings and heads) goes to the fallback.

  Args:
    path: the leaf's path, keys joined by ``/`` (e.g. ``"layer_0/mlp/kernel"``).
    leaf: the leaf (only its shape is used).

  Returns:
    A Python bool.
  """
  if jnp.ndim(leaf) not in (2, 4):
    return False
  parts = [p.lower() for p in path.split("/") if p]
  return not any(_EXCLUDED.search(p) for p in parts)


def partition_labels(rule: Any, tree: Any, on: str, off: str) -> Any:
  """Labels ``on``/``off`` per leaf from a rule ``(path, leaf) -> bool`` or a tree of bools."""
  if rule is None:
    rule = default_muon_partition
  if callable(rule):
    return jax.tree_util.tree_map_with_path(lambda p, x: on if rule(path_name(p), x) else off, tree)
  return jax.tree.map(lambda flag, _: on if flag else off, rule, tree)


def labeller(rule: Any, on: str, off: str) -> Callable[[Any], Any]:
  """``optax.partition`` labels function for ``rule`` (see :func:`partition_labels`)."""
  return lambda tree: partition_labels(rule, tree, on, off)
