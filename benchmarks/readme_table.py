"""Generate the README's generated sections: the optimizer table (from the registry) and the
benchmark results (from benchmarks/results/*.md).

  python -m benchmarks.readme_table --write   # rewrite README.md in place
  python -m benchmarks.readme_table --check   # exit 1 if the optimizer table is stale

The optimizer table is checked by the test suite; results sections change with the machine and
are refreshed by `make readme` after `make demo` / `make bench`.
"""

import argparse
import os
import re
import sys

import gradtx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SCALE_DOC = os.path.join(ROOT, "docs", "scale.md")
RESULTS = os.path.join(ROOT, "benchmarks", "results")

# README section name -> results file that fills it (None: generated from the registry).
SECTIONS = {
    "optimizers": None,
    "race": "race.md",
    "race_mlp": "race_mlp.md",
    "race_cnn": "race_cnn.md",
    "race_transformer": "race_transformer.md",
    "scaling": "scaling.md",
    "step_overhead": "step_overhead.md",
    "step_cost": "step_cost.md",
    "cpu_allocator": "cpu_allocator.md",
    "clip_noise": "clip_noise.md",
    "curvature": "curvature.md",
    "kronecker": "kronecker.md",
    "geometry": "geometry.md",
    "estimators": "estimators.md",
    "privacy": "privacy.md",
    "gpu": "gpu/",
}

# The GPU run (benchmarks/gpu.sh) writes these beside its log, in this order.
GPU_RESULTS = ("step_overhead.md", "curvature.md", "geometry_full.md", "clip_noise.md", "step_cost.md", "kronecker.md")


def optimizer_table() -> str:
  lines = [
      "| optimizer | family | paper | extra `update` inputs | key |",
      "|---|---|---|---|:-:|",
  ]
  order = gradtx._src.core.registry.FAMILIES
  for spec in sorted(gradtx.registry().values(), key=lambda s: (order.index(s.family), s.name)):
    paper = spec.paper.title
    if spec.paper.arxiv:
      paper += f" ([arXiv:{spec.paper.arxiv}](https://arxiv.org/abs/{spec.paper.arxiv}))"
    extra = ", ".join(f"`{n}`" for n in spec.extra_inputs) or "-"
    lines.append(f"| `{spec.name}` | {spec.family} | {paper} | {extra} | {'yes' if spec.needs_key else '-'} |")
  return "\n".join(lines) + "\n"


def state_memory_table() -> str:
  """Optimizer-state bytes per parameter of every registry entry, from abstract evaluation only."""
  import jax

  from benchmarks.common import state_bytes, transformer_like_tree, tree_size

  params = jax.eval_shape(transformer_like_tree)
  n = tree_size(params)
  lines = ["| optimizer | family | state bytes / parameter |", "|---|---|---:|"]
  order = gradtx._src.core.registry.FAMILIES
  for spec in sorted(gradtx.registry().values(), key=lambda s: (order.index(s.family), s.name)):
    total = state_bytes(spec.build(), params)
    lines.append(f"| `{spec.name}` | {spec.family} | {total / n:.2f} |")
  return "\n".join(lines) + "\n"


def gpu_content(folder: str) -> str | None:
  """The GPU run's tables, headed by the date and device its log recorded."""
  log = os.path.join(folder, "gpu.log")
  if not os.path.exists(log):
    return None
  with open(log) as f:
    date, device, versions = (f.readline().strip() for _ in range(3))
  parts = [f"GPU run of `benchmarks/gpu.sh` on {date}: {device}; {versions.split(' [')[0]}.\n"]
  for name in GPU_RESULTS:
    path = os.path.join(folder, name)
    if os.path.exists(path):
      with open(path) as f:
        parts.append(f.read())
  if os.path.exists(os.path.join(folder, "step_overhead.png")):
    parts.append("![GPU step overhead](benchmarks/results/gpu/step_overhead.png)\n")
  return "\n".join(parts)


def section_content(name: str) -> str | None:
  source = SECTIONS[name]
  if source is None:
    return optimizer_table()
  path = os.path.join(RESULTS, source)
  if source.endswith("/"):
    return gpu_content(path)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return f.read()


def _pattern(name: str) -> re.Pattern:
  return re.compile(rf"(<!-- BEGIN {name} -->\n)(.*?)(<!-- END {name} -->)", re.S)


def current(readme: str, name: str) -> str | None:
  match = _pattern(name).search(readme)
  return match.group(2) if match else None


def render(readme: str) -> str:
  for name in SECTIONS:
    content = section_content(name)
    if content is not None:
      readme = _pattern(name).sub(lambda m, c=content: m.group(1) + c + m.group(3), readme)
  return readme


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  group = parser.add_mutually_exclusive_group(required=True)
  group.add_argument("--write", action="store_true")
  group.add_argument("--check", action="store_true")
  args = parser.parse_args(argv)
  with open(README) as f:
    readme = f.read()
  if args.check:
    if current(readme, "optimizers") != optimizer_table():
      print("README.md optimizer table is stale: run `make readme`.", file=sys.stderr)
      return 1
    return 0
  with open(README, "w") as f:
    f.write(render(readme))
  with open(SCALE_DOC) as f:
    doc = f.read()
  with open(SCALE_DOC, "w") as f:
    f.write(_pattern("state_memory").sub(lambda m: m.group(1) + state_memory_table() + m.group(3), doc))
  return 0


if __name__ == "__main__":
  sys.exit(main())
