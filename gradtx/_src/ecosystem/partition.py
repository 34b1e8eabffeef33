"""Assign transformations to parameters by patterns over their paths."""

import re
from collections.abc import Mapping
from typing import Any

import jax
import optax


def path_name(path: tuple[Any, ...]) -> str:
  """A parameter path as a '/'-joined string: ``('dense', 'kernel')`` -> ``'dense/kernel'``."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def partition(
    rules: Mapping[str, optax.GradientTransformation],
    *,
    default: optax.GradientTransformation | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Apply a different transformation to each group of parameters, chosen by path patterns.

  Each parameter's path (``'encoder/layer_0/attn/kernel'``) is matched against the patterns of
  ``rules`` in order with :func:`re.search`; the first match decides its transformation. Built on
  ``optax.partition``, so extra ``update`` inputs reach every group.

  Args:
    rules: ordered mapping from a regular expression to a transformation.
    default: the transformation for parameters no pattern matches; None makes an unmatched
      parameter an error.

  Returns:
    A gradient transformation.

  Example:
    >>> tx = gradtx.flax.partition(
    ...     {r"(kernel|weight)$": gradtx.muon(0.02)}, default=gradtx.adamw(3e-4))

  References:
    optax.partition (optax >= 0.2.5).

  Notes:
    Unmatched parameters raise a ValueError listing every unmatched path and the patterns tried,
    rather than optax's message about labels.
  """
  if not rules:
    raise ValueError("partition: rules must name at least one pattern.")
  patterns = [(re.compile(p), f"rule{i}:{p}") for i, p in enumerate(rules)]
  transforms = {label: tx for (_, label), tx in zip(patterns, rules.values())}
  if default is not None:
    transforms["default"] = default

  def labels(params):
    def label(path, _):
      name = path_name(path)
      for pattern, lab in patterns:
        if pattern.search(name):
          return lab
      return "default" if default is not None else None

    out = jax.tree_util.tree_map_with_path(label, params)
    unmatched = [
        path_name(path) for path, lab in jax.tree_util.tree_flatten_with_path(out, is_leaf=lambda x: x is None)[0]
        if lab is None
    ]
    if unmatched:
      raise ValueError(
          f"partition: no pattern matches {len(unmatched)} parameter(s): {unmatched[:10]}; patterns: "
          f"{list(rules)}. Add a pattern or pass default=."
      )
    return out

  return optax.partition(transforms, labels)
