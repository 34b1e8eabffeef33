"""The optimizer race: every registered optimizer trains the same models on data that ship offline.

Problems (benchmarks/race_problems.py): ``mlp`` and ``cnn`` on scikit-learn's digits, and
``transformer``, a character-level transformer on a bundled public-domain text. Each optimizer gets
the same model, data, batches and seeds, and whatever extra inputs its registry entry asks for
(loss function, gradient function, per-example gradients, ...), built by
``gradtx.build_extra_args``. Training runs as one compiled ``lax.scan`` per optimizer; the
learning rate and the seed are arguments of the compiled run, so a sweep compiles once. Steps/s
is measured on the compiled run alone.

Two modes:
  quick (``make demo``): one seed, the registry's ``race_kwargs``, one table and plot per problem
    (``race.md``/``race.png`` for the MLP, ``race_demo_<problem>.*`` for the others).
  ``--full`` (``make bench``): learning rate tuned per optimizer over ``race_kwargs``' value times
    {1/3, 1, 3} (extended past an edge while it improves), then 3 seeds; final loss with its spread,
    steps and wall time to a target loss;
    ``race_<problem>.md/png/json`` and ``race_scatter.png`` (see benchmarks/race_full.py).

Usage:
  python -m benchmarks.race [--problem mlp|cnn|transformer|all] [--full] [--optimizers adam,sgd]
                            [--family moments] [--steps N] [--seeds 0 1 2]
"""

import argparse
import dataclasses
import functools
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import gradtx
from benchmarks import race_problems
from benchmarks.common import RESULTS_DIR, machine, tree_size

# DeepZero estimates ``density * n`` coordinates per step, one loss evaluation each; on the larger
# problems its race density is capped so that a step costs at most this many evaluations.
MAX_COORDINATE_EVALS = 200
# Hyperparameters passed to the compiled run as arguments (unless an entry marks them static).
TRACED = ("learning_rate", "key")


@dataclasses.dataclass
class Run:
  losses: np.ndarray  # the recorded loss after every ``eval_every`` steps
  metric: float  # test accuracy or held-out loss after training
  step_s: float  # wall seconds per training step of the compiled run
  compile_s: float


def problem_kwargs(spec: gradtx.OptimizerSpec, problem: race_problems.Problem, n_params: int) -> dict:
  """``race_kwargs`` adapted to a problem: batch sizes match it, DeepZero's density is capped."""
  kwargs = dict(spec.race_kwargs)
  for name in ("batch_size", "expected_batch_size"):
    if name in kwargs:
      kwargs[name] = problem.batch_size
  if "density" in kwargs and isinstance(kwargs["density"], float):
    kwargs["density"] = min(kwargs["density"], MAX_COORDINATE_EVALS / n_params)
  return kwargs


def family_label(spec: gradtx.OptimizerSpec, kwargs: dict | None = None, params: Any = None) -> str:
  """The family column: estimators are marked ZO, with their loss evaluations per step.

  The count comes from ``gradtx.function_evals_per_step`` on the optimizer's state for
  ``params``; without ``params`` the label is just "estimators (ZO)".
  """
  if spec.family != "estimators":
    return spec.family
  if params is not None:
    kwargs = dict(spec.race_kwargs if kwargs is None else kwargs)
    if spec.needs_key:
      kwargs["key"] = 0
    evals = gradtx.function_evals_per_step(spec.factory(**kwargs).init(params))
    if evals is not None:
      return f"estimators (ZO, {evals} evals/step)"
  return "estimators (ZO)"


@functools.cache
def eval_seconds(name: str) -> float:
  """Median seconds of one recorded-loss evaluation of problem ``name``, to take out of step times."""
  problem = race_problems.get(name)
  params = problem.init(0)
  fn = jax.jit(problem.eval_loss)
  fn(params).block_until_ready()
  times = []
  for _ in range(15):
    start = time.perf_counter()
    fn(params).block_until_ready()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


