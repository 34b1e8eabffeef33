"""What sharpness-aware steps and backprop-free gradient estimators cost, as ratios in one run.

1. Cost per training step of SAM, ASAM, SAM with m-sharpness and GAM against their base (SGD
   with momentum), all including the gradient evaluations they need (expect about 2x for SAM,
   4x for GAM); and the loss evaluations per step of the zeroth-order optimizers.
2. A forward-gradient estimate (one ``jvp`` per tangent) against a reverse-mode
   ``jax.value_and_grad``, and a MeZO two-point estimate (two forward passes).
3. Memory: peak compiled bytes (arguments + outputs + temporaries, from XLA's memory analysis) of
   a MeZO step against a backprop SGD step for MLPs of growing width at a small and a large
   batch; the plot shows peak memory against parameter count.

An MLP (3 dense layers, tanh, softmax cross-entropy). Candidates are jitted, timed in interleaved
rounds, and medians are compared. Writes benchmarks/results/estimators.md and estimators.png.

Usage: python -m benchmarks.estimators [--rounds 10] [--width 256] [--batch 128]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from benchmarks.common import mlp_problem, ratio_table, write_result
from gradtx._src.optimizers.moments import sgd
from gradtx.estimators import (
    deepzero,
    forward_gradient_estimate,
    forward_gradient_sgd,
    function_evals_per_step,
    mezo,
    spsa,
)
from gradtx.sharpness import gam, sam


def batch_loss_of(logits_fn_of_batch, batch):
  """``loss(params, batch)``: the mean softmax cross-entropy, for m-sharpness's ``loss_fn=``."""

  def loss(params, batch):
    x, y = batch
    logp = jax.nn.log_softmax(logits_fn_of_batch(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

  return loss


def mlp_logits(params, x):
  """The 3-layer tanh MLP of ``benchmarks.common.mlp_problem`` on inputs ``x``."""
  h = x
  for i in range(3):
    h = h @ params[f"layer{i}"]["w"] + params[f"layer{i}"]["b"]
    if i < 2:
      h = jnp.tanh(h)
  return h


def train_step(tx, loss, extra, batch=None):
  """A jitted step: gradient, update with the extra inputs ``extra`` needs, apply."""

  def step(params, state):
    kwargs = {"grad_fn": jax.grad(loss)} if "grad_fn" in extra else {}
    if "obj_fn" in extra:
      kwargs["obj_fn"] = loss
    if "batch" in extra:
      kwargs.update(loss_fn=batch_loss_of(mlp_logits, batch), batch=batch)
    grads = None if "no_grad" in extra else jax.grad(loss)(params)
    updates, state = tx.update(grads, state, params, **kwargs)
    return optax.apply_updates(params, updates), state

  return jax.jit(step)


def time_interleaved(cands, rounds, reps=5, feedback=False):
  """Median seconds per call of each ``name -> (fn, args)``; with ``feedback`` (training steps)
  each call's outputs are the next call's arguments."""
  live = {}
  for name, (fn, args) in cands.items():
    out = jax.block_until_ready(fn(*args))
    live[name] = out if feedback else args
  times = {name: [] for name in cands}
  for _ in range(rounds):
    for name, (fn, _) in cands.items():
      args = live[name]
      start = time.perf_counter()
      for _ in range(reps):
        out = fn(*args)
        if feedback:
          args = out
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - start) / reps)
      live[name] = args
  return {name: statistics.median(t) for name, t in times.items()}


