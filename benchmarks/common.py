"""Shared benchmark machinery: test trees, jitted steps with donated buffers, interleaved timing.

Every benchmark reports ratios measured side by side in one run: the candidates are timed in
interleaved rounds (A, B, A, B, ...) so that drift in machine load hits all of them alike, and
the per-candidate medians are compared.
"""

import dataclasses
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradtx

# GRADTX_RESULTS_DIR redirects every benchmark's output (benchmarks/gpu.sh writes the GPU run beside the CPU one).
RESULTS_DIR = os.environ.get("GRADTX_RESULTS_DIR") or os.path.join(os.path.dirname(__file__), "results")


def transformer_like_tree(total_params: int = 15_000_000, layers: int = 12, seed: int = 0) -> dict:
  """A float32 tree shaped like a small transformer: ~12 leaves per layer plus embeddings.

  With the defaults: 12 layers x 12 leaves + embedding, final norm, head = 147 leaves, ~15 M params.
  """
  rng = np.random.default_rng(seed)
  vocab = 1000
  # 12 d^2 per layer (q, k, v, o, two 4x MLP matrices) plus embedding and head: solve for d.
  d = int((-2 * vocab + np.sqrt(4 * vocab**2 + 48 * layers * total_params)) / (24 * layers))
  d -= d % 8
  tree: dict[str, Any] = {"embed": rng.standard_normal((vocab, d), np.float32) * 0.02}
  for i in range(layers):
    tree[f"layer_{i:02d}"] = {
        "ln1_scale": np.ones(d, np.float32),
        "ln1_bias": np.zeros(d, np.float32),
        "q": rng.standard_normal((d, d), np.float32) * 0.02,
        "k": rng.standard_normal((d, d), np.float32) * 0.02,
        "v": rng.standard_normal((d, d), np.float32) * 0.02,
        "o": rng.standard_normal((d, d), np.float32) * 0.02,
        "ln2_scale": np.ones(d, np.float32),
        "ln2_bias": np.zeros(d, np.float32),
        "mlp_in": rng.standard_normal((d, 4 * d), np.float32) * 0.02,
        "mlp_in_bias": np.zeros(4 * d, np.float32),
        "mlp_out": rng.standard_normal((4 * d, d), np.float32) * 0.02,
        "mlp_out_bias": np.zeros(d, np.float32),
    }
  tree["final_ln"] = np.ones(d, np.float32)
  tree["head"] = rng.standard_normal((d, vocab), np.float32) * 0.02
  return jax.tree.map(jnp.asarray, tree)


def many_small_leaves(n: int = 500, size: int = 64, seed: int = 0) -> dict:
  """``n`` small float32 leaves: per-leaf overhead dominates."""
  rng = np.random.default_rng(seed)
  return {f"p{i:03d}": jnp.asarray(rng.standard_normal(size, np.float32)) for i in range(n)}


def mlp_problem(width: int, batch: int, d_in: int = 512, classes: int = 10, seed: int = 0):
  """A 3-layer tanh MLP with softmax cross-entropy on fixed random data.

  Returns ``(params, loss, logits_fn)``, both functions of the params only.
  """
  rng = np.random.default_rng(seed)
  dims = [d_in, width, width, classes]
  params = {
      f"layer{i}": {
          "w": jnp.asarray(rng.standard_normal((a, b), np.float32) / np.sqrt(a)),
          "b": jnp.zeros((b,), jnp.float32),
      }
      for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))
  }
  x = jnp.asarray(rng.standard_normal((batch, d_in), np.float32))
  y = jnp.asarray(rng.integers(0, classes, batch))

  def logits_fn(p):
    h = x
    for i in range(3):
      h = h @ p[f"layer{i}"]["w"] + p[f"layer{i}"]["b"]
      if i < 2:
        h = jnp.tanh(h)
    return h

  def loss(p):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits_fn(p)), y[:, None], axis=-1))

  return params, loss, logits_fn


def time_rounds(cands: Mapping[str, tuple[Callable[..., Any], tuple]], rounds: int, reps: int = 5) -> dict:
  """Seconds per call of each ``name -> (jitted fn, args)`` in every round, the rounds interleaved."""
  for fn, args in cands.values():
    jax.block_until_ready(fn(*args))
  times: dict[str, list[float]] = {name: [] for name in cands}
  for _ in range(rounds):
    for name, (fn, args) in cands.items():
      start = time.perf_counter()
      for _ in range(reps):
        out = fn(*args)
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - start) / reps)
  return times


def time_functions(cands: Mapping[str, tuple[Callable[..., Any], tuple]], rounds: int, reps: int = 5) -> dict:
  """Median seconds per call of each ``name -> (jitted fn, args)``, in interleaved rounds."""
  return {name: statistics.median(t) for name, t in time_rounds(cands, rounds, reps).items()}


def quadratic_loss(params: Any) -> jax.Array:
  """``sum(p^2) / 2``: the loss the step benchmarks build loss-based extra inputs from."""
  return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def with_extra_inputs(
    spec: Any, tx: optax.GradientTransformation, loss: Callable[..., Any] = quadratic_loss, logits_fn: Any = None
) -> optax.GradientTransformationExtraArgs:
  """``tx`` whose ``update(g, s, p)`` builds the extra inputs registry entry ``spec`` needs from ``loss``."""
  if not spec.extra_inputs:
    return tx

  def update(updates, state, params=None, **extra):
    built = gradtx.build_extra_args(spec.extra_inputs, loss, params, logits_fn=logits_fn)
    return tx.update(updates, state, params, **{**extra, **built})

  return optax.GradientTransformationExtraArgs(tx.init, update)