class Runner:
  """Compiled training runs of one optimizer on one problem; ``run(seed, learning_rate)``."""

  def __init__(self, spec: gradtx.OptimizerSpec, problem: race_problems.Problem, steps: int, eval_every: int):
    self.spec, self.problem, self.eval_every = spec, problem, eval_every
    self.chunks = max(1, steps // eval_every)
    self.steps = self.chunks * eval_every
    params = problem.init(0)
    self.kwargs = problem_kwargs(spec, problem, tree_size(params))
    self.family = family_label(spec, self.kwargs, params)
    self.traced = [
        n for n in TRACED
        if n in self.kwargs and n not in spec.static_args and isinstance(self.kwargs[n], (int, float))
    ]
    self._compiled: dict[Any, Any] = {}

  def _build(self, static: dict):
    spec, problem = self.spec, self.problem

    def run(params, idx, traced):
      tx = spec.factory(**static, **traced)

      def step(carry, batch_idx):
        p, s = carry
        batch = problem.batch_fn(batch_idx)
        at = p if spec.gradient_point is None else spec.gradient_point(p, s)
        grads = jax.grad(problem.loss_fn)(at, batch)
        extra = gradtx.build_extra_args(spec.extra_inputs, problem.loss_fn, p, batch, logits_fn=problem.logits_fn)
        updates, s = tx.update(grads, s, p, **extra)
        return (optax.apply_updates(p, updates), s), None

      def chunk(carry, chunk_idx):
        carry, _ = jax.lax.scan(step, carry, chunk_idx)
        return carry, problem.eval_loss(carry[0])

      (p, _), losses = jax.lax.scan(chunk, (params, tx.init(params)), idx)
      return losses, problem.metric(p)

    return jax.jit(run)

  def run(self, seed: int, learning_rate: float | None = None) -> Run:
    kwargs = dict(self.kwargs)
    if self.spec.needs_key:
      kwargs["key"] = seed
    if learning_rate is not None:
      kwargs["learning_rate"] = learning_rate
    traced = {n: jnp.asarray(kwargs.pop(n), jnp.int32 if n == "key" else jnp.float32) for n in self.traced}
    params = self.problem.init(seed)
    shape = (self.chunks, self.eval_every, self.problem.batch_size)
    idx = jax.random.randint(jax.random.PRNGKey(1000 + seed), shape, 0, self.problem.num_examples)
    cache_key = repr(sorted(kwargs.items()))
    start = time.perf_counter()
    if cache_key not in self._compiled:
      try:
        self._compiled[cache_key] = self._build(kwargs).lower(params, idx, traced).compile()
      except Exception:
        if not self.traced:
          raise
        # This entry cannot take its learning rate or key as an array: compile per value instead.
        self.traced = []
        return self.run(seed, learning_rate)
    compile_s = time.perf_counter() - start
    run_start = time.perf_counter()
    losses, metric = jax.block_until_ready(self._compiled[cache_key](params, idx, traced))
    # The recorded losses are computed inside the run: their measured cost comes out of the step time.
    raw = (time.perf_counter() - run_start) / self.steps
    step_s = max(raw - eval_seconds(self.problem.name) / self.eval_every, 0.5 * raw)
    return Run(np.asarray(losses), float(metric), step_s, compile_s)


def command(argv) -> str:
  return "python -m benchmarks.race " + " ".join(sys.argv[1:] if argv is None else argv)


# ---------------------------------------------------------------------------------------------
# Quick mode (`make demo`): one seed, race_kwargs as registered.


def race(names, problem, *, steps: int, seeds, progress: bool = True):
  results = []
  bar = tqdm(total=len(names) * len(seeds), desc=f"race {problem.name}", unit="run", disable=not progress)
  for name in names:
    spec = gradtx.get_spec(name)
    runs = []
    runner = None
    for seed in seeds:
      bar.set_postfix_str(name)
      try:
        runner = runner or Runner(spec, problem, steps, problem.eval_every)
        runs.append(runner.run(seed))
      except Exception as e:  # a broken entry is reported in the table, not fatal to the race
        tqdm.write(f"{name}: failed: {type(e).__name__}: {str(e)[:300]}")
      bar.update()
    if not runs:
      results.append({"name": name, "family": runner.family if runner else spec.family, "failed": True})
      continue
    curves = np.stack([r.losses for r in runs])
    results.append({
        "name": name,
        "family": runner.family,
        "failed": False,
        "curve": np.mean(curves, axis=0),
        "final_loss": float(np.mean(curves[:, -1])),
        "metric": float(np.mean([r.metric for r in runs])),
        "steps_per_s": 1.0 / float(np.median([r.step_s for r in runs])),
        "wall_s": float(np.sum([r.compile_s + r.step_s * runner.steps for r in runs])),
        "kwargs": runner.kwargs,
    })
  bar.close()
  return results


def _short(value: Any) -> str:
  """A hyperparameter as the table shows it: numbers and strings as they are, objects by kind."""
  if isinstance(value, float):
    return f"{value:.3g}"
  if isinstance(value, (bool, int, str)) or value is None:
    return repr(value) if isinstance(value, str) else str(value)
  return f"<{type(value).__name__}>"


def table(results, problem, *, steps: int, seeds, argv=None) -> str:
  ok = [r for r in results if not r["failed"]]
  ok.sort(key=lambda r: (not np.isfinite(r["final_loss"]), r["final_loss"]))
  lines = [
      f"{problem.title}: {steps} steps, batch {problem.batch_size}, seeds {list(seeds)}, the registry's "
      f"race_kwargs. Sorted by final {problem.eval_label}.",
      "",
      f"Run {machine()}; command `{command(argv)}`.",
      "",
      f"| optimizer | family | hyperparameters | final {problem.eval_label} | {problem.metric_label} "
      "| steps/s | wall time (s) |",
      "|---|---|---|---:|---:|---:|---:|",
  ]
  for r in ok:
    hp = ", ".join(f"{k}={_short(v)}" for k, v in r["kwargs"].items())
    lines.append(
        f"| {r['name']} | {r['family']} | {hp} | {r['final_loss']:.4f} | {r['metric']:.3f} | "
        f"{r['steps_per_s']:.0f} | {r['wall_s']:.1f} |"
    )
  for r in results:
    if r["failed"]:
      lines.append(f"| {r['name']} | {r['family']} | | failed | | | |")
  return "\n".join(lines) + "\n"


def panel_of(family: str) -> tuple[str, str]:
  """(plot panel, legend suffix) of a family label: "estimators (ZO, 2 evals/step)" ->
  ("estimators", " (ZO, 2 evals/step)"), so all estimators share one panel."""
  panel, _, rest = family.partition(" (")
  return panel, f" ({rest}" if rest else ""


def family_axes(n_panels: int):
  """A grid of log-y loss panels, at most four across."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  cols = min(4, n_panels)
  rows = -(-n_panels // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
  for ax in axes.flat[n_panels:]:
    ax.set_visible(False)
  return plt, fig, axes


def plot(results, problem, path: str) -> None:
  """Loss curves, one panel per family, each with Adam drawn as the common reference."""
  done = [r for r in results if not r["failed"]]
  families = list(dict.fromkeys(panel_of(r["family"])[0] for r in done))
  reference = next((r for r in done if r["name"] == "adam"), None)
  plt, fig, axes = family_axes(max(1, len(families)))
  for ax, family in zip(axes.flat, families):
    if reference is not None and reference["family"] != family:
      x = np.arange(1, len(reference["curve"]) + 1) * problem.eval_every
      ax.plot(x, reference["curve"], color="0.6", lw=2, label="adam (reference)")
    for r in (r for r in done if panel_of(r["family"])[0] == family):
      x = np.arange(1, len(r["curve"]) + 1) * problem.eval_every
      ax.plot(x, r["curve"], lw=1.2, label=r["name"] + panel_of(r["family"])[1])
    finish_panel(ax, family)
  save_figure(plt, fig, axes, problem, f"gradtx optimizer race: {problem.title}", path)


def finish_panel(ax, family: str) -> None:
  """Title, log scale, grid and legend of one family's panel of loss curves."""
  ax.set_title(family)
  ax.set_yscale("log")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=7)


