"""The ``gradtx-api`` block: one family's public names, documented from their docstrings.

    ```{gradtx-api} gradtx.moments
    :group: optimizers
    ```

(in a Markdown page) expands to an autosummary table and the full autodoc entries of the names in
``group``, in the order the family module re-exports them:

- ``optimizers``: the registered optimizers of that family (``gradtx.registry()``);
- ``transformations``: every other public function (transformations, wrappers and helpers);
- ``states``: the public classes (state NamedTuples, result types, accountants);
- ``core``: for ``gradtx`` itself, the top-level names that no family module exports.

Listing names from the module keeps the reference complete as families grow: nothing to edit here.
"""

import importlib
import inspect
import pprint
import re

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

GROUPS = ("optimizers", "transformations", "states", "core")
FAMILY_MODULES = (
    "moments", "curvature", "diagnostics", "clipping", "noise", "privacy", "geometry", "sharpness",
    "estimators", "sharding", "flax",
)


def public_names(module) -> list[str]:
  """Public, non-module names of ``module`` in definition (re-export) order."""
  return [n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)]


def group_names(module_name: str, group: str) -> list[str]:
  import gradtx

  module = importlib.import_module(module_name)
  names = public_names(module)
  if group == "core":
    exported = {id(getattr(m, n)) for f in FAMILY_MODULES for m in [importlib.import_module(f"gradtx.{f}")]
                for n in public_names(m)}
    return [n for n in names if id(getattr(module, n)) not in exported]
  family = module_name.rsplit(".", 1)[-1]
  registered = {name for name, spec in gradtx.registry().items() if spec.family == family}
  if group == "optimizers":
    return [n for n in names if n in registered]
  if group == "states":
    return [n for n in names if inspect.isclass(getattr(module, n))]
  return [n for n in names if n not in registered and not inspect.isclass(getattr(module, n))]


def _is_namedtuple(obj) -> bool:
  return inspect.isclass(obj) and issubclass(obj, tuple) and hasattr(obj, "_fields")


def api_rst(module_name: str, group: str) -> str:
  """The reStructuredText of one group: an autosummary table, then one autodoc entry per name."""
  names = group_names(module_name, group)
  if not names:
    raise ExtensionError(f"gradtx-api: {module_name} has no public names in group {group!r}; drop the section.")
  module = importlib.import_module(module_name)
  documented = [n for n in names if inspect.isclass(getattr(module, n)) or callable(getattr(module, n))]
  lines = [f".. currentmodule:: {module_name}", "", ".. autosummary::", "   :nosignatures:", ""]
  lines += [f"   {n}" for n in documented]
  lines.append("")
  for n in names:
    obj = getattr(module, n)
    if inspect.isclass(obj):
      # A state NamedTuple's signature lists its fields; its members are tuple methods and
      # "Alias for field number k" stubs, which say nothing.
      lines += [f".. autoclass:: {n}"] + ([] if _is_namedtuple(obj) else ["   :members:"])
    elif callable(obj):
      lines.append(f".. autofunction:: {n}")
    else:
      # A constant has no docstring of its own (autodoc would show its type's, e.g. dict's): show
      # its value, which the page's text explains.
      value = pprint.pformat(obj, width=100, sort_dicts=False).splitlines()
      lines += [f".. py:data:: {n}", f"   :type: {type(obj).__name__}", "", "   ::", ""]
      lines += [f"      {v}" for v in value]
    lines.append("")
  return "\n".join(lines)


# ```{gradtx-api} module
# :group: name
# ```
_BLOCK = re.compile(r"^```\{gradtx-api\}[ \t]+(\S+)[ \t]*\n(?::group:[ \t]*(\w+)[ \t]*\n)?```[ \t]*$", re.M)


def _expand(app, docname: str, source: list[str]) -> None:
  """Replace each gradtx-api block of a Markdown page by an eval-rst block before MyST parses it.

  (A directive cannot do this itself: inside MyST, nested content is parsed as Markdown.)
  """
  if "{gradtx-api}" not in source[0]:
    return

  def replace(match: re.Match) -> str:
    group = match.group(2) or "transformations"
    if group not in GROUPS:
      raise ExtensionError(f"gradtx-api in {docname}: unknown group {group!r}; one of {GROUPS}.")
    return "```{eval-rst}\n" + api_rst(match.group(1), group) + "\n```"

  source[0] = _BLOCK.sub(replace, source[0])
  if "{gradtx-api}" in source[0]:
    raise ExtensionError(f"{docname}: a gradtx-api block is malformed (expected a module and an optional :group:).")


def _check_complete(app, env) -> None:
  """Warn (an error under -W) about any public name that no page documents."""
  documented = set(env.get_domain("py").objects)
  for module_name in ["gradtx"] + [f"gradtx.{f}" for f in FAMILY_MODULES]:
    names = group_names(module_name, "core") if module_name == "gradtx" else public_names(
        importlib.import_module(module_name))
    missing = [n for n in names if f"{module_name}.{n}" not in documented]
    if missing:
      logger.warning(f"gradtx-api: {module_name} exports {missing}, which no page documents "
                     "(add the missing group section to its page in docs/api/).")


def setup(app):
  app.connect("source-read", _expand)
  app.connect("env-check-consistency", _check_complete)
  return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
