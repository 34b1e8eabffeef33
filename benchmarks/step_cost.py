"""Step cost of every registered optimizer, as ratios measured side by side in one run.

For each registry entry: one jitted, donated update+apply step as a ratio to gradtx.adam and to
optax.adam (and to optax's own version where optax has the same algorithm), on the transformer-like
tree and on 500 small leaves; optimizer-state bytes per parameter; compile time against optax.adam.
Extra inputs (loss, gradient function, ...) are built from a quadratic loss on the tree, so their
cost is part of the step. Writes benchmarks/results/step_cost.md.

Usage: python -m benchmarks.step_cost [--quick] [--optimizers adam,lion] [--rounds 7] [--out DIR]
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
from tqdm import tqdm

import gradtx
from benchmarks.common import RESULTS_DIR, many_small_leaves, time_interleaved, transformer_like_tree, tree_size

# Registry entries whose algorithm optax also has (same defaults as the registry's test kwargs).
OPTAX_EQUIVALENTS = {
    "adam": lambda kw: optax.adam(kw["learning_rate"]),
    "adamw": lambda kw: optax.adamw(kw["learning_rate"], weight_decay=kw.get("weight_decay", 1e-2)),
    "amsgrad": lambda kw: optax.amsgrad(kw["learning_rate"]),
    "rmsprop": lambda kw: optax.rmsprop(kw["learning_rate"], decay=0.99, momentum=kw.get("momentum")),
    "adagrad": lambda kw: optax.adagrad(kw["learning_rate"]),
    "sgd": lambda kw: optax.sgd(kw["learning_rate"], momentum=kw.get("momentum")),
    "lion": lambda kw: optax.lion(kw["learning_rate"]),
    "sign_sgd": lambda kw: optax.sign_sgd(kw["learning_rate"]),
    "ademamix": lambda kw: optax.contrib.ademamix(kw["learning_rate"]),
    "muon": lambda kw: optax.contrib.muon(kw["learning_rate"]),
    "dog": lambda kw: optax.contrib.dog(),
}


def _loss(params):
  return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def _with_extra_inputs(spec, tx):
  """A transformation that builds ``spec``'s extra inputs from the quadratic loss at each step."""
  if not spec.extra_inputs:
    return tx

  def update(updates, state, params=None, **extra):
    built = gradtx.build_extra_args(spec.extra_inputs, _loss, params)
    return tx.update(updates, state, params, **{**extra, **built})

  return optax.GradientTransformationExtraArgs(tx.init, update)


def state_bytes_per_param(tx, params) -> float:
  shapes = jax.eval_shape(tx.init, params)
  total = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in jax.tree.leaves(shapes))
  return total / tree_size(params)


def compile_seconds(tx, params, grads) -> float:
  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  state = jax.eval_shape(tx.init, params)
  start = time.perf_counter()
  jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
  return time.perf_counter() - start


def measure(names, trees, rounds, progress=True):
  rows = []
  bar = tqdm(total=len(names) * len(trees), desc="step cost", unit="case", disable=not progress)
  for case, tree in trees.items():
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), tree)
    adam_ref = {"gradtx.adam": gradtx.adam(1e-3), "optax.adam": optax.adam(1e-3)}
    optax_compile = compile_seconds(adam_ref["optax.adam"], tree, grads)
    for name in names:
      bar.set_postfix_str(f"{case}: {name}")
      spec = gradtx.get_spec(name)
      tx = _with_extra_inputs(spec, spec.build())
      candidates = {**adam_ref, name: tx}
      if name in OPTAX_EQUIVALENTS:
        candidates[f"optax.{name}"] = OPTAX_EQUIVALENTS[name](spec.test_kwargs)
      try:
        timings = time_interleaved(candidates, tree, grads, rounds=rounds, steps_per_round=2)
        row = {
            "case": case,
            "name": name,
            "family": spec.family,
            "ms": timings[name].median * 1e3,
            "vs_gradtx_adam": timings[name].median / timings["gradtx.adam"].median,
            "vs_optax_adam": timings[name].median / timings["optax.adam"].median,
            "vs_optax_same": (
                timings[name].median / timings[f"optax.{name}"].median if f"optax.{name}" in timings else None
            ),
            "state_bytes": state_bytes_per_param(tx, tree),
            "compile_ratio": compile_seconds(tx, tree, grads) / optax_compile,
        }
      except Exception as e:  # report, do not abort the suite
        row = {"case": case, "name": name, "family": spec.family, "error": f"{type(e).__name__}: {e}"[:120]}
      rows.append(row)
      bar.update()
  bar.close()
  return rows


def table(rows, command) -> str:
  device = jax.devices()[0]
  lines = [
      "### Step cost of every optimizer",
      "",
      f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {device.platform} ({device.device_kind}), "
      f"jax {jax.__version__}, optax {optax.__version__}; command: `{command}`. Ratios of median step time "
      "measured side by side (lower is faster); state bytes per parameter; compile time as a ratio to optax.adam's.",
      "",
      "| tree | optimizer | family | ms/step | vs gradtx.adam | vs optax.adam | vs optax's own | state B/param "
      "| compile vs optax.adam |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['case']} | {r['name']} | {r['family']} | failed: {r['error']} | | | | | |")
      continue
    same = "-" if r["vs_optax_same"] is None else f"{r['vs_optax_same']:.2f}"
    lines.append(
        f"| {r['case']} | {r['name']} | {r['family']} | {r['ms']:.2f} | {r['vs_gradtx_adam']:.2f} | "
        f"{r['vs_optax_adam']:.2f} | {same} | {r['state_bytes']:.1f} | {r['compile_ratio']:.2f} |"
    )
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="small trees and few rounds (a smoke run)")
  parser.add_argument("--optimizers", default="", help="comma-separated names (default: all)")
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--params", type=int, default=15_000_000, help="size of the transformer-like tree")
  parser.add_argument("--out", default=RESULTS_DIR)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  names = [n for n in args.optimizers.split(",") if n] or gradtx.list_optimizers()
  if args.quick:
    trees = {"transformer-like": transformer_like_tree(200_000, layers=2), "50 small leaves": many_small_leaves(50)}
    rounds = 2
  else:
    trees = {"transformer-like": transformer_like_tree(args.params), "500 small leaves": many_small_leaves(500)}
    rounds = args.rounds
  rows = measure(names, trees, rounds, progress=not args.no_progress)
  command = "python -m benchmarks.step_cost " + " ".join(argv if argv is not None else sys.argv[1:])
  text = table(rows, command)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "step_cost.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
