"""Shampoo, SOAP and PSGD-Kron: step cost with and without the preconditioner refresh, root cost, memory.

All numbers are ratios measured side by side in one run (interleaved rounds, medians):

1. Step time (update + apply, jitted, donated buffers) on the transformer-like tree, as ratios to
   ``gradtx.adam``: once with the refresh on every step (roots / basis / preconditioner fit), once
   with refreshes switched off after the first step (the cost of the other steps: a few matrix
   multiplies per leaf).
2. The cost of one inverse 4th root (eigh, coupled Newton) and of SOAP's QR refresh against one
   matrix multiply of the same size.
3. Optimizer state per parameter (bytes), against Adam's.
4. Steps to a target training loss against Adam on the demo problem (digits MLP, full batch),
   each optimizer with its registered ``race_kwargs``.

Writes benchmarks/results/kronecker.md. Default run: well under 2 minutes on a laptop CPU.

Usage: python -m benchmarks.kronecker [--total-params 1000000] [--layers 2] [--block-size 128] [--rounds 7]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx
from benchmarks.common import ratio_table, time_interleaved, transformer_like_tree, tree_size, write_result
from gradtx._src.curvature.matrix_roots import inverse_root_eigh, inverse_root_newton
from gradtx._src.curvature.soap import qr_refresh
from gradtx._src.optimizers.kronecker import psgd_kron, shampoo, soap

NEVER = 2**30


def candidates(block_size: int) -> dict[str, dict[str, optax.GradientTransformation]]:
  lr = 1e-3
  return {
      "refresh every step": {
          "shampoo": shampoo(lr, precondition_every=1, start_preconditioning_step=0, block_size=block_size),
          "soap": soap(lr, precondition_frequency=1, max_precond_dim=4 * block_size),
          "psgd_kron": psgd_kron(lr, preconditioner_update_probability=1.0, max_size_triangular=4 * block_size),
      },
      "no refresh (after step 1)": {
          "shampoo": shampoo(lr, precondition_every=NEVER, start_preconditioning_step=0, block_size=block_size),
          "soap": soap(lr, precondition_frequency=NEVER, max_precond_dim=4 * block_size),
          "psgd_kron": psgd_kron(lr, preconditioner_update_probability=1e-9, max_size_triangular=4 * block_size),
      },
  }


def step_times(args) -> list[tuple[str, str, float, float]]:
  params = transformer_like_tree(args.total_params, args.layers)
  rng = np.random.default_rng(1)
  grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape, np.float32) * 1e-2), params)
  rows = []
  for case, txs in candidates(args.block_size).items():
    t = time_interleaved({"adam": gradtx.adam(1e-3), **txs}, params, grads, rounds=args.rounds, steps_per_round=2)
    base = t["adam"].median
    label = f"{case}, {tree_size(params) / 1e6:.1f} M params, blocks {args.block_size}"
    rows += [(label, name, tm.median * 1e3, tm.median / base) for name, tm in t.items()]
  return rows


def time_fns(cands, rounds, reps=3):
  for fn, a in cands.values():
    jax.block_until_ready(fn(*a))
  times = {n: [] for n in cands}
  for _ in range(rounds):
    for n, (fn, a) in cands.items():
      start = time.perf_counter()
      for _ in range(reps):
        out = fn(*a)
      jax.block_until_ready(out)
      times[n].append((time.perf_counter() - start) / reps)
  return {n: statistics.median(v) for n, v in times.items()}


def root_costs(args) -> list[tuple[str, str, float, float]]:
  rows = []
  for n in (args.block_size, 4 * args.block_size):
    x = jax.random.normal(jax.random.PRNGKey(n), (n, n), jnp.float32)
    s = x @ x.T / n
    q = jnp.linalg.qr(x)[0]
    t = time_fns(
        {
            "matmul": (jax.jit(lambda a, b: a @ b), (s, x)),
            "inverse 4th root, eigh": (jax.jit(lambda a: inverse_root_eigh(a, 4, 1e-12)), (s,)),
            "inverse 4th root, coupled Newton": (jax.jit(lambda a: inverse_root_newton(a, 4, 1e-12)), (s,)),
            "SOAP refresh (sort + power step + QR)": (jax.jit(lambda a, b: qr_refresh(a, b)[0]), (s, q)),
        },
        args.rounds,
    )
    rows += [(f"{n} x {n} float32", name, v * 1e3, v / t["matmul"]) for name, v in t.items()]
  return rows


def state_bytes(args) -> str:
  params = transformer_like_tree(args.total_params, args.layers)
  n = tree_size(params)
  opts = {"adam": gradtx.adam(1e-3), **candidates(args.block_size)["refresh every step"]}
  lines = ["### Optimizer state per parameter", "", "| optimizer | bytes / param | vs adam |", "|---|---:|---:|"]
  sizes = {}
  for name, tx in opts.items():
    state = jax.eval_shape(tx.init, params)
    sizes[name] = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)) / n
  for name, b in sizes.items():
    lines.append(f"| {name} | {b:.2f} | {b / sizes['adam']:.2f} |")
  return "\n".join(lines) + f"\n\nTransformer-like tree, {n / 1e6:.2f} M float32 params, blocks {args.block_size}.\n"


def steps_to_target(args) -> str:
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x / 16.0, jnp.float32)
  y = jnp.asarray(y)
  rng = np.random.default_rng(0)
  dims = [64, 64, 64, 10]
  params = {
      f"l{i}": {"w": jnp.asarray(rng.standard_normal((a, b), np.float32) / np.sqrt(a)), "b": jnp.zeros(b, jnp.float32)}
      for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
  }

  def loss(p):
    h = x
    for i in range(3):
      h = h @ p[f"l{i}"]["w"] + p[f"l{i}"]["b"]
      h = jax.nn.gelu(h) if i < 2 else h
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=-1))

  def run(tx, n=args.race_steps):
    def body(c, _):
      p, s = c
      u, s = tx.update(jax.grad(loss)(p), s, p)
      p = optax.apply_updates(p, u)
      return (p, s), loss(p)

    return np.asarray(jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=n)[1])(params))

  lines = ["### Steps to a target training loss (digits MLP 64-64-64-10, full batch)", "",
           f"| optimizer | steps to loss < {args.target} | final loss ({args.race_steps} steps) | steps vs adam |",
           "|---|---:|---:|---:|"]
  results = {}
  for name in ("adam", "shampoo", "soap", "psgd_kron"):
    spec = gradtx.get_spec(name)
    losses = run(spec.factory(**spec.race_kwargs))
    hit = np.nonzero(losses < args.target)[0]
    results[name] = (int(hit[0]) + 1 if len(hit) else None, float(losses[-1]))
  base = results["adam"][0]
  for name, (k, final) in results.items():
    ratio = f"{k / base:.2f}" if (k and base) else "n/a"
    lines.append(f"| {name} | {k if k else f'> {args.race_steps}'} | {final:.4f} | {ratio} |")
  return "\n".join(lines) + "\n\nEach optimizer with its registry race_kwargs; ratio < 1: fewer steps than Adam.\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--total-params", type=int, default=1_000_000)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--block-size", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--race-steps", type=int, default=500)
  parser.add_argument("--target", type=float, default=0.05)
  args = parser.parse_args(argv)

  text = ratio_table("Kronecker preconditioners: step time vs Adam", step_times(args), "adam")
  text += "\n" + ratio_table("Root and basis refresh vs one matmul of the same size", root_costs(args), "matmul")
  text += "\n" + state_bytes(args)
  text += "\n" + steps_to_target(args)
  write_result("kronecker.md", text)
  print(text)


if __name__ == "__main__":
  main()
