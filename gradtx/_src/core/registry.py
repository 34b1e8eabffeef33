"""The one registry of optimizers: contract tests, the README table and the demo race read it."""

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from gradtx._src.core.extra_inputs import EXTRA_INPUTS

FAMILIES = (
    "moments",
    "curvature",
    "clipping",
    "noise",
    "privacy",
    "geometry",
    "sharpness",
    "estimators",
)


@dataclasses.dataclass(frozen=True)
class Paper:
  """A paper an optimizer implements."""

  title: str
  arxiv: str | None = None

  def cite(self) -> str:
    return f'"{self.title}"' + (f", arXiv:{self.arxiv}" if self.arxiv else "")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """One registered optimizer.

  Attributes:
    name: the public function name, e.g. ``"adam"``.
    factory: the function returning the ``optax.GradientTransformation``.
    family: one of :data:`FAMILIES`.
    paper: the paper it implements.
    extra_inputs: the keyword-only ``update`` inputs it needs (names from ``EXTRA_INPUTS``).
    needs_key: whether the factory takes a ``key`` (its randomness lives in state).
    test_kwargs: the keyword arguments the contract tests build it with.
    race_kwargs: the keyword arguments the demo race builds it with.
    static_args: arguments ``optax.inject_hyperparams`` must treat as static (ints that choose
      shapes, strings, callables that are not schedules).
    summary: the first line of the factory's docstring.
    gradient_point: ``gradient_point(params, opt_state) -> params`` where a training loop should
      evaluate the next gradient (XGrad's weight prediction); None means at ``params``.
  """

  name: str
  factory: Callable[..., Any]
  family: str
  paper: Paper
  extra_inputs: tuple[str, ...] = ()
  needs_key: bool = False
  test_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  race_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  static_args: tuple[str, ...] = ()
  summary: str = ""
  gradient_point: Callable[[Any, Any], Any] | None = None

  def build(self, **overrides: Any) -> Any:
    """The transformation with the contract-test kwargs, updated by ``overrides``."""
    return self.factory(**{**self.test_kwargs, **overrides})


_REGISTRY: dict[str, OptimizerSpec] = {}


def register(
    *,
    family: str,
    paper: str,
    arxiv: str | None = None,
    extra_inputs: tuple[str, ...] = (),
    needs_key: bool = False,
    test_kwargs: Mapping[str, Any],
    race_kwargs: Mapping[str, Any] | None = None,
    static_args: tuple[str, ...] = (),
    gradient_point: Callable[[Any, Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
  """Decorator that adds an optimizer factory to the registry under its function name."""
  if family not in FAMILIES:
    raise ValueError(f"register: family must be one of {FAMILIES}, got {family!r}.")
  unknown = [n for n in extra_inputs if n not in EXTRA_INPUTS]
  if unknown:
    raise ValueError(f"register: unknown extra inputs {unknown}; add them to EXTRA_INPUTS first.")

  def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
    name = factory.__name__
    if name in _REGISTRY:
      raise ValueError(f"register: an optimizer named {name!r} is registered already.")
    params = inspect.signature(factory).parameters
    if needs_key and "key" not in params:
      raise ValueError(f"register: {name} needs a key but its factory takes no 'key' argument.")
    doc = inspect.getdoc(factory) or ""
    _REGISTRY[name] = OptimizerSpec(
        name=name,
        factory=factory,
        family=family,
        paper=Paper(paper, arxiv),
        extra_inputs=tuple(extra_inputs),
        needs_key=needs_key,
        test_kwargs=dict(test_kwargs),
        race_kwargs=dict(test_kwargs if race_kwargs is None else race_kwargs),
        static_args=tuple(static_args),
        summary=doc.splitlines()[0] if doc else "",
        gradient_point=gradient_point,
    )
    return factory

  return decorator


def _load_all() -> None:
  """Import every optimizer module, so the registry is complete however gradtx was imported."""
  package = importlib.import_module("gradtx._src.optimizers")
  for module in pkgutil.iter_modules(package.__path__):
    importlib.import_module(f"{package.__name__}.{module.name}")


def registry() -> dict[str, OptimizerSpec]:
  """Every registered optimizer, by name, in registration order."""
  _load_all()
  return dict(_REGISTRY)


def list_optimizers(family: str | None = None) -> list[str]:
  """Names of the registered optimizers, optionally of one family."""
  if family is not None and family not in FAMILIES:
    raise ValueError(f"list_optimizers: family must be one of {FAMILIES}, got {family!r}.")
  return [n for n, s in registry().items() if family is None or s.family == family]


def get_spec(name: str) -> OptimizerSpec:
  """The registry entry for ``name``."""
  _load_all()
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"no optimizer named {name!r}; registered: {sorted(_REGISTRY)}.") from None
