"""CPU step cost under three malloc settings: what fresh temporaries cost, and how to avoid it.

XLA:CPU allocates a step's temporaries (buffers that are neither inputs nor outputs, e.g. the
copy of a donated state buffer that two fusions read, or noise that two moment updates read) with
the C allocator when the step starts and frees them when it ends. glibc serves blocks larger than
its mmap threshold (at most 32 MiB) with ``mmap`` and returns them with ``munmap``, so every step
touches its temporaries as fresh pages: one minor page fault per 4 KiB, each zero-filled by the
kernel. On a 15 M-parameter tree one parameter-sized temporary is 60 MB and about 14 600 faults a
step, which costs more than the arithmetic it holds.

Each setting runs in its own process (the allocator reads its environment at start-up); within a
process the candidates are timed side by side with ``gradtx.adam`` (interleaved rounds, the ratio
is the median of the per-round ratios) and the process's minor page faults are counted per step.

- ``default``: glibc as configured by the system.
- ``hugetlb``: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc 2.35+): mmapped blocks are
  advised for transparent huge pages, so the kernel faults them in 2 MiB at a time.
- ``arena``: ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296``: no
  mmap, one arena, freed memory kept, so temporaries reuse the same pages every step. All
  threads then share one arena's lock, which the table shows as Adam's own time.

Writes benchmarks/results/cpu_allocator.md, .json (the numbers) and .png.

Usage: python -m benchmarks.cpu_allocator [--quick] [--optimizers lion,mars] [--params 15000000]
"""

import argparse
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import gradtx
from benchmarks import step_cost
from benchmarks.common import (
  RESULTS_DIR,
  command,
  machine,
  paired_ratio,
  time_interleaved,
  transformer_like_tree,
)
from gradtx import noise as gn

SETTINGS = {
    "default": {},
    "hugetlb": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
    "arena": {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "4294967296"},
}
# Entries timed by default: every family whose step is elementwise or a few reductions (the
# curvature and zeroth-order entries' costs are dominated by other work), and the noise chain.
FAMILIES = ("moments", "geometry", "clipping", "noise", "sharpness", "privacy")
NOISE_CHAIN = "add_annealed_noise+adam"  # chain(add_annealed_noise(0.01), adam(1e-3))
BASELINE = "gradtx.adam"
FAULT_FLOOR = 100  # rows with fewer page faults per step in every setting are only listed


def candidates(names):
  out = {BASELINE: gradtx.adam(1e-3)}
  for name in names:
    if name == NOISE_CHAIN:
      out[name] = optax.chain(gn.add_annealed_noise(0.01, key=0), gradtx.adam(1e-3))
      continue
    out[name] = step_cost.build(name)
  return out


def child(names, params_count, layers, rounds):
  """Time the candidates in this process's malloc setting; one JSON object on the last line."""
  tree = transformer_like_tree(params_count, layers=layers)
  rng = np.random.default_rng(1)
  grads = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape, np.float32)), tree)
  t = time_interleaved(candidates(names), tree, grads, rounds=rounds, steps_per_round=2, record_errors=True)
  base = t[BASELINE].seconds
  result = {
      name: {"error": timing.error} if timing.error else {
          "ms": timing.median * 1e3,
          "vs_adam": paired_ratio(timing.seconds, base),
          "faults": timing.faults_per_step,
      }
      for name, timing in t.items()
  }
  print(json.dumps(result))


def run_setting(setting, names, params_count, layers, rounds):
  env = {**os.environ, **SETTINGS[setting]}
  argv = [sys.executable, "-m", "benchmarks.cpu_allocator", "--child", "--params", str(params_count),
          "--layers", str(layers), "--rounds", str(rounds), "--optimizers", ",".join(names)]
  done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
  lines = done.stdout.strip().splitlines()
  if done.returncode != 0 or not lines:
    raise RuntimeError(f"the {setting!r} run failed (exit {done.returncode}): {done.stderr[-2000:]}")
  return json.loads(lines[-1])


def family(name):
  return {NOISE_CHAIN: "noise", BASELINE: "moments"}.get(name) or gradtx.get_spec(name).family


def faulting(results):
  """The baseline, every candidate that failed in some setting, and every one that page-faults at
  least FAULT_FLOOR times a step in some setting."""
  return [
      name for name in next(iter(results.values()))
      if name == BASELINE
      or any("error" in rows[name] or rows[name]["faults"] >= FAULT_FLOOR for rows in results.values())
  ]


