"""Curvature oracles and Sophia's skip steps, as ratios to a gradient and to an Adam step.

An MLP (3 dense layers, width 512, tanh, softmax cross-entropy, batch 256). Every candidate is a
jitted function of fixed inputs, timed in interleaved rounds; medians are compared in one run.

Ratios to ``jax.value_and_grad`` of the loss: the fused value + gradient + Hutchinson diagonal
(:func:`gradtx.curvature.value_grad_and_hessian_diagonal`), the HVP alone, Sophia-G's
Gauss-Newton-Bartlett estimator, and the probe generation (packed random bits vs
``jax.random.rademacher``). Ratios to an Adam training step (gradient + update + apply): a Sophia-H
step on which the estimate is skipped (``lax.cond``), and the same for the update alone.
Writes benchmarks/results/curvature.md.

Usage: python -m benchmarks.curvature [--rounds 15] [--width 512] [--batch 256]
"""

import argparse

import jax
import optax

import gradtx
from benchmarks.common import mlp_problem, ratio_table, time_functions, write_result
from gradtx import curvature as cv


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--batch", type=int, default=256)
  args = parser.parse_args(argv)

  params, loss, logits_fn = mlp_problem(args.width, args.batch)
  key = jax.random.PRNGKey(0)
  v = cv.rademacher_like(key, params)

  def jax_rademacher(k, p):
    leaves, treedef = jax.tree.flatten(p)
    return jax.tree.unflatten(treedef, [
        jax.random.rademacher(jax.random.fold_in(k, i), x.shape, x.dtype) for i, x in enumerate(leaves)])

  oracles = {
      "jax.value_and_grad": (jax.jit(jax.value_and_grad(loss)), (params,)),
      "value_grad_and_hessian_diagonal": (
          jax.jit(lambda p, k: cv.value_grad_and_hessian_diagonal(loss, p, k)), (params, key)),
      "hvp alone (fixed v)": (jax.jit(lambda p, v: cv.hvp(loss, p, v)), (params, v)),
      "Sophia-G GNB estimator": (
          jax.jit(lambda p, k: cv.estimate_gauss_newton_diagonal(logits_fn, p, k)), (params, key)),
      "probes: packed bits (gradtx)": (jax.jit(cv.rademacher_like), (key, params)),
      "probes: jax.random.rademacher": (jax.jit(jax_rademacher), (key, params)),
  }
  t_oracle = time_functions(oracles, args.rounds)

  def train_step(tx):
    def step(p, s):
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p, obj_fn=loss)
      return optax.apply_updates(p, u), s
    return jax.jit(step)

  def update_only(tx):
    return jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=loss))

  # update_interval huge: the first step refreshes, every later one skips the estimate.
  pairs = {
      "wd 0": (gradtx.adam(1e-3), cv.sophia_h(1e-4, weight_decay=0.0, update_interval=2**30, key=0)),
      "wd 0.1": (
          gradtx.adamw(1e-3, weight_decay=0.1),
          cv.sophia_h(1e-4, weight_decay=0.1, update_interval=2**30, key=0),
      ),
  }
  grads = jax.grad(loss)(params)
  steps, baseline_of = {}, {}
  for wd, (adam, sophia) in pairs.items():
    s_adam = adam.init(params)
    s_soph = sophia.init(params)
    _, s_soph = train_step(sophia)(params, s_soph)  # past the refresh step
    name = "adam" if wd == "wd 0" else "adamw"
    a_train, a_upd = f"{name} train step ({wd})", f"{name} update only ({wd})"
    steps[a_train] = (train_step(adam), (params, s_adam))
    steps[f"sophia_h train step, skip ({wd})"] = (train_step(sophia), (params, s_soph))
    steps[a_upd] = (update_only(adam), (grads, s_adam, params))
    steps[f"sophia_h update only, skip ({wd})"] = (update_only(sophia), (grads, s_soph, params))
    baseline_of[f"sophia_h train step, skip ({wd})"] = baseline_of[a_train] = a_train
    baseline_of[f"sophia_h update only, skip ({wd})"] = baseline_of[a_upd] = a_upd
  t_step = time_functions(steps, args.rounds)

  base = t_oracle["jax.value_and_grad"]
  case = f"MLP 3x{args.width}, batch {args.batch}"
  rows = [(case, name, t * 1e3, t / base) for name, t in t_oracle.items()]
  text = ratio_table("Curvature oracles vs one gradient", rows, "jax.value_and_grad")
  pk, jr = t_oracle["probes: packed bits (gradtx)"], t_oracle["probes: jax.random.rademacher"]
  text += (f"\nProbe generation: packed bits cost {pk / jr:.2f}x jax.random.rademacher; as a fraction of one "
           f"gradient: packed {pk / base:.3f}, jax.random.rademacher {jr / base:.3f}.\n\n")
  rows2 = [(case, name, t * 1e3, t / t_step[baseline_of[name]]) for name, t in t_step.items()]
  text += ratio_table("Sophia-H steps that skip the estimate vs Adam", rows2, "the Adam(W) step of the same kind")
  write_result("curvature.md", text)
  print(text)


if __name__ == "__main__":
  main()
