"""Step overhead: one jitted update+apply step of gradtx.adam against optax.adam, side by side.

Two trees: a transformer-like tree (~150 leaves, ~15 M float32 params), where the arithmetic
dominates, and 500 small leaves, where per-leaf overhead dominates. Candidates: optax.adam (the
baseline), gradtx.adam, gradtx.fuse_leaves(gradtx.adam) (opt-in multi-leaf fusion), and
optax.flatten(optax.adam) (the closest thing optax offers). Steps donate their buffers; rounds are
interleaved; medians are compared. Writes benchmarks/results/step_overhead.md and .png.

Usage: python -m benchmarks.step_overhead [--rounds 15] [--params 15000000]
"""

import argparse
import os

import jax
import jax.numpy as jnp
import optax

import gradtx
from benchmarks.common import (
    RESULTS_DIR,
    many_small_leaves,
    ratio_table,
    time_interleaved,
    transformer_like_tree,
    tree_size,
)


def candidates():
  return {
      "optax.adam": optax.adam(1e-3),
      "gradtx.adam": gradtx.adam(1e-3),
      "gradtx.fuse_leaves(gradtx.adam)": gradtx.fuse_leaves(gradtx.adam(1e-3)),
      "optax.flatten(optax.adam)": optax.flatten(optax.adam(1e-3)),
  }


def plot(rows, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  cases = list(dict.fromkeys(r[0] for r in rows))
  names = list(dict.fromkeys(r[1] for r in rows))
  fig, ax = plt.subplots(figsize=(9, 4))
  width = 0.8 / len(names)
  for j, name in enumerate(names):
    ratios = [next(r[3] for r in rows if r[0] == c and r[1] == name) for c in cases]
    ax.bar([i + j * width for i in range(len(cases))], ratios, width, label=name)
  ax.axhline(1.0, color="k", lw=0.8)
  ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(cases))], cases)
  ax.set_ylabel("time per step / optax.adam (lower is faster)")
  ax.set_title("Adam step overhead")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--params", type=int, default=15_000_000)
  parser.add_argument("--quick", action="store_true", help="small trees, two rounds (a smoke run)")
  parser.add_argument("--out", default=RESULTS_DIR)
  args = parser.parse_args(argv)

  if args.quick:
    trees = {"transformer-like": transformer_like_tree(200_000, layers=2), "50 small leaves": many_small_leaves(50)}
    args.rounds = 2
  else:
    trees = {"transformer-like": transformer_like_tree(args.params), "500 small leaves": many_small_leaves(500)}
  rows = []
  for case, tree in trees.items():
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), tree)
    timings = time_interleaved(candidates(), tree, grads, rounds=args.rounds)
    base = timings["optax.adam"].median
    label = f"{case} ({len(jax.tree.leaves(tree))} leaves, {tree_size(tree) / 1e6:.2f} M)"
    for name, t in timings.items():
      rows.append((label, name, t.median * 1e3, t.median / base))
      print(f"{label:45s} {name:34s} {t.median * 1e3:9.3f} ms  ratio {t.median / base:5.2f}")
  text = ratio_table("Adam step overhead (jitted update + apply, donated buffers)", rows, "optax.adam")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "step_overhead.md"), "w") as f:
    f.write(text)
  plot(rows, os.path.join(args.out, "step_overhead.png"))
  print(text)


if __name__ == "__main__":
  main()
