"""Step cost of every registered optimizer, as ratios measured side by side in one run.

For each registry entry: one jitted, donated update+apply step as a ratio to gradtx.adam and to
optax.adam (and to optax's own version where optax has the same algorithm), on the transformer-like
tree and on 500 small leaves; optimizer-state bytes per parameter; compile time against optax.adam.
Extra inputs (loss, gradient function, ...) are built from a quadratic loss on the tree, so their
cost is part of the step. Writes benchmarks/results/step_cost.md.

Usage: python -m benchmarks.step_cost [--quick] [--optimizers adam,lion] [--families curvature]
                                      [--trees both] [--rounds 7] [--merge] [--out DIR]
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import optax
import optax.contrib
from tqdm import tqdm

import gradtx
from benchmarks import race
from benchmarks.common import (
  RESULTS_DIR,
  machine,
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


def _kwargs(name: str) -> dict:
  return {**gradtx.get_spec(name).race_kwargs, **STEP_COST_KWARGS.get(name, {})}


def build(name: str) -> optax.GradientTransformationExtraArgs:
  """Registry entry ``name`` with its step-cost settings, its extra inputs built from the quadratic loss."""
  spec = gradtx.get_spec(name)
  return with_extra_inputs(spec, spec.factory(**_kwargs(name)), logits_fn=_logits)


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
        candidates[name] = build(name)
        if name in OPTAX_EQUIVALENTS:
          candidates[f"optax.{name}"] = OPTAX_EQUIVALENTS[name](gradtx.get_spec(name).race_kwargs)
      t = time_interleaved(candidates, tree, grads, rounds=rounds, steps_per_round=2, record_errors=True)
      base, ref = t["gradtx.adam"], t["optax.adam"]
      for name in members:
        spec = gradtx.get_spec(name)
        row = {"case": case, "name": name, "family": race.family_label(spec, _kwargs(name), tree)}
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


def merged(old: list[dict], new: list[dict]) -> list[dict]:
  """``old`` with each (tree, optimizer) row that ``new`` re-measured replaced in place; new ones appended."""
  fresh = {(r["case"], r["name"]): r for r in new}
  out = [fresh.pop((r["case"], r["name"]), r) for r in old]
  return out + [r for r in new if (r["case"], r["name"]) in fresh]


def _run_lines(rows) -> list[str]:
  """The runs that measured the table's rows; in a merged table, which rows each later run re-measured."""
  runs = list(dict.fromkeys(r["run"] for r in rows))
  if len(runs) == 1:
    return [f"Run {runs[0]}."]
  lines = [f"Run 1 (the other rows): {runs[0]}."]
  for i, run in enumerate(runs[1:], 2):
    names = ", ".join(sorted({r["name"] for r in rows if r["run"] == run}))
    lines.append(f"Run {i} ({names}): {run}.")
  return lines


def table(rows) -> str:
  lines = [
      "### Step cost of every optimizer",
      "",
      "Ratios of median step time measured side by side (lower is faster); state bytes per parameter; compile "
      "time as a ratio to optax.adam's. Each entry runs with its registry race_kwargs, except "
      + ", ".join(f"{k} with {v}" for k, v in STEP_COST_KWARGS.items())
      + " (one coordinate per leaf; the family column gives the loss evaluations per step).",
      "",
      *_run_lines(rows),
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
  parser.add_argument("--families", default="",
                      help="comma-separated families to keep, e.g. curvature (default: all)")
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--params", type=int, default=15_000_000, help="size of the transformer-like tree")
  parser.add_argument("--trees", choices=("both", "transformer", "small"), default="both",
                      help="which trees: the transformer-like one, the 500 small leaves, or both")
  parser.add_argument("--out", default=RESULTS_DIR)
  parser.add_argument("--merge", action="store_true",
                      help="keep the other rows of the existing step_cost.json, replacing re-measured ones")
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  names = [n for n in args.optimizers.split(",") if n] or gradtx.list_optimizers()
  families = {f for f in args.families.split(",") if f}
  known = {gradtx.get_spec(n).family for n in gradtx.list_optimizers()}
  if families - known:
    parser.error(f"--families: unknown {sorted(families - known)}; known: {sorted(known)}")
  if families:
    names = [n for n in names if gradtx.get_spec(n).family in families]
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
  run = f"{machine()}; command `{command}`"
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "step_cost.md")
  kept = []
  if args.merge and os.path.exists(path[:-3] + ".json"):
    with open(path[:-3] + ".json") as f:
      kept = json.load(f)["rows"]

  def save(rows):  # after every family, so an interrupted run keeps what it measured
    rows = merged(kept, [dict(r, run=run) for r in rows])
    with open(path, "w") as f:
      f.write(table(rows))
    with open(path[:-3] + ".json", "w") as f:
      json.dump({"rows": rows}, f, indent=0)
    return rows

  rows = save(measure(names, trees, rounds, progress=not args.no_progress, on_family=save))
  print(table(rows))


if __name__ == "__main__":
  main()
