"""Geometry benchmarks: Newton-Schulz FLOP/s against a plain matmul, exact polar against NS5, and
a Muon step against an Adam step, all as ratios measured side by side in one run.

    .venv/bin/python -m benchmarks.geometry            # small CPU sizes, under a minute
    .venv/bin/python -m benchmarks.geometry --full     # the issue's sizes (1024x1024, 1024x4096; 15 M tree)
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from gradtx._src.geometry.orthogonalize import orthogonalize_newton_schulz, orthogonalize_polar
from gradtx._src.optimizers.geometry import muon
from gradtx._src.optimizers.moments import adam


def _interleaved(fns, arg, rounds, reps):
  """Median seconds per call of each jitted fn, timed in interleaved rounds."""
  for f in fns.values():
    jax.block_until_ready(f(arg))  # compile
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, f in fns.items():
      start = time.perf_counter()
      for _ in range(reps):
        out = f(arg)
      jax.block_until_ready(out)
      times[k].append((time.perf_counter() - start) / reps)
  return {k: statistics.median(v) for k, v in times.items()}


def newton_schulz_vs_matmul(shapes, rounds, reps, steps=5):
  rows = []
  for r, c in shapes:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((r, c)), jnp.float32)
    short, long_ = min(r, c), max(r, c)
    fns = {
        "matmul": jax.jit(lambda a: a @ a.T),  # NS's largest product: 2 short^2 long FLOPs
        "ns5": jax.jit(lambda a: orthogonalize_newton_schulz(a, steps)),
        "polar_svd": jax.jit(lambda a: orthogonalize_polar(a, "svd")),
        "polar_eigh": jax.jit(lambda a: orthogonalize_polar(a, "eigh")),
    }
    t = _interleaved(fns, x, rounds, reps)
    mm_flops = 2 * short * short * long_
    ns_flops = steps * (4 * short * short * long_ + 2 * short**3)
    mm_rate, ns_rate = mm_flops / t["matmul"], ns_flops / t["ns5"]
    case = f"{r}x{c} f32"
    rows.append((case, "matmul", t["matmul"] * 1e3, 1.0, mm_rate))
    rows.append((case, "NS5 (FLOP/s ratio)", t["ns5"] * 1e3, ns_rate / mm_rate, ns_rate))
    rows.append((case, "polar svd (time vs NS5)", t["polar_svd"] * 1e3, t["polar_svd"] / t["ns5"], None))
    rows.append((case, "polar eigh (time vs NS5)", t["polar_eigh"] * 1e3, t["polar_eigh"] / t["ns5"], None))
  return rows


def muon_vs_adam(total_params, layers, rounds):
  params = common.transformer_like_tree(total_params, layers)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
  candidates = {"adam": adam(1e-3), "muon": muon(0.02, adam_learning_rate=1e-3)}
  timings = common.time_interleaved(candidates, params, grads, rounds=rounds, steps_per_round=2)
  base = timings["adam"].median
  case = f"transformer-like {common.tree_size(params) / 1e6:.1f} M params"
  return [(case, k, v.median * 1e3, v.median / base) for k, v in timings.items()]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--full", action="store_true", help="the issue's sizes (for an accelerator)")
  args = parser.parse_args(argv)
  if args.full:
    shapes, rounds, reps, tree = [(1024, 1024), (1024, 4096)], 10, 5, (15_000_000, 12)
  else:
    shapes, rounds, reps, tree = [(128, 128), (128, 512)], 3, 2, (500_000, 2)

  ns_rows = newton_schulz_vs_matmul(shapes, rounds, reps)
  lines = ["### Newton-Schulz (5 steps) against a same-size matmul and the exact polar factor", "",
           "| case | candidate | median ms | ratio | GFLOP/s |", "|---|---|---:|---:|---:|"]
  for case, name, ms, ratio, rate in ns_rows:
    lines.append(f"| {case} | {name} | {ms:.3f} | {ratio:.2f} | {'' if rate is None else f'{rate / 1e9:.1f}'} |")
  lines += ["", "NS5 ratio = achieved FLOP/s of NS5 / FLOP/s of `a @ a.T` (target >= 0.85); polar ratios "
            "are time / NS5 time.", f"Run {common.machine()}; command `{common.command()}`.", ""]
  muon_rows = muon_vs_adam(*tree, rounds)
  text = "\n".join(lines) + "\n" + common.ratio_table("Muon step against Adam step", muon_rows, "adam")
  print(text)
  common.write_result("geometry_full.md" if args.full else "geometry.md", text)


if __name__ == "__main__":
  main()
