"""Scaling: step time and optimizer-state memory against parameter count, one entry per family.

Each size is a float32 tree shaped like the blocks of a transformer (:func:`blocks_tree`: 4
layers of attention and 4x MLP matrices, LayerNorm and bias vectors; no embedding, whose fixed
vocabulary side would dominate the matrix methods at small sizes), its width set by the size.
At each size the candidates are timed side by side in interleaved rounds
(``benchmarks.common.time_interleaved``: jitted, donated update+apply steps); a round is
``--steps-per-round`` steps (10 by default, the preconditioning period of Shampoo and SOAP, so
each round holds one preconditioner refresh). State memory is the bytes of ``tx.init(params)``,
from abstract evaluation (nothing is allocated).

Entries that need the loss (AdaHessian's Hessian-vector product, MeZO's two evaluations) get the
elementwise loss ``sum(p**2) / 2`` through ``gradtx.build_extra_args``: their times include that
loss's cost, which is far below a real model's, so they show the optimizer's own overhead. DP-SGD
is left out: it needs per-example gradients, which a parameter tree without a model does not have.

An entry whose median step exceeds ``--max-step-seconds`` at one size is not run at the larger
ones (the table says so), which keeps the default run within minutes on two cores.

Writes ``scaling.md``, ``scaling.json`` (the numbers) and ``scaling.png`` (log-log; the fitted
slope of time against size is the growth order: 1 for elementwise methods, more where matrix
roots or inverses dominate).

Usage:
  python -m benchmarks.scaling [--quick] [--max-params 1e8] [--optimizers adam,muon]
"""

import argparse
import json
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import gradtx
from benchmarks import race
from benchmarks.common import RESULTS_DIR, state_bytes, time_interleaved, tree_size, with_extra_inputs

ENTRIES = ("adam", "lion", "muon", "shampoo", "soap", "psgd_kron", "adahessian", "sgld", "mezo")
SIZES = (1e6, 3e6, 1e7, 3e7, 1e8)
QUICK_SIZES = (2e4, 1e5)
LAYERS = 4


def blocks_tree(total_params: int, layers: int = LAYERS, seed: int = 0) -> dict:
  """``layers`` transformer blocks of width d (12 d^2 + 9 d parameters each), about ``total_params``."""
  d = max(8, int(np.sqrt(total_params / (12 * layers))))
  rng = np.random.default_rng(seed)
  shapes = {"ln1": (d,), "q": (d, d), "k": (d, d), "v": (d, d), "o": (d, d), "ln2": (d,),
            "mlp_in": (d, 4 * d), "mlp_in_bias": (4 * d,), "mlp_out": (4 * d, d), "mlp_out_bias": (d,)}
  return {
      f"layer_{i}": {k: jnp.asarray(rng.standard_normal(s, np.float32) * 0.02) for k, s in shapes.items()}
      for i in range(layers)
  }


def build(name: str) -> optax.GradientTransformation:
  spec = gradtx.get_spec(name)
  kwargs = dict(spec.race_kwargs)
  if spec.needs_key:
    kwargs["key"] = 0
  return with_extra_inputs(spec, spec.factory(**kwargs))


def measure(names, sizes, *, rounds: int, steps_per_round: int, max_step_seconds: float, progress: bool):
  """{name: {n_params: (seconds per step or nan, state bytes or nan, error or None)}}."""
  results: dict[str, dict[int, tuple[float, float, str | None]]] = {n: {} for n in names}
  too_slow: dict[str, str] = {}
  bar = tqdm(total=len(sizes), desc="scaling", unit="size", disable=not progress)
  for size in sizes:
    params = blocks_tree(int(size))
    n = tree_size(params)
    grads = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), params)
    candidates, memory, errors = {}, {}, {}
    for name in names:
      if name in too_slow:
        results[name][n] = (float("nan"), float(state_bytes(build(name), params)), too_slow[name])
        continue
      bar.set_postfix_str(f"{n / 1e6:.1f} M params: build {name}")
      try:
        candidates[name] = build(name)
        memory[name] = state_bytes(candidates[name], params)
      except Exception as e:  # reported in the table; the other entries still run
        errors[name] = f"{type(e).__name__}: {e}".splitlines()[0][:120]
    bar.set_postfix_str(f"{n / 1e6:.1f} M params: timing")
    timings = time_interleaved(candidates, params, grads, rounds=rounds, steps_per_round=steps_per_round,
                               record_errors=True)
    for name in names:
      timing = timings.get(name)
      error = errors.get(name) or (timing.error if timing else None)
      seconds = timing.median if timing and not error else float("nan")
      if name in candidates:
        results[name][n] = (seconds, float(memory.get(name, float("nan"))), error)
        if seconds > max_step_seconds:
          too_slow[name] = f"not timed: {1e3 * seconds:.0f} ms/step at {n / 1e6:.3g} M > --max-step-seconds"
    del params, grads, candidates
    bar.update()
  bar.close()
  return results


