"""The optimizer race (`make demo`): every registered optimizer trains an MLP on scikit-learn's digits.

The data ship with scikit-learn, so the race runs offline. Each optimizer gets the same model, data,
batches and seeds, and whatever extra inputs its registry entry asks for (loss function, gradient
function, per-example gradients, ...), built by ``gradtx.build_extra_args``. Training runs as one
compiled ``lax.scan`` per optimizer and seed; steps/s is measured on the compiled run alone.

Usage:
  python -m benchmarks.race [--optimizers adam,sgd] [--family moments] [--steps 300] [--seeds 0 1]
"""

import argparse
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import gradtx
from benchmarks.common import RESULTS_DIR, write_result


class MLP(nnx.Module):
  """64 -> hidden -> hidden -> 10 with GELU."""

  def __init__(self, hidden: int, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(64, hidden, rngs=rngs)
    self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.gelu(self.l2(jax.nn.gelu(self.l1(x)))))


def load_data(seed: int = 0):
  digits = load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25, random_state=seed)
  return jnp.asarray(x_tr), jnp.asarray(y_tr), jnp.asarray(x_te), jnp.asarray(y_te)


def make_problem(hidden: int, seed: int):
  model = MLP(hidden, nnx.Rngs(seed))
  graphdef, params = nnx.split(model)

  def logits_fn(params, x):
    return nnx.merge(graphdef, params)(x)

  def loss_fn(params, batch):
    x, y = batch
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y).mean()

  return params, logits_fn, loss_fn


def train(spec: gradtx.OptimizerSpec, data, *, steps: int, batch_size: int, hidden: int, seed: int):
  """Train one optimizer; return (per-step full train loss, test accuracy, steps/s, wall seconds)."""
  x_tr, y_tr, x_te, y_te = data
  params, logits_fn, loss_fn = make_problem(hidden, seed)
  kwargs = dict(spec.race_kwargs)
  if spec.needs_key:
    kwargs["key"] = seed
  tx = spec.factory(**kwargs)
  idx = jax.random.randint(jax.random.PRNGKey(1000 + seed), (steps, batch_size), 0, x_tr.shape[0])

  def body(carry, batch_idx):
    p, s = carry
    batch = (x_tr[batch_idx], y_tr[batch_idx])
    at = p if spec.gradient_point is None else spec.gradient_point(p, s)
    grads = jax.grad(loss_fn)(at, batch)
    extra = gradtx.build_extra_args(spec.extra_inputs, loss_fn, p, batch, logits_fn=lambda q, b: logits_fn(q, b[0]))
    updates, s = tx.update(grads, s, p, **extra)
    p = optax.apply_updates(p, updates)
    return (p, s), loss_fn(p, (x_tr, y_tr))

  def run(p):
    (p, _), losses = jax.lax.scan(body, (p, tx.init(p)), idx)
    accuracy = jnp.mean(jnp.argmax(logits_fn(p, x_te), -1) == y_te)
    return losses, accuracy

  start = time.perf_counter()
  compiled = jax.jit(run).lower(params).compile()
  run_start = time.perf_counter()
  losses, accuracy = jax.block_until_ready(compiled(params))
  end = time.perf_counter()
  return np.asarray(losses), float(accuracy), steps / (end - run_start), end - start


def race(names, *, steps: int, seeds, batch_size: int, hidden: int, progress: bool = True):
  data = load_data()
  results = []
  bar = tqdm(total=len(names) * len(seeds), desc="race", unit="run", disable=not progress)
  for name in names:
    spec = gradtx.get_spec(name)
    runs = []
    for seed in seeds:
      bar.set_postfix_str(name)
      try:
        runs.append(train(spec, data, steps=steps, batch_size=batch_size, hidden=hidden, seed=seed))
      except Exception as e:  # a broken entry is reported in the table, not fatal to the race
        tqdm.write(f"{name}: failed: {type(e).__name__}: {e}")
      bar.update()
    if not runs:
      results.append({"name": name, "family": spec.family, "failed": True})
      continue
    curves = np.stack([r[0] for r in runs])
    results.append({
        "name": name,
        "family": spec.family,
        "failed": False,
        "curve": np.mean(curves, axis=0),
        "final_loss": float(np.mean(curves[:, -1])),
        "accuracy": float(np.mean([r[1] for r in runs])),
        "steps_per_s": float(np.median([r[2] for r in runs])),
        "wall_s": float(np.sum([r[3] for r in runs])),
        "kwargs": dict(spec.race_kwargs),
    })
  bar.close()
  return results


