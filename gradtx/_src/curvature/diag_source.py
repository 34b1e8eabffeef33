"""Where a Hessian-diagonal optimizer gets its estimate: the loss (``obj_fn``) or ``hessian_diag``."""

from collections.abc import Callable
from typing import Any

import jax

from gradtx._src.core import errors
from gradtx._src.core.tree import check_matching
from gradtx._src.curvature.hessian_diagonal import estimate_hessian_diagonal

OBJ_FN_MEANING = "the loss on the current batch as a function of params (or hessian_diag=, a precomputed estimate)"
OBJ_FN_EXAMPLE = "tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))"


def hessian_diag_source(
    name: str,
    params: Any,
    reference: Any,
    *,
    obj_fn: Callable[[Any], jax.Array] | None,
    hessian_diag: Any,
    num_probes: int,
    probe: str,
    axis_name: Any,
) -> Callable[[jax.Array, int], Any]:
  """Check the inputs now and return ``estimate(key, num_probes=num_probes) -> diagonal``.

  A given ``hessian_diag`` wins (its tree must match ``reference``); otherwise ``obj_fn`` and
  ``params`` are required and the estimate is Hutchinson's with probes from ``key``.
  """
  if hessian_diag is not None:
    check_matching(name, hessian_diag, reference, ("hessian_diag", "params"))

    def given(key: jax.Array, k: int = num_probes) -> Any:
      return hessian_diag

    return given
  errors.require(name, "obj_fn", obj_fn, OBJ_FN_MEANING, OBJ_FN_EXAMPLE)
  errors.require(name, "params", params, "the current parameters", "tx.update(grads, state, params, obj_fn=...)")

  def estimate(key, k=num_probes):
    return estimate_hessian_diagonal(obj_fn, params, key, k, probe=probe, axis_name=axis_name)

  return estimate