def slope(xs, ys) -> float:
  """Least-squares slope of log y against log x over the finite points."""
  pts = [(np.log(x), np.log(y)) for x, y in zip(xs, ys) if np.isfinite(y) and y > 0]
  if len(pts) < 2:
    return float("nan")
  a = np.asarray(pts)
  return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def table(results, argv) -> str:
  sizes = sorted({n for per in results.values() for n in per})
  head = " | ".join(f"{n / 1e6:.3g} M" for n in sizes)
  rule = "|".join("---:" for _ in sizes)
  lines = [
      "### Scaling: step time and state memory against parameter count",
      "",
      f"Float32 trees shaped like {LAYERS} transformer blocks (width from the size); jitted, donated "
      "update+apply steps timed side by side in interleaved rounds (median). Loss-based entries "
      "(adahessian, mezo) use the elementwise loss sum(p^2)/2, so their times show the optimizer's "
      "own overhead, not a model's. Slope: least-squares growth order of time against size.",
      "",
      f"Run {race.machine()}; command `python -m benchmarks.scaling {' '.join(sys.argv[1:] if argv is None else argv)}`"
      ".",
      "",
      f"| ms/step | family | {head} | slope |",
      f"|---|---|{rule}|---:|",
  ]
  small = blocks_tree(int(QUICK_SIZES[0]))
  for name, per in results.items():
    spec = gradtx.get_spec(name)
    ms = [1e3 * per[n][0] if n in per else float("nan") for n in sizes]
    cells = " | ".join("-" if not np.isfinite(v) else f"{v:.3g}" for v in ms)
    family = race.family_label(spec, params=small)
    lines.append(f"| {name} | {family} | {cells} | {slope(sizes, ms):.2f} |")
  lines += ["", f"| state bytes/param | {head} |", f"|---|{rule}|"]
  for name, per in results.items():
    cells = " | ".join(
        "-" if n not in per or not np.isfinite(per[n][1]) else f"{per[n][1] / n:.2f}" for n in sizes
    )
    lines.append(f"| {name} | {cells} |")
  errors = [(name, n, per[n][2]) for name, per in results.items() for n in sizes if n in per and per[n][2]]
  if errors:
    lines += ["", "Not timed or failed:", ""] + [f"- {name} at {n / 1e6:.3g} M: {e}" for name, n, e in errors]
  return "\n".join(lines) + "\n"


def plot(results, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
  stateless = []
  for name, per in results.items():
    sizes = sorted(per)
    ms = [1e3 * per[n][0] for n in sizes]
    mb = [per[n][1] / 2**20 for n in sizes]
    if not np.any(np.isfinite(ms)):
      continue
    order = slope(sizes, ms)
    label = f"{name} ({order:.2f})" if np.isfinite(order) else name
    (line,) = ax_t.plot(sizes, ms, "o-", lw=1.4, ms=4, label=label)
    if per[sizes[-1]][1] >= 0.01 * sizes[-1]:  # entries with no per-parameter state stay off the log axis
      ax_m.plot(sizes, mb, "o-", lw=1.4, ms=4, color=line.get_color(), label=name)
    else:
      stateless.append(name)
  all_sizes = sorted({n for per in results.values() for n in per})
  if all_sizes:
    xs = np.asarray([all_sizes[0], all_sizes[-1]], float)
    params_mb = xs * 4 / 2**20
    ax_m.plot(xs, params_mb, "k--", lw=0.8, label="params (float32)")
  if stateless:
    ax_m.text(0.02, 0.98, f"no per-parameter state: {', '.join(stateless)}", transform=ax_m.transAxes,
              fontsize=7, va="top")
  for ax, ylabel, title in (
      (ax_t, "ms per step (median)", "step time (legend: log-log slope; lines end where a step > limit)"),
      (ax_m, "optimizer state (MiB)", "optimizer state memory"),
  ):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
  device = jax.devices()[0]
  fig.suptitle(f"gradtx scaling on {device.platform} ({os.cpu_count()} cores), jax {jax.__version__}")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv: Any = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 2 rounds")
  parser.add_argument("--max-params", type=float, default=1e8, help="largest size (default and most 1e8)")
  parser.add_argument("--optimizers", default=",".join(ENTRIES))
  parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 2 with --quick)")
  parser.add_argument("--steps-per-round", type=int, default=10)
  parser.add_argument("--max-step-seconds", type=float, default=1.0,
                      help="entries slower than this at one size are not timed at larger sizes")
  parser.add_argument("--out", default=RESULTS_DIR)
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)
  names = [n for n in args.optimizers.split(",") if n]
  unknown = sorted(set(names) - set(gradtx.list_optimizers()))
  if unknown:
    parser.error(f"unknown optimizers {unknown}; registered: {gradtx.list_optimizers()}")
  sizes = QUICK_SIZES if args.quick else tuple(s for s in SIZES if s <= args.max_params)
  rounds = args.rounds or (2 if args.quick else 5)
  results = measure(names, sizes, rounds=rounds, steps_per_round=args.steps_per_round,
                    max_step_seconds=args.max_step_seconds, progress=not args.no_progress)
  text = table(results, argv)
  print()
  print(text)
  md = race.write(args.out, "scaling.md", text)
  race.write(args.out, "scaling.json", json.dumps({name: {str(n): list(v) for n, v in per.items()}
                                                   for name, per in results.items()}))
  png = os.path.join(args.out, "scaling.png")
  plot(results, png)
  print(f"wrote {md} and {png}")


if __name__ == "__main__":
  main()
