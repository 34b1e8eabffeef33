"""Hyperparameter validation that runs in the factory, never inside a trace.

Every check skips values it cannot judge at construction time: schedules (callables, checked
lazily by the user's own schedule), tracers (``optax.inject_hyperparams`` rebuilds the factory
inside ``update`` with traced hyperparameters) and arrays with more than one element.
Errors name the public function the user called, the argument, the legal range and the value:
``ValueError: adam: b1 must be in [0, 1), got 1.5.``
"""

import math
import sys
import types
from typing import Any

import jax
import numpy as np

_SRC_PREFIX = "gradtx._src."
_SELF = __name__


def _caller_name() -> str:
  """The outermost gradtx function on the stack: the factory the user called."""
  frame: types.FrameType | None = sys._getframe(1)
  name = "gradtx"
  while frame is not None:
    module = frame.f_globals.get("__name__", "")
    if module.startswith(_SRC_PREFIX) and module != _SELF:
      name = frame.f_code.co_name
    frame = frame.f_back
  return name


def _concrete(value: Any) -> float | None:
  """The value as a Python float, or None when it cannot be judged now."""
  if value is None or callable(value) or isinstance(value, jax.core.Tracer):
    return None
  if isinstance(value, (bool, int, float)):
    return float(value)
  try:
    array = np.asarray(value)
  except (TypeError, ValueError):
    return None
  if array.size != 1 or not np.issubdtype(array.dtype, np.number):
    return None
  return float(array.reshape(()))


def _fail(name: str, requirement: str, value: Any) -> None:
  raise ValueError(f"{_caller_name()}: {name} must be {requirement}, got {value!r}.")


def finite(name: str, value: Any) -> None:
  """Raise unless ``value`` is finite (or cannot be judged at construction time)."""
  x = _concrete(value)
  if x is not None and not math.isfinite(x):
    _fail(name, "finite", value)


def non_negative(name: str, value: Any) -> None:
  """Raise unless ``value >= 0``."""
  x = _concrete(value)
  if x is not None and not (math.isfinite(x) and x >= 0.0):
    _fail(name, ">= 0", value)


def positive(name: str, value: Any) -> None:
  """Raise unless ``value > 0``."""
  x = _concrete(value)
  if x is not None and not (math.isfinite(x) and x > 0.0):
    _fail(name, "> 0", value)


def in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    left_open: bool = False,
    right_open: bool = False,
) -> None:
  """Raise unless ``value`` lies in the interval from ``low`` to ``high``."""
  x = _concrete(value)
  if x is None:
    return
  above = x > low if left_open else x >= low
  below = x < high if right_open else x <= high
  if not (math.isfinite(x) and above and below):
    interval = f"{'(' if left_open else '['}{low:g}, {high:g}{')' if right_open else ']'}"
    _fail(name, f"in {interval}", value)


def beta(name: str, value: Any) -> None:
  """Raise unless ``value`` is a decay rate in [0, 1)."""
  in_range(name, value, 0.0, 1.0, right_open=True)


def positive_int(name: str, value: Any) -> None:
  """Raise unless ``value`` is a Python integer >= 1."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    _fail(name, "an integer >= 1", value)


def one_of(name: str, value: Any, choices: tuple[Any, ...]) -> None:
  """Raise unless ``value`` is one of ``choices``."""
  if value not in choices:
    _fail(name, f"one of {choices!r}", value)
