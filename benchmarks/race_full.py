"""The full race (``python -m benchmarks.race --full``, run by ``make bench``).

For every optimizer and problem: the learning rate is tuned on seed 0 over the registry's
``race_kwargs`` value times {1/3, 1, 3} (lowest mean of the last three recorded losses; a diverged
run scores infinity), extended by further factors of 3 while the best rate is at an edge of the
sweep (down to 1/27 and up to 27 times), then the tuned rate runs on every seed. Reported: final loss (mean and
min-max over seeds), steps and wall time to the problem's target loss, and the median step time
measured in the race itself (its ratio to Adam's is the "step cost").

Writes ``race_<problem>.md``, ``race_<problem>.png`` (loss curves per family, min-max band over
seeds), ``race_<problem>.json`` (rows with curves; ``--merge`` re-races some optimizers and keeps
the other rows) and ``race_scatter.png``: time to target
against step cost, one panel per problem found in the results folder.
"""

import json
import math
import os

import numpy as np
from tqdm import tqdm

import gradtx
from benchmarks import race, race_problems

SWEEP = (1 / 3, 1.0, 3.0)
MAX_EXTENSION = 2  # further factors of 3 the sweep may add on the side where its best rate lies
SWEEP_RULE = "race_kwargs x {1/3, 1, 3}, extended by factors of 3 (to x1/27 or x27) while the best rate is at an edge"


def _score(losses: np.ndarray) -> float:
  tail = losses[-3:]
  return float(np.mean(tail)) if np.all(np.isfinite(tail)) else math.inf


def _steps_to_target(losses: np.ndarray, target: float, eval_every: int) -> float:
  hit = np.nonzero(losses <= target)[0]
  return float((hit[0] + 1) * eval_every) if hit.size else math.inf


def race_one(spec, problem, *, steps: int, seeds, bar, run: str) -> dict:
  """Sweep, then seeds, for one optimizer on one problem: a summary row (curves included)."""
  runner = race.Runner(spec, problem, steps, problem.eval_every)
  base = runner.kwargs.get("learning_rate")
  sweepable = isinstance(base, (int, float)) and not isinstance(base, bool)
  factors = list(SWEEP) if sweepable else [None]
  sweep, scores = {}, {}

  def try_factor(f):
    lr = None if f is None else base * f
    bar.set_postfix_str(f"{spec.name} lr={lr:.3g}" if lr is not None else spec.name)
    sweep[f] = runner.run(seeds[0], lr)
    scores[f] = _score(sweep[f].losses)
    bar.update()

  for f in factors:
    try_factor(f)
  best = min(factors, key=lambda f: scores[f])
  # A best rate at an edge of the sweep may not be the best rate: step outwards while it improves.
  for _ in range(MAX_EXTENSION if sweepable else 0):
    if not math.isfinite(scores[best]) or best not in (min(factors), max(factors)):
      break
    f = best / 3 if best == min(factors) else best * 3
    bar.total = (bar.total or 0) + 1
    try_factor(f)
    factors = sorted([*factors, f])
    if scores[f] >= scores[best]:
      break
    best = f
  rates = [None if f is None else base * f for f in factors]
  runs = [sweep[best]]
  for seed in seeds[1:]:
    bar.set_postfix_str(f"{spec.name} seed {seed}")
    runs.append(runner.run(seed, None if best is None else base * best))
    bar.update()
  curves = np.stack([r.losses for r in runs])
  finals = curves[:, -1]
  step_s = float(np.median([r.step_s for r in runs]))
  to_target = [_steps_to_target(c, problem.target, problem.eval_every) for c in curves]
  reached = [s for s in to_target if math.isfinite(s)]
  return {
      "name": spec.name,
      "family": runner.family,
      "learning_rate": None if best is None else base * best,
      "factor": best,
      "sweep": {("-" if lr is None else f"{lr:.4g}"): scores[f] for f, lr in zip(factors, rates)},
      "final_mean": float(np.mean(finals)),
      "final_min": float(np.min(finals)),
      "final_max": float(np.max(finals)),
      "metric_mean": float(np.mean([r.metric for r in runs])),
      "step_ms": 1e3 * step_s,
      "reached": len(reached),
      "seeds": len(runs),
      "steps_to_target": float(np.mean(reached)) if reached else None,
      "seconds_to_target": float(np.mean(reached)) * step_s if reached else None,
      "compile_s": float(sum(r.compile_s for r in sweep.values())),
      "curves": [[float(f"{v:.5g}") for v in c] for c in curves],
      "run": run,
  }


