"""Clipping and noise injection chained before Adam, as ratios to an Adam step, in one run.

Three tables, each measured side by side (interleaved rounds; ratios are medians of the per-round ratios):

1. ``chain(clip_by_global_norm, adam)`` against ``adam`` on the transformer-like tree, with
   optax's ``chain(clip_by_global_norm, adam)`` against ``optax.adam`` for comparison.
2. ``chain(add_annealed_noise, adam)`` (the cheap hash generator, and ``rng="threefry"``) against
   ``adam``, with optax's ``chain(add_noise, adam)`` for comparison.
3. ``per_example_clip`` on an MLP batch: per-example gradients + clip + aggregate against the plain
   batched gradient (``jax.grad`` of the mean loss), and against per-example gradients alone.

Writes benchmarks/results/clip_noise.md.

Usage: python -m benchmarks.clip_noise [--params 4000000] [--rounds 7] [--batch 128]
(the issue's 15 M-parameter tree: --params 15000000; the default keeps the run under 2 minutes on a
2-core CPU)
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from benchmarks.common import (
  paired_ratio,
  ratio_table,
  time_functions,
  time_interleaved,
  transformer_like_tree,
  write_result,
)
from gradtx import clipping as gc
from gradtx import noise as gn


def step_table(title, candidates, baseline, params, grads, rounds):
  timings = time_interleaved(candidates, params, grads, rounds=rounds, steps_per_round=3)
  base = timings[baseline].seconds
  rows = [("transformer-like", name, t.median * 1e3, paired_ratio(t.seconds, base)) for name, t in timings.items()]
  return ratio_table(title, rows, baseline)


def mlp(batch, width=256, d_in=64, classes=10, seed=0):
  rng = np.random.default_rng(seed)
  dims = [d_in, width, width, classes]
  params = {
      f"layer{i}": {"w": jnp.asarray(rng.standard_normal((a, b), np.float32) / np.sqrt(a)),
                    "b": jnp.zeros((b,), jnp.float32)}
      for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
  }
  data = {"x": jnp.asarray(rng.standard_normal((batch, d_in), np.float32)),
          "y": jnp.asarray(rng.integers(0, classes, batch))}

  def loss(p, b):
    h = b["x"]
    for i in range(3):
      h = h @ p[f"layer{i}"]["w"] + p[f"layer{i}"]["b"]
      if i < 2:
        h = jnp.tanh(h)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), b["y"][:, None], axis=-1))

  return params, data, loss




def per_example_table(batch, rounds):
  params, data, loss = mlp(batch)
  plain = jax.jit(jax.grad(loss))
  per_ex = jax.jit(lambda p, b: gc.per_example_gradients(loss, p, b))
  clipped = jax.jit(lambda p, b: gc.clip_per_example(gc.per_example_gradients(loss, p, b), 1.0)[0])
  tx = gc.per_example_clip(1.0)
  state = tx.init(params)
  grads = plain(params, data)
  via_tx = jax.jit(lambda p, b, s, g: tx.update(g, s, p, per_example_grads=gc.per_example_gradients(loss, p, b))[0])
  med = time_functions(
      {
          "jax.grad (batched mean)": (plain, (params, data)),
          "per-example grads (vmap)": (per_ex, (params, data)),
          "per-example grads + clip_per_example": (clipped, (params, data)),
          "per-example grads + per_example_clip.update": (via_tx, (params, data, state, grads)),
      },
      rounds,
  )
  base = med["jax.grad (batched mean)"]
  rows = [(f"MLP 64-256-256-10, batch {batch}", n, t * 1e3, t / base) for n, t in med.items()]
  return ratio_table("Per-example clipping vs the batched gradient", rows, "jax.grad (batched mean)")


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument("--params", type=int, default=4_000_000)
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--batch", type=int, default=128)
  args = parser.parse_args(argv)
  params = transformer_like_tree(args.params)
  rng = np.random.default_rng(1)
  grads = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape, np.float32)), params)
  n = sum(x.size for x in jax.tree.leaves(params))
  header = (f"# Clipping and noise before Adam\n\nTransformer-like tree: {n / 1e6:.1f} M float32 params, "
            f"{len(jax.tree.leaves(params))} leaves; gradients ~N(0, 1) (so the clip at 1.0 is active).\n\n")
  clip = step_table(
      "Clip by global norm, then Adam",
      {
          "gradtx.adam": gradtx.adam(1e-3),
          "chain(gradtx.clip_by_global_norm, gradtx.adam)": optax.chain(gc.clip_by_global_norm(1.0), gradtx.adam(1e-3)),
          "optax.adam": optax.adam(1e-3),
          "chain(optax.clip_by_global_norm, optax.adam)": optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
      },
      "gradtx.adam", params, grads, args.rounds,
  )
  noise = step_table(
      "Annealed Gaussian noise, then Adam",
      {
          "gradtx.adam": gradtx.adam(1e-3),
          "chain(gradtx.add_annealed_noise, gradtx.adam)": optax.chain(
              gn.add_annealed_noise(0.01, key=0), gradtx.adam(1e-3)),
          "chain(add_annealed_noise(rng='threefry'), gradtx.adam)": optax.chain(
              gn.add_annealed_noise(0.01, key=0, rng="threefry"), gradtx.adam(1e-3)),
          "chain(optax.add_noise, optax.adam)": optax.chain(optax.add_noise(0.01, 0.55, 0), optax.adam(1e-3)),
      },
      "gradtx.adam", params, grads, args.rounds,
  )
  per_example = per_example_table(args.batch, args.rounds)
  text = header + clip + "\n" + noise + "\n" + per_example
  print(text)
  print("wrote", write_result("clip_noise.md", text))


if __name__ == "__main__":
  main()
