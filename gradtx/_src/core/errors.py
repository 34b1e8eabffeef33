"""Errors a user can act on: what was missing or wrong, and how to fix it."""

from typing import Any


def missing_input(transform: str, name: str, meaning: str, example: str) -> TypeError:
  """The error for an extra ``update`` input that a transformation needs but did not get."""
  return TypeError(
      f"{transform}.update needs {name}=, {meaning}, e.g. {example}. Inside optax.chain pass it "
      f"as a keyword to the chain's update; it is forwarded to every transformation that needs it."
  )


def require(transform: str, name: str, value: Any, meaning: str, example: str) -> Any:
  """Return ``value``, or raise :func:`missing_input` if it is None."""
  if value is None:
    raise missing_input(transform, name, meaning, example)
  return value