def _fmt(x: float) -> str:
  return "nan" if not math.isfinite(x) else f"{x:.4f}" if abs(x) < 100 else f"{x:.3g}"


def table(rows, failed, problem, *, steps: int, seeds, sweep_rule: str = SWEEP_RULE) -> str:
  adam = next((r for r in rows if r["name"] == "adam"), None)
  ok = sorted(rows, key=lambda r: (r["reached"] == 0, r["seconds_to_target"] or 0.0,
                                   not math.isfinite(r["final_mean"]), r["final_mean"]))
  lines = [
      f"### Race: {problem.title}",
      "",
      f"{steps} steps, batch {problem.batch_size}, seeds {list(seeds)}; learning rate tuned on seed "
      f"{seeds[0]} over {sweep_rule}; target {problem.eval_label} {problem.target}, "
      f"recorded every {problem.eval_every} steps. Time to target = steps to target x the median step "
      "time measured in the race (amortized loss recording included); step cost = that step time / "
      f"Adam's. DeepZero's density is capped at about {race.MAX_COORDINATE_EVALS} loss evaluations per "
      "step. Sorted by time to target, then final loss.",
      "",
      *[f"Run {run}." for run in dict.fromkeys(r["run"] for r in rows)],
      "",
      f"| optimizer | family | tuned lr (x race_kwargs) | final {problem.eval_label}: mean (min-max) "
      f"| {problem.metric_label} | reached target | steps to target | time to target (s) | ms/step "
      "| step cost vs adam |",
      "|---|---|---|---|---:|:-:|---:|---:|---:|---:|",
  ]
  for r in ok:
    lr = "-" if r["learning_rate"] is None else f"{r['learning_rate']:.3g} (x{r['factor']:.3g})"
    final = f"{_fmt(r['final_mean'])} ({_fmt(r['final_min'])}-{_fmt(r['final_max'])})"
    hit = r["steps_to_target"] is not None
    cost = f"{r['step_ms'] / adam['step_ms']:.2f}" if adam else "-"
    metric = "-" if r.get("metric_mean") is None else f"{r['metric_mean']:.3f}"  # None: not recorded
    lines.append(
        f"| {r['name']} | {r['family']} | {lr} | {final} | {metric} | {r['reached']}/{r['seeds']} "
        f"| {r['steps_to_target']:.0f} | {r['seconds_to_target']:.2f} | {r['step_ms']:.2f} | {cost} |"
        if hit else
        f"| {r['name']} | {r['family']} | {lr} | {final} | {metric} | 0/{r['seeds']} "
        f"| - | - | {r['step_ms']:.2f} | {cost} |"
    )
  for name, family, error in failed:
    lines.append(f"| {name} | {family} | failed: {error} | | | | | | | |")
  return "\n".join(lines) + "\n"


def plot_curves(rows, problem, path: str) -> None:
  """Mean loss per optimizer with its min-max band over seeds, one panel per family."""
  families = list(dict.fromkeys(race.panel_of(r["family"])[0] for r in rows))
  reference = next((r for r in rows if r["name"] == "adam"), None)
  plt, fig, axes = race.family_axes(max(1, len(families)))
  for ax, family in zip(axes.flat, families):
    members = [r for r in rows if race.panel_of(r["family"])[0] == family]
    if reference is not None and reference not in members:
      members = [reference, *members]
    for r in members:
      curves = np.asarray(r["curves"], float)
      x = np.arange(1, curves.shape[1] + 1) * problem.eval_every
      ref = r is reference and r["family"] != family
      kw = {"color": "0.6", "lw": 2} if ref else {"lw": 1.2}
      label = "adam (reference)" if ref else r["name"] + race.panel_of(r["family"])[1]
      (line,) = ax.plot(x, curves.mean(0), label=label, **kw)
      ax.fill_between(x, curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15, lw=0)
    ax.axhline(problem.target, color="k", ls="--", lw=0.8)
    race.finish_panel(ax, family)
  title = (f"Race, tuned learning rates, mean and min-max of {rows[0]['seeds']} seeds: {problem.title}"
           if rows else problem.title)
  race.save_figure(plt, fig, axes, problem, title, path)