def _short(value: Any) -> str:
  """A hyperparameter as the table shows it: numbers and strings as they are, objects by kind."""
  if isinstance(value, (bool, int, float, str)) or value is None:
    return repr(value) if isinstance(value, str) else str(value)
  return f"<{type(value).__name__}>"


def table(results, *, steps: int, seeds) -> str:
  ok = [r for r in results if not r["failed"]]
  ok.sort(key=lambda r: (not np.isfinite(r["final_loss"]), r["final_loss"]))
  lines = [
      f"Digits MLP race: {steps} steps, batch 128, seeds {list(seeds)}, "
      f"jax {jax.__version__} on {jax.devices()[0].platform}. Sorted by final train loss.",
      "",
      "| optimizer | family | hyperparameters | final train loss | test accuracy | steps/s | wall time (s) |",
      "|---|---|---|---:|---:|---:|---:|",
  ]
  for r in ok:
    hp = ", ".join(f"{k}={_short(v)}" for k, v in r["kwargs"].items())
    lines.append(
        f"| {r['name']} | {r['family']} | {hp} | {r['final_loss']:.4f} | {r['accuracy']:.3f} | "
        f"{r['steps_per_s']:.0f} | {r['wall_s']:.1f} |"
    )
  for r in results:
    if r["failed"]:
      lines.append(f"| {r['name']} | {r['family']} | | failed | | | |")
  return "\n".join(lines) + "\n"


def plot(results, path: str) -> None:
  """Loss curves, one panel per family, each with Adam drawn as the common reference."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  done = [r for r in results if not r["failed"]]
  families = list(dict.fromkeys(r["family"] for r in done))
  reference = next((r for r in done if r["name"] == "adam"), None)
  cols = min(4, len(families))
  rows = -(-len(families) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
  for ax, family in zip(axes.flat, families):
    if reference is not None and reference["family"] != family:
      ax.plot(reference["curve"], color="0.6", lw=2, label="adam (reference)")
    for r in (r for r in done if r["family"] == family):
      ax.plot(r["curve"], lw=1.2, label=r["name"])
    ax.set_title(family)
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
  for ax in axes.flat[len(families):]:
    ax.set_visible(False)
  for ax in axes[-1]:
    ax.set_xlabel("step")
  for ax in axes[:, 0]:
    ax.set_ylabel("full-batch train loss")
  fig.suptitle("gradtx optimizer race: MLP on scikit-learn digits")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv: Any = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--optimizers", default="", help="comma-separated names (default: all registered)")
  parser.add_argument("--family", default=None, help="only this family")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--out", default=RESULTS_DIR, help="where race.md and race.png go")
  parser.add_argument("--no-progress", action="store_true")
  args = parser.parse_args(argv)

  names = [n for n in args.optimizers.split(",") if n] or gradtx.list_optimizers(args.family)
  unknown = sorted(set(names) - set(gradtx.list_optimizers()))
  if unknown:
    parser.error(f"unknown optimizers {unknown}; registered: {gradtx.list_optimizers()}")
  results = race(
      names, steps=args.steps, seeds=args.seeds, batch_size=args.batch_size, hidden=args.hidden,
      progress=not args.no_progress,
  )
  text = table(results, steps=args.steps, seeds=args.seeds)
  print()
  print(text)
  os.makedirs(args.out, exist_ok=True)
  if os.path.abspath(args.out) == os.path.abspath(RESULTS_DIR):
    md = write_result("race.md", text)
  else:
    md = os.path.join(args.out, "race.md")
    with open(md, "w") as f:
      f.write(text)
  png = os.path.join(args.out, "race.png")
  plot(results, png)
  print(f"wrote {md} and {png}")


if __name__ == "__main__":
  main()
