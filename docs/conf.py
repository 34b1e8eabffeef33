"""Sphinx configuration for the gradtx documentation (`make docs`).

Built with warnings as errors. Three things are generated here at build time, into the git-ignored
``_generated/`` folder, so that the site never goes stale:

- ``_generated/optimizers.md``: the optimizer table, from ``gradtx.registry()`` (the README's table,
  from ``benchmarks/readme_table.py``, with every name linked to its API entry);
- ``_generated/extra_inputs.md``: the table of extra ``update`` inputs, from ``gradtx.EXTRA_INPUTS``;
- ``_generated/benchmark_results.md``: one section per ``benchmarks/results/*.md`` that exists,
  each included with ``{include}``;
- ``_generated/notebooks/*.ipynb``: copies of ``notebooks/`` (Sphinx reads sources only under
  ``docs/``); they are rendered as they are in git, without executing them.
"""

import os
import re
import shutil
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
GENERATED = os.path.join(DOCS, "_generated")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(DOCS, "_ext"))

import gradtx  # noqa: E402
from benchmarks import readme_table  # noqa: E402

project = "gradtx"
author = "the gradtx authors"
copyright = "the gradtx authors"
release = version = gradtx.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "gradtx_api",
]

# _generated/*.md are fragments for {include}, not pages.
exclude_patterns = ["_build", "_ext", "_generated/*.md", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# Docstrings are Google style (Args / Returns / Example / References / Notes).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
autosummary_generate = False  # tables only: the entries themselves are on the family pages

# MyST: $...$ math and ::: fences in the Markdown pages.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# Notebooks are executed by `make test-notebooks` (nbmake), never by the docs build.
nb_execution_mode = "off"

html_theme = "sphinx_book_theme"
html_title = f"gradtx {release}"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "navigation_with_keys": False,
}


def _write_if_changed(path: str, text: str) -> None:
  """Write only on change, so that incremental builds do not re-read unchanged pages."""
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


def _optimizer_table() -> str:
  """The README's registry table, each optimizer's name linked to its entry in the API reference."""
  table = readme_table.optimizer_table()
  families = {name: spec.family for name, spec in gradtx.registry().items()}

  def link(match: re.Match) -> str:
    name = match.group(1)
    return f"| {{py:func}}`{name} <gradtx.{families[name]}.{name}>` |"

  return re.sub(r"^\| `(\w+)` \|", link, table, flags=re.M)


def _extra_inputs_table() -> str:
  lines = ["| name | what `update` receives |", "|---|---|"]
  lines += [f"| `{name}` | {meaning} |" for name, meaning in gradtx.EXTRA_INPUTS.items()]
  return "\n".join(lines) + "\n"


# Benchmark results: results file stem -> section title. Files not listed get a title from their stem.
BENCHMARK_TITLES = {
    "race": "Digits race: every optimizer on one MLP",
    "race_mlp": "Tuned race: digits MLP",
    "race_cnn": "Tuned race: digits CNN",
    "race_transformer": "Tuned race: character-level transformer",
    "cpu_allocator": "CPU step cost and the C allocator",
    "race_demo_cnn": "Quick race: digits CNN",
    "race_demo_transformer": "Quick race: character-level transformer",
    "scaling": "Scaling with parameter count",
    "step_overhead": "Step overhead against optax",
    "step_cost": "Step cost at scale",
    "clip_noise": "Clipping and noise before Adam",
    "curvature": "Curvature oracles and Sophia",
    "kronecker": "Kronecker-factored preconditioners",
    "geometry": "Orthogonalization and Muon",
    "estimators": "Gradient estimators and sharpness-aware steps",
}


def _benchmark_results() -> str:
  results = os.path.join(ROOT, "benchmarks", "results")
  stems = [s for s in readme_table.SECTIONS if readme_table.SECTIONS[s]]
  stems += sorted(f[:-3] for f in os.listdir(results) if f.endswith(".md") and f[:-3] not in stems)
  out = []
  for stem in stems:
    path = os.path.join(results, f"{stem}.md")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      first = f.readline()
    title = BENCHMARK_TITLES.get(stem, stem.replace("_", " ").capitalize())
    options = ""
    if first.startswith("# "):  # the file's own title becomes the section title
      title, options = first[2:].strip(), ":start-line: 1\n"
    # Paths starting with "/" are relative to docs/, wherever this fragment is included from.
    out.append(f"## {title}\n\n```{{include}} /../benchmarks/results/{stem}.md\n{options}```\n")
    if stem == "race_mlp" and os.path.exists(os.path.join(results, "race_scatter.png")):
      out.append("```{image} /../benchmarks/results/race_scatter.png\n:alt: time to target against step cost\n```\n")
    if os.path.exists(os.path.join(results, f"{stem}.png")):
      out.append(f"```{{image}} /../benchmarks/results/{stem}.png\n:alt: {title}\n```\n")
  return "\n".join(out)


def _copy_notebooks() -> None:
  target = os.path.join(GENERATED, "notebooks")
  os.makedirs(target, exist_ok=True)
  source = os.path.join(ROOT, "notebooks")
  names = {f for f in os.listdir(source) if f.endswith(".ipynb")}
  for stale in set(os.listdir(target)) - names:
    os.remove(os.path.join(target, stale))
  for name in sorted(names):
    src, dst = os.path.join(source, name), os.path.join(target, name)
    with open(src, "rb") as f:
      data = f.read()
    if not os.path.exists(dst) or open(dst, "rb").read() != data:
      shutil.copyfile(src, dst)


_write_if_changed(os.path.join(GENERATED, "optimizers.md"), _optimizer_table())
_write_if_changed(os.path.join(GENERATED, "extra_inputs.md"), _extra_inputs_table())
_write_if_changed(os.path.join(GENERATED, "benchmark_results.md"), _benchmark_results())
_copy_notebooks()