def plot_scatter(out: str, path: str) -> bool:
  """Time to target against step cost (relative to Adam), one panel per problem with results."""
  found = []
  for name in race_problems.PROBLEMS:
    p = os.path.join(out, f"race_{name}.json")
    if os.path.exists(p):
      with open(p) as f:
        found.append(json.load(f))
  if not found:
    return False
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(found), figsize=(6.5 * len(found), 5.2), squeeze=False)
  colors = {f: plt.cm.tab10(i) for i, f in enumerate(gradtx._src.core.registry.FAMILIES)}
  for ax, res in zip(axes.flat, found):
    rows = res["rows"]
    adam = next((r for r in rows if r["name"] == "adam"), None)
    if adam is None:
      continue
    hits = [r for r in rows if r["seconds_to_target"] is not None]
    ceiling = 2 * max([r["seconds_to_target"] for r in hits], default=1.0)
    for r in rows:
      family = r["family"].split(" ")[0]
      cost = r["step_ms"] / adam["step_ms"]
      hit = r["seconds_to_target"] is not None
      y = r["seconds_to_target"] if hit else ceiling
      ax.scatter(cost, y, color=colors.get(family, "k"), marker="o" if hit else "x", s=28,
                 label=family if hit else None)
      ax.annotate(r["name"], (cost, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axhline(ceiling, color="0.7", lw=0.8, ls=":")
    ax.text(0.01, 0.98, "x: target not reached", transform=ax.transAxes, fontsize=7, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step cost (median step time / Adam's)")
    ax.set_ylabel(f"wall seconds to {res['target_label']} {res['target']}")
    ax.set_title(res["title"], fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
  fig.suptitle("Time to target against step cost (tuned learning rates, mean over seeds)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def _previous(out: str, name: str, names) -> tuple[list, list]:
  """Rows and failures of an earlier ``race_<name>.json`` for optimizers not in ``names``."""
  path = os.path.join(out, f"race_{name}.json")
  if not os.path.exists(path):
    return [], []
  with open(path) as f:
    old = json.load(f)
  keep = [r for r in old["rows"] if r["name"] not in names and "curves" in r]
  return keep, [tuple(x) for x in old.get("failed", []) if x[0] not in names]


def main(names, problems, *, steps, seeds, out: str, progress: bool, argv, merge: bool = False) -> None:
  for name in problems:
    problem = race_problems.get(name)
    n_steps = steps or problem.full_steps
    rows, failed = [], []
    run = f"{race.machine()}; command `{race.command(argv)}`"
    total = len(names) * (len(SWEEP) + len(seeds) - 1)
    bar = tqdm(total=total, desc=f"race --full {name}", unit="run", disable=not progress)
    for opt in names:
      spec = gradtx.get_spec(opt)
      done = bar.n
      try:
        rows.append(race_one(spec, problem, steps=n_steps, seeds=seeds, bar=bar, run=run))
      except Exception as e:  # a broken entry is reported in the table, not fatal to the race
        error = f"{type(e).__name__}: {e}".splitlines()[0][:120].replace("|", "/")
        tqdm.write(f"{opt}: failed: {error}")
        failed.append((opt, spec.family, error))
      bar.update(max(0, done + len(SWEEP) + len(seeds) - 1 - bar.n))
    bar.close()
    if merge:
      kept, kept_failed = _previous(out, name, names)
      rows, failed = kept + rows, kept_failed + failed
    text = table(rows, failed, problem, steps=n_steps, seeds=seeds)
    print()
    print(text)
    md = race.write(out, f"race_{name}.md", text)
    race.write(out, f"race_{name}.json", json.dumps({
        "problem": name, "title": problem.title, "target": problem.target,
        "target_label": problem.eval_label, "machine": race.machine(), "command": race.command(argv),
        "rows": rows, "failed": failed,
    }, default=str))
    png = os.path.join(out, f"race_{name}.png")
    plot_curves(rows, problem, png)
    print(f"wrote {md} and {png}")
  scatter = os.path.join(out, "race_scatter.png")
  if plot_scatter(out, scatter):
    print(f"wrote {scatter}")
