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
import optax
import optax.contrib
from tqdm import tqdm

import gradtx
from benchmarks.common import (
  RESULTS_DIR,
  many_small_leaves,
  state_bytes,
  time_interleaved,
  transformer_like_tree,
  tree_size,
  with_extra_inputs,
)

# Registry entries whose algorithm optax also has (same settings as the registry's race kwargs).
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


# Step-cost settings that differ from the registry's race_kwargs. DeepZero at its race density
# (2% of coordinates) would cost 300 000 loss evaluations a step on 15 M parameters; one
# coordinate per leaf times its per-evaluation overhead instead. The table gives each row's budget.
STEP_COST_KWARGS = {"deepzero": {"density": 1e-9}}


def _logits(params):
  """Logits for Sophia-G's estimator: every group of 8 parameters is one example's 8 classes."""
  return jnp.concatenate([x.reshape(-1, 8) for x in jax.tree.leaves(params)])


def state_bytes_per_param(tx, params) -> float:
  return state_bytes(tx, params) / tree_size(params)


def measure(names, trees, rounds, progress=True, on_family=None):
  """Rows of the table: each family's entries timed side by side with the two Adam baselines.

  Grouping by family keeps the baselines in the same interleaved run as the entries they are
  compared with, and compiles them once per family instead of once per entry.
  """
  families: dict[str, list[str]] = {}
  for name in names:
    families.setdefault(gradtx.get_spec(name).family, []).append(name)
  # Curvature last: its Kronecker entries compile slowest, and a run cut short keeps the rest.
  families = dict(sorted(families.items(), key=lambda item: item[0] == "curvature"))
  rows = []
  bar = tqdm(total=len(names) * len(trees), desc="step cost", unit="entry", disable=not progress)
  for case, tree in trees.items():
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), tree)
    for family, members in families.items():
      bar.set_postfix_str(f"{case}: {family}")
      candidates = {"gradtx.adam": gradtx.adam(1e-3), "optax.adam": optax.adam(1e-3)}
      for name in members:
        spec = gradtx.get_spec(name)
        kwargs = {**spec.race_kwargs, **STEP_COST_KWARGS.get(name, {})}
        candidates[name] = with_extra_inputs(spec, spec.factory(**kwargs), logits_fn=_logits)
        if name in OPTAX_EQUIVALENTS:
          candidates[f"optax.{name}"] = OPTAX_EQUIVALENTS[name](spec.race_kwargs)
      t = time_interleaved(candidates, tree, grads, rounds=rounds, steps_per_round=2, record_errors=True)
      base, ref = t["gradtx.adam"], t["optax.adam"]
      for name in members:
        evals = gradtx.estimators.function_evals_per_step(candidates[name].init(tree))
        label = family if evals is None else f"{family} (ZO, {evals} evals/step)"
        row = {"case": case, "name": name, "family": label}
        if t[name].error:
          row["error"] = t[name].error
        else:
          same = t.get(f"optax.{name}")
          row.update(
              ms=t[name].median * 1e3,
              vs_gradtx_adam=t[name].median / base.median,
              vs_optax_adam=t[name].median / ref.median,
              vs_optax_same=t[name].median / same.median if same is not None and not same.error else None,
              state_bytes=state_bytes_per_param(candidates[name], tree),
              compile_ratio=t[name].compile_seconds / ref.compile_seconds,
          )
        rows.append(row)
        bar.update()
      if on_family is not None:
        on_family(rows)
  bar.close()
  return rows


def table(rows, command) -> str:
  device = jax.devices()[0]
  lines = [
      "### Step cost of every optimizer",
      "",
      f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {device.platform} ({device.device_kind}), "
      f"jax {jax.__version__}, optax {optax.__version__}; command: `{command}`. Ratios of median step time "
      "measured side by side (lower is faster); state bytes per parameter; compile time as a ratio to optax.adam's. "
      "Each entry runs with its registry race_kwargs, except "
      + ", ".join(f"{k} with {v}" for k, v in STEP_COST_KWARGS.items())
      + " (one coordinate per leaf; the family column gives the loss evaluations per step).",
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
  parser.add_argument("--trees", choices=("both", "transformer", "small"), default="both",
                      help="which trees: the transformer-like one, the 500 small leaves, or both")
  parser.add_argument("--out", default=RESULTS_DIR)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  names = [n for n in args.optimizers.split(",") if n] or gradtx.list_optimizers()
  if args.quick:
    trees = {"transformer-like": transformer_like_tree(200_000, layers=2), "50 small leaves": many_small_leaves(50)}
    rounds = 2
  else:
    trees = {}
    if args.trees in ("both", "transformer"):
      trees["transformer-like"] = transformer_like_tree(args.params)
    if args.trees in ("both", "small"):
      trees["500 small leaves"] = many_small_leaves(500)
    rounds = args.rounds
  command = "python -m benchmarks.step_cost " + " ".join(argv if argv is not None else sys.argv[1:])
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "step_cost.md")

  def save(rows):  # after every family, so an interrupted run keeps what it measured
    with open(path, "w") as f:
      f.write(table(rows, command))

  rows = measure(names, trees, rounds, progress=not args.no_progress, on_family=save)
  save(rows)
  print(table(rows, command))


if __name__ == "__main__":
  main()