def table(results, params_count, run):
  settings = list(results)
  shown = faulting(results)
  quiet = [n for n in results[settings[0]] if n not in shown and "error" not in results[settings[0]][n]]
  shown.sort(key=lambda n: (n != BASELINE, -results[settings[0]][n].get("faults", 0.0), n))
  lines = [
      "### CPU step cost under three malloc settings",
      "",
      f"Transformer-like tree, {params_count / 1e6:.3g} M float32 parameters; jitted, donated update+apply "
      f"steps. Each setting ran in its own process, every candidate side by side with {BASELINE} "
      "(x adam: median of per-round ratios); faults: the process's minor page faults per step, one per "
      "4 KiB page of fresh memory (under hugetlb most are 2 MiB pages, so far fewer). Settings: " + "; ".join(
          f"{s}: `{' '.join(f'{k}={v}' for k, v in SETTINGS[s].items()) or 'as configured'}`" for s in settings
      ) + ".",
      "",
      f"Run {run}.",
      "",
      "| optimizer | family | " + " | ".join(f"{s}: x adam | {s}: faults" for s in settings) + " |",
      "|---|---|" + "---:|---:|" * len(settings),
  ]
  for name in shown:
    cells = []
    for s in settings:
      r = results[s][name]
      cells += ["failed", "-"] if "error" in r else [f"{r['vs_adam']:.2f}", f"{r['faults']:,.0f}"]
    lines.append(f"| {name} | {family(name)} | " + " | ".join(cells) + " |")
  base_ms = ", ".join(
      f"{s} {results[s][BASELINE]['ms']:.1f} ms" for s in settings if "error" not in results[s][BASELINE]
  )
  lines += [
      "",
      f"{BASELINE} per step: {base_ms}. Not shown (under {FAULT_FLOOR} faults per step in every setting, "
      f"so the setting changes nothing but noise): {', '.join(sorted(quiet)) or 'none'}.",
  ]
  return "\n".join(lines) + "\n"


def plot(results, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  settings = list(results)
  names = sorted(faulting(results), key=lambda n: results[settings[0]][n].get("vs_adam", 0.0))
  fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) + 1.5))
  y = np.arange(len(names))
  height = 0.8 / len(settings)
  for i, s in enumerate(settings):
    ax.barh(y + i * height, [results[s][n].get("vs_adam", np.nan) for n in names], height, label=s)
  ax.axvline(1.0, color="k", lw=0.8)
  ax.set_xscale("log")  # Muon's 40x would flatten the rest
  ax.set_yticks(y + 0.4 - height / 2, names)
  ax.set_xlabel(f"step time / {BASELINE} step time in the same process (log scale)")
  ax.set_title("CPU step cost by malloc setting")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="a small tree, two entries, two rounds")
  parser.add_argument("--optimizers", default="", help="comma-separated registry names (and the noise chain)")
  parser.add_argument("--params", type=int, default=15_000_000)
  parser.add_argument("--layers", type=int, default=12, help="blocks of the transformer-like tree")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--out", default=RESULTS_DIR)
  parser.add_argument("--no-progress", action="store_true")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  names = [n for n in args.optimizers.split(",") if n]
  if args.quick:
    # One block: a dozen leaves keep the three processes' compiles short.
    names, args.params, args.layers, args.rounds = names or ["lion", "sgd"], 50_000, 1, 2
  names = names or [n for n in gradtx.list_optimizers() if gradtx.get_spec(n).family in FAMILIES] + [NOISE_CHAIN]
  for name in names:
    if name != NOISE_CHAIN and name not in gradtx.list_optimizers():
      parser.error(f"--optimizers: unknown {name!r}")
  if args.child:
    child(names, args.params, args.layers, args.rounds)
    return
  run = f"{machine()}; command `{command()}`"
  results = {}
  for setting in tqdm(SETTINGS, desc="malloc settings", disable=args.no_progress):
    results[setting] = run_setting(setting, names, args.params, args.layers, args.rounds)
  os.makedirs(args.out, exist_ok=True)
  text = table(results, args.params, run)
  with open(os.path.join(args.out, "cpu_allocator.md"), "w") as f:
    f.write(text)
  with open(os.path.join(args.out, "cpu_allocator.json"), "w") as f:
    json.dump({"params": args.params, "run": run, "results": results}, f, indent=0)
  plot(results, os.path.join(args.out, "cpu_allocator.png"))
  print(text)


if __name__ == "__main__":
  main()
