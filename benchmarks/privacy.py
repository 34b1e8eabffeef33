"""Per-example gradients, clipping and DP aggregation on the demo MLP, as ratios to a batched gradient.

The demo MLP of the race (64-64-64-10, GELU, softmax cross-entropy) on a digits-sized batch of
fixed random data. Every candidate is a jitted function of fixed inputs, timed in interleaved
rounds; medians are compared in one run. Ratios to ``jax.grad`` of the batch's mean loss:

- per-example gradients (``gradtx.clipping.per_example_gradients``, ``vmap`` of ``grad``);
- per-example gradients + ``clip_per_example`` (clip each example to norm 1 and sum);
- per-example gradients + ``dp_aggregate.update`` (clip, sum, Gaussian noise, divide), with the
  default threefry noise and with ``rng="fast"``;
- a full DP-SGD step (``gradtx.privacy.dp_sgd``: per-example gradients + update + apply) against a
  plain SGD step (batched gradient + ``gradtx.sgd`` update + apply).

Writes benchmarks/results/privacy.md (or ``--out``).

Usage: python -m benchmarks.privacy [--rounds 15] [--batch 256] [--hidden 64] [--quick] [--out DIR]
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from benchmarks.common import ratio_table, time_functions, write_result
from gradtx import clipping as gc
from gradtx import privacy as gp


def mlp(batch: int, hidden: int, d_in: int = 64, classes: int = 10, seed: int = 0):
  """The race's digits MLP (d_in -> hidden -> hidden -> classes, GELU) on fixed random data."""
  rng = np.random.default_rng(seed)
  dims = [d_in, hidden, hidden, classes]
  params = {
      f"layer{i}": {"w": jnp.asarray(rng.standard_normal((a, b), np.float32) / np.sqrt(a)),
                    "b": jnp.zeros((b,), jnp.float32)}
      for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
  }
  data = {"x": jnp.asarray(rng.uniform(0, 16, (batch, d_in)).astype(np.float32) / 16),
          "y": jnp.asarray(rng.integers(0, classes, batch))}

  def loss(p, b):
    h = b["x"]
    for i in range(3):
      h = h @ p[f"layer{i}"]["w"] + p[f"layer{i}"]["b"]
      if i < 2:
        h = jax.nn.gelu(h)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), b["y"][:, None], axis=-1))

  return params, data, loss


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--quick", action="store_true", help="batch 16, two rounds (a smoke run)")
  parser.add_argument("--out", default=None, help="directory for privacy.md (default benchmarks/results)")
  args = parser.parse_args(argv)
  if args.quick:
    args.batch, args.rounds = 16, 2

  params, data, loss = mlp(args.batch, args.hidden)
  per_ex = lambda p, b: gc.per_example_gradients(loss, p, b)
  grads = jax.grad(loss)(params, data)
  dp = {rng: gp.dp_aggregate(1.0, 1.0, key=0, expected_batch_size=args.batch, rng=rng) for rng in ("threefry", "fast")}
  dp_states = {rng: tx.init(params) for rng, tx in dp.items()}

  def dp_update(tx):
    return jax.jit(lambda p, b, s, g: tx.update(g, s, p, per_example_grads=per_ex(p, b))[0])

  def train_step(tx, private):
    def step(p, s, b):
      if private:
        u, s = tx.update(grads, s, p, per_example_grads=per_ex(p, b))
      else:
        u, s = tx.update(jax.grad(loss)(p, b), s, p)
      return optax.apply_updates(p, u), s
    return jax.jit(step)

  sgd = gradtx.sgd(0.1)
  dp_sgd = gp.dp_sgd(0.1, l2_clip=1.0, noise_multiplier=1.0, key=0, expected_batch_size=args.batch)
  base = "jax.grad (batched mean)"
  cands = {
      base: (jax.jit(jax.grad(loss)), (params, data)),
      "per-example grads (vmap)": (jax.jit(per_ex), (params, data)),
      "per-example grads + clip_per_example": (
          jax.jit(lambda p, b: gc.clip_per_example(per_ex(p, b), 1.0)[0]), (params, data)),
      "per-example grads + dp_aggregate (threefry noise)": (
          dp_update(dp["threefry"]), (params, data, dp_states["threefry"], grads)),
      "per-example grads + dp_aggregate (rng='fast')": (
          dp_update(dp["fast"]), (params, data, dp_states["fast"], grads)),
  }
  steps = {
      "sgd step (batched grad + update + apply)": (train_step(sgd, False), (params, sgd.init(params), data)),
      "dp_sgd step (per-example grads + dp_aggregate + apply)": (
          train_step(dp_sgd, True), (params, dp_sgd.init(params), data)),
  }
  t = time_functions(cands, args.rounds)
  t_steps = time_functions(steps, args.rounds)

  n = sum(x.size for x in jax.tree.leaves(params))
  case = f"MLP 64-{args.hidden}-{args.hidden}-10, batch {args.batch}"
  text = (f"# Per-example gradients, clipping and DP aggregation\n\n{case} ({n} params), GELU, "
          f"digits-sized random data; {args.rounds} interleaved rounds, medians.\n\n")
  text += ratio_table("Per-example clipping and dp_aggregate vs the batched gradient",
                      [(case, k, v * 1e3, v / t[base]) for k, v in t.items()], base)
  sgd_name = "sgd step (batched grad + update + apply)"
  text += "\n" + ratio_table("A DP-SGD training step vs an SGD step",
                             [(case, k, v * 1e3, v / t_steps[sgd_name]) for k, v in t_steps.items()], sgd_name)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "privacy.md")
    with open(path, "w") as f:
      f.write(text)
  else:
    path = write_result("privacy.md", text)
  print(text)
  print("wrote", path)


if __name__ == "__main__":
  main()