def save_figure(plt, fig, axes, problem, title: str, path: str) -> None:
  """Axis labels on the outer panels, the title, then the PNG."""
  for ax in axes[-1]:
    ax.set_xlabel("step")
  for ax in axes[:, 0]:
    ax.set_ylabel(problem.eval_label)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write(out: str, name: str, text: str) -> str:
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, name)
  with open(path, "w") as f:
    f.write(text)
  return path


def main(argv: Any = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--problem", default="mlp", choices=[*race_problems.PROBLEMS, "all"])
  parser.add_argument("--full", action="store_true", help="tuned learning rates, 3 seeds, time to target")
  parser.add_argument("--optimizers", default="", help="comma-separated names (default: all registered)")
  parser.add_argument("--family", default=None, help="only this family")
  parser.add_argument("--steps", type=int, default=None, help="default: the problem's demo/full steps")
  parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: [0], or [0, 1, 2] with --full")
  parser.add_argument("--merge", action="store_true",
                      help="with --full: keep the other optimizers' rows of the existing race_<problem>.json")
  parser.add_argument("--out", default=RESULTS_DIR, help="where the .md/.png files go")
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)

  names = [n for n in args.optimizers.split(",") if n] or gradtx.list_optimizers(args.family)
  unknown = sorted(set(names) - set(gradtx.list_optimizers()))
  if unknown:
    parser.error(f"unknown optimizers {unknown}; registered: {gradtx.list_optimizers()}")
  problems = race_problems.PROBLEMS if args.problem == "all" else (args.problem,)
  if args.full:
    from benchmarks import race_full

    race_full.main(names, problems, steps=args.steps, seeds=args.seeds or [0, 1, 2], out=args.out,
                   progress=not args.no_progress, argv=argv, merge=args.merge)
    return
  seeds = args.seeds or [0]
  for name in problems:
    problem = race_problems.get(name)
    steps = args.steps or problem.demo_steps
    results = race(names, problem, steps=steps, seeds=seeds, progress=not args.no_progress)
    text = table(results, problem, steps=steps, seeds=seeds, argv=argv)
    print()
    print(text)
    stem = "race" if name == "mlp" else f"race_demo_{name}"
    md = write(args.out, f"{stem}.md", text)
    png = os.path.join(args.out, f"{stem}.png")
    plot(results, problem, png)
    print(f"wrote {md} and {png}")


if __name__ == "__main__":
  main()