def state_bytes(tx: optax.GradientTransformation, params: Any) -> int:
  """Bytes of ``tx``'s state for ``params``, from abstract evaluation only."""
  shapes = jax.eval_shape(tx.init, params)
  return sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(shapes))


def tree_size(tree: Any) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def make_step(tx: optax.GradientTransformation) -> Callable[..., Any]:
  """``step(params, state, grads) -> (params, state)``, jitted, donating params and state."""

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return jax.jit(step, donate_argnums=(0, 1))


@dataclasses.dataclass
class Timing:
  name: str
  seconds: list[float]
  compile_seconds: float = float("nan")
  error: str | None = None
  faults: list[float] = dataclasses.field(default_factory=list)  # minor page faults per step, per round

  @property
  def median(self) -> float:
    return statistics.median(self.seconds) if self.seconds else float("nan")

  @property
  def faults_per_step(self) -> float:
    """Median minor page faults of the process per step: pages of fresh memory it touched."""
    return statistics.median(self.faults) if self.faults else float("nan")


def minor_faults() -> int:
  """Minor page faults of this process so far (0 where ``resource`` is unavailable)."""
  try:
    import resource
  except ImportError:
    return 0
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def paired_ratio(times: Sequence[float], base: Sequence[float]) -> float:
  """Median over rounds of ``times[i] / base[i]``: candidate and baseline timed back to back in each
  round, so load that drifts between rounds cancels (a ratio of medians does not)."""
  return statistics.median(t / b for t, b in zip(times, base))


def time_interleaved(
    candidates: Mapping[str, optax.GradientTransformation],
    params: Any,
    grads: Any,
    *,
    rounds: int = 15,
    steps_per_round: int = 5,
    record_errors: bool = False,
) -> dict[str, Timing]:
  """Median seconds per step of each candidate, timed in interleaved rounds.

  Each step is compiled ahead of time (its compile time is kept in ``Timing.compile_seconds``) and
  warmed up once. Each round also records the process's minor page faults per step
  (``Timing.faults_per_step``): pages the step touched fresh, e.g. temporaries that the allocator
  returned to the OS after the previous step. With ``record_errors``, a candidate that fails to
  build, compile or step is dropped with its error in ``Timing.error`` instead of aborting the others.
  """
  runs, timings = {}, {name: Timing(name, []) for name in candidates}
  for name, tx in candidates.items():
    try:
      p = jax.tree.map(jnp.copy, params)
      # Copied: some optax states hold the params themselves (optax.contrib.dog's x0), and a step
      # cannot donate one buffer twice. gradtx's contract suite checks that its states never do.
      s = jax.tree.map(jnp.copy, tx.init(p))
      start = time.perf_counter()
      step = make_step(tx).lower(p, s, grads).compile()
      timings[name].compile_seconds = time.perf_counter() - start
      p, s = step(p, s, grads)  # warm up
      jax.block_until_ready((p, s))
      runs[name] = [step, p, s]
    except Exception as e:
      if not record_errors:
        raise
      timings[name].error = f"{type(e).__name__}: {e}".splitlines()[0][:160]
  for _ in range(rounds):
    for name, run in runs.items():
      step, p, s = run
      faults, start = minor_faults(), time.perf_counter()
      for _ in range(steps_per_round):
        p, s = step(p, s, grads)
      jax.block_until_ready((p, s))
      timings[name].seconds.append((time.perf_counter() - start) / steps_per_round)
      timings[name].faults.append((minor_faults() - faults) / steps_per_round)
      run[1], run[2] = p, s
  return timings


def machine() -> str:
  """Date, cores, load, jax and optax versions and backend, for every result file."""
  device = jax.devices()[0]
  now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
  load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
  return (
      f"{now}; {os.cpu_count()} cores ({platform.machine()}){load}, jax {jax.__version__}, optax "
      f"{optax.__version__}, backend {device.platform} ({device.device_kind})"
  )


def command() -> str:
  """The command line of this run, as ``python -m benchmarks.<name> ...`` for a benchmark module."""
  script = sys.argv[0]
  if script.endswith(".py") and os.path.basename(os.path.dirname(script)) == "benchmarks":
    head = f"python -m benchmarks.{os.path.basename(script)[:-3]}"
  else:
    head = os.path.basename(script)
  return " ".join([head, *sys.argv[1:]])


def ratio_table(title: str, rows: list[tuple[str, str, float, float]], baseline_label: str) -> str:
  """A Markdown table: (case, candidate, median ms, ratio to the baseline)."""
  lines = [
      f"### {title}",
      "",
      f"| case | candidate | median ms/step | ratio vs {baseline_label} |",
      "|---|---|---:|---:|",
  ]
  for case, name, ms, ratio in rows:
    lines.append(f"| {case} | {name} | {ms:.3f} | {ratio:.2f} |")
  lines += ["", f"Run {machine()}; command `{command()}`. Ratios < 1 mean faster than the baseline."]
  return "\n".join(lines) + "\n"


def write_result(name: str, text: str) -> str:
  os.makedirs(RESULTS_DIR, exist_ok=True)
  path = os.path.join(RESULTS_DIR, name)
  with open(path, "w") as f:
    f.write(text)
  return path
