"""Curvature oracles and Sophia's skip steps, as ratios to a gradient and to an Adam step.

An MLP (3 dense layers, width 512, tanh, softmax cross-entropy, batch 256). Every candidate is a
jitted function of fixed inputs, timed in interleaved rounds; medians are compared in one run.

Ratios to ``jax.value_and_grad`` of the loss: the fused value + gradient + Hutchinson diagonal
(:func:`gradtx.curvature.value_grad_and_hessian_diagonal`), the HVP alone, Sophia-G's
Gauss-Newton-Bartlett estimator, and the probe generation (packed random bits vs
``jax.random.rademacher``). Ratios to an Adam training step (gradient + update + apply): a Sophia-H
step on which the estimate is skipped, decided on the device (``lax.cond``, the default) or
statically (``update_hessian=False``, no conditional), and the same for the update alone.
Writes benchmarks/results/curvature.md (only when every section ran).

Usage: python -m benchmarks.curvature [--rounds 15] [--width 512] [--batch 256] [--only skip]
"""

import argparse
import statistics

import jax
import optax

import gradtx
from benchmarks.common import (
  mlp_problem,
  paired_ratio,
  ratio_table,
  time_functions,
  time_interleaved,
  time_rounds,
  write_result,
)
from gradtx import curvature as cv


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--only", choices=("oracles", "skip"), default=None,
                      help="run one section and print it, without writing the results file")
  args = parser.parse_args(argv)

  params, loss, logits_fn = mlp_problem(args.width, args.batch)
  key = jax.random.PRNGKey(0)
  v = cv.rademacher_like(key, params)

  def jax_rademacher(k, p):
    leaves, treedef = jax.tree.flatten(p)
    return jax.tree.unflatten(treedef, [
        jax.random.rademacher(jax.random.fold_in(k, i), x.shape, x.dtype) for i, x in enumerate(leaves)])

  oracles = {} if args.only == "skip" else {
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

  def train_step(tx, **kw):
    def step(p, s):
      g = jax.grad(loss)(p)
      u, s = tx.update(g, s, p, obj_fn=loss, **kw)
      return optax.apply_updates(p, u), s
    return jax.jit(step)

  def update_only(tx, **kw):
    return jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=loss, **kw))

  # update_interval huge: the first step refreshes, every later one skips the estimate.
  pairs = {} if args.only == "oracles" else {
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
    for kind, make, args_ in (("train step", train_step, (params, s_soph)),
                              ("update only", update_only, (grads, s_soph, params))):
      a = a_train if kind == "train step" else a_upd
      steps[a] = (make(adam), (params, s_adam) if kind == "train step" else (grads, s_adam, params))
      for how, kw in (("skip, lax.cond", {}), ("skip, static", {"update_hessian": False})):
        steps[f"sophia_h {kind}, {how} ({wd})"] = (make(sophia, **kw), args_)
        baseline_of[f"sophia_h {kind}, {how} ({wd})"] = a
      baseline_of[a] = a
  t_step = time_rounds(steps, args.rounds)

  def with_inputs(tx, **kw):  # time_interleaved calls update(grads, state, params): add the extra inputs
    return optax.GradientTransformationExtraArgs(
        tx.init, lambda g, s, p=None, **extra: tx.update(g, s, p, obj_fn=loss, **kw))

  # Donated params and state (what a training loop does): the skipped diagonal is aliased, not copied.
  donated, baseline_donated = {}, {}
  for wd, (adam, sophia) in pairs.items():
    a = f"{'adam' if wd == 'wd 0' else 'adamw'} update + apply, donated ({wd})"
    donated[a] = adam
    baseline_donated[a] = a
    for how, kw in (("skip, lax.cond", {}), ("skip, static", {"update_hessian": False})):
      donated[f"sophia_h update + apply, donated, {how} ({wd})"] = with_inputs(sophia, **kw)
      baseline_donated[f"sophia_h update + apply, donated, {how} ({wd})"] = a
  t_donated = {n: t.seconds for n, t in time_interleaved(donated, params, grads, rounds=args.rounds).items()}

  case = f"MLP 3x{args.width}, batch {args.batch}"
  text = ""
  if t_oracle:
    base = t_oracle["jax.value_and_grad"]
    rows = [(case, name, t * 1e3, t / base) for name, t in t_oracle.items()]
    text += ratio_table("Curvature oracles vs one gradient", rows, "jax.value_and_grad")
    pk, jr = t_oracle["probes: packed bits (gradtx)"], t_oracle["probes: jax.random.rademacher"]
    text += (f"\nProbe generation: packed bits cost {pk / jr:.2f}x jax.random.rademacher; as a fraction of one "
             f"gradient: packed {pk / base:.3f}, jax.random.rademacher {jr / base:.3f}.\n\n")
  if t_step:
    rows2 = [(case, name, statistics.median(t) * 1e3, paired_ratio(t, t_step[baseline_of[name]]))
             for name, t in t_step.items()]
    rows2 += [(case, name, statistics.median(t) * 1e3, paired_ratio(t, t_donated[baseline_donated[name]]))
              for name, t in t_donated.items()]
    text += ratio_table("Sophia-H steps that skip the estimate vs Adam", rows2, "the Adam(W) step of the same kind")
    text += ("\n`skip, lax.cond`: the default, the refresh decided on the device from the count; "
             "`skip, static`: `update_hessian=False`, no conditional in the program. Each ratio is the median over "
             "rounds of the ratio within a round (candidate and baseline timed back to back), which drifting load "
             "hits less than a ratio of medians. The train-step and update-only rows do not donate buffers, so "
             "they copy the unchanged `h` into the new state; the donated rows (params and state donated, fixed "
             "gradient, update + apply) alias it.\n")
  if args.only is None:
    write_result("curvature.md", text)
  print(text)


if __name__ == "__main__":
  main()