def peak_bytes(fn, *args):
  m = jax.jit(fn).lower(*args).compile().memory_analysis()
  return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=8)
  parser.add_argument("--width", type=int, default=256)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--widths", type=str, default="64,128,256,512,1024")
  parser.add_argument("--memory-batches", type=str, default="128,2048")
  args = parser.parse_args(argv)

  params, loss, _ = mlp_problem(args.width, args.batch, d_in=256)
  n = sum(x.size for x in jax.tree.leaves(params))
  case = f"MLP width {args.width}, {n} params, batch {args.batch}"
  rng = np.random.default_rng(0)  # a batch for m-sharpness, the shape of mlp_problem's data
  batch = (jnp.asarray(rng.standard_normal((args.batch, 256), np.float32)),
           jnp.asarray(rng.integers(0, 10, args.batch)))
  m = max(1, args.batch // 8)

  base = lambda: sgd(0.01, momentum=0.9)
  steps = {
      "sgd (base)": (base(), ()),
      "sam(sgd)": (sam(base(), 0.05), ("grad_fn",)),
      "asam(sgd)": (sam(base(), 0.5, adaptive=True), ("grad_fn",)),
      f"sam(sgd, m={m}) (m-sharpness, no incoming gradient)": (sam(base(), 0.05, m=m), ("batch", "no_grad")),
      "gam(sgd)": (gam(base()), ("grad_fn",)),
      "gam(sgd, hessian='hvp')": (gam(base(), hessian="hvp"), ("grad_fn", "obj_fn")),
      "mezo (no gradient)": (mezo(1e-3, key=0), ("obj_fn", "no_grad")),
  }
  cands = {
      name: (train_step(tx, loss, extra, batch), (params, tx.init(params))) for name, (tx, extra) in steps.items()
  }
  t = time_interleaved(cands, args.rounds, feedback=True)
  rows = [(case, name, 1e3 * s, s / t["sgd (base)"]) for name, s in t.items()]
  text = ratio_table("Training step cost against SGD with momentum", rows, "sgd step")

  key = jax.random.PRNGKey(0)
  estimators = {
      "jax.value_and_grad (reverse)": (jax.jit(jax.value_and_grad(loss)), (params,)),
      "forward gradient, 1 tangent": (jax.jit(lambda p, k: forward_gradient_estimate(loss, p, k)), (params, key)),
      "forward gradient, 4 tangents": (
          jax.jit(lambda p, k: forward_gradient_estimate(loss, p, k, num_tangents=4)), (params, key)),
      "loss only (one forward pass)": (jax.jit(loss), (params,)),
  }
  t = time_interleaved(estimators, args.rounds)
  base_t = t["jax.value_and_grad (reverse)"]
  rows = [(case, name, 1e3 * s, s / base_t) for name, s in t.items()]
  text += "\n" + ratio_table("Gradient estimates against a reverse-mode gradient", rows, "value_and_grad")

  budget = {
      "mezo": mezo(1e-3, key=0),
      "mezo, num_probes=4": mezo(1e-3, key=0, num_probes=4),
      "spsa": spsa(0.1, key=0),
      "deepzero, density=0.01": deepzero(0.1, key=0, density=0.01),
      "forward_gradient_sgd (jvp passes)": forward_gradient_sgd(1e-3, key=0),
  }
  text += "\n".join([
      "", f"### Loss evaluations per step ({case})", "",
      "From ``gradtx.estimators.function_evals_per_step(opt.init(params))``: the budget a",
      "zeroth-order step spends.", "",
      "| optimizer | evaluations per step |", "|---|---:|",
      *(f"| {name} | {function_evals_per_step(tx.init(params))} |" for name, tx in budget.items()), "",
  ])

  mem_rows, curves = [], {}
  for batch in (int(v) for v in args.memory_batches.split(",")):
    for w in (int(v) for v in args.widths.split(",")):
      p, lw, _ = mlp_problem(w, batch, d_in=256)
      size = sum(x.size for x in jax.tree.leaves(p))
      tz, tb = mezo(1e-3, key=0), sgd(1e-3)
      zo_b = peak_bytes(lambda p, s, tz=tz, lw=lw: tz.update(None, s, p, obj_fn=lw), p, tz.init(p))
      bp_b = peak_bytes(lambda p, s, tb=tb, lw=lw: tb.update(jax.grad(lw)(p), s, p), p, tb.init(p))
      curves.setdefault(batch, []).append((size, zo_b, bp_b))
      mem_rows.append(f"| {batch} | {size} | {zo_b / 2**20:.2f} | {bp_b / 2**20:.2f} | {zo_b / bp_b:.2f} |")
  text += "\n".join([
      "", "### Peak compiled memory of one step: MeZO against backprop SGD", "",
      "Bytes = arguments + outputs + temporaries from XLA's memory analysis. MeZO keeps no",
      "activations for a backward pass but, evaluated functionally, holds the probe and one",
      "perturbed copy of the parameters: it wins where activations outweigh about two copies of",
      "the parameters (large batches, deep or long-sequence models) and loses on small batches.", "",
      "| batch | params | MeZO MiB | backprop SGD MiB | ratio |", "|---:|---:|---:|---:|---:|", *mem_rows, "",
  ])
  print(text)
  print("wrote", write_result("estimators.md", text))

  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for batch, rows in curves.items():
    counts = [r[0] for r in rows]
    ax.loglog(counts, [r[2] / 2**20 for r in rows], "o-", label=f"backprop SGD, batch {batch}")
    ax.loglog(counts, [r[1] / 2**20 for r in rows], "s--", label=f"MeZO, batch {batch}")
  ax.set_xlabel("parameters")
  ax.set_ylabel("peak compiled memory (MiB)")
  ax.set_title("Peak memory of one step, 3-layer MLP")
  ax.legend()
  fig.tight_layout()
  path = f"{common.RESULTS_DIR}/estimators.png"
  fig.savefig(path, dpi=120)
  print("wrote", path)


if __name__ == "__main__":
  main()
