"""The extra inputs every estimator needs, checked in one place so the errors read the same."""

from typing import Any

from gradtx._src.core import errors

OBJ_FN_MEANING = "the loss on the current batch as a function of params"
EXAMPLE = "tx.update(None, state, params, obj_fn=lambda p: loss(p, batch))"


def require_params_and_obj_fn(transform: str, params: Any, obj_fn: Any, where: str) -> tuple[Any, Any]:
  """``(params, obj_fn)``, or a TypeError naming ``params=`` or ``obj_fn=`` when one is None.

  ``where`` says what happens at params, e.g. ``"probes are centred there"``.
  """
  params = errors.require(transform, "params", params, f"the current parameters ({where})", EXAMPLE)
  obj_fn = errors.require(transform, "obj_fn", obj_fn, OBJ_FN_MEANING, EXAMPLE)
  return params, obj_fn
