"""The race's three problems, all offline: an MLP and a CNN on scikit-learn's digits, and a
character-level transformer on a bundled public-domain text (benchmarks/data/coriolanus.txt).

Each problem is a :class:`Problem`: a parameter initializer per seed, ``loss_fn(params, batch)``,
a jittable ``batch_fn(indices) -> batch`` over ``num_examples`` training examples, and
``eval_loss(params)``, the loss the race records (full training loss for the digits problems,
held-out loss for the transformer). Everything is float32.
"""

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
TEXT_PATH = os.path.join(DATA_DIR, "coriolanus.txt")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One race problem.

  Attributes:
    name: short name used on the command line and in result file names.
    title: a one-line description for tables and plots.
    init: ``init(seed) -> params``.
    loss_fn: ``loss_fn(params, batch) -> scalar`` on a training batch.
    logits_fn: ``logits_fn(params, batch) -> logits`` of the batch's inputs (for optimizers that
      sample labels from the model, e.g. Sophia-G).
    batch_fn: ``batch_fn(indices) -> batch`` (jittable); ``indices`` are ints in [0, num_examples).
    num_examples: how many training examples ``batch_fn`` can index.
    batch_size: examples per step.
    eval_loss: ``eval_loss(params) -> scalar``, the loss the race records.
    eval_label: what ``eval_loss`` is, for table headers.
    metric: ``metric(params) -> scalar`` reported after training (test accuracy or held-out loss).
    metric_label: what ``metric`` is.
    demo_steps: steps in the quick race (``make demo``).
    full_steps: steps in the full benchmark.
    eval_every: steps between recorded losses (the race trains ``eval_every`` steps per record).
    target: the loss at which the full benchmark stops the clock ("time to target").
  """

  name: str
  title: str
  init: Callable[[int], Any]
  loss_fn: Callable[[Any, Any], jax.Array]
  logits_fn: Callable[[Any, Any], jax.Array]
  batch_fn: Callable[[jax.Array], Any]
  num_examples: int
  batch_size: int
  eval_loss: Callable[[Any], jax.Array]
  eval_label: str
  metric: Callable[[Any], jax.Array]
  metric_label: str
  demo_steps: int
  full_steps: int
  eval_every: int
  target: float


def _cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@functools.cache
def _digits(seed: int = 0):
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  x_tr, x_te, y_tr, y_te = train_test_split(x, digits.target, test_size=0.25, random_state=seed)
  return jnp.asarray(x_tr), jnp.asarray(y_tr), jnp.asarray(x_te), jnp.asarray(y_te)


class MLP(nnx.Module):
  """64 -> hidden -> hidden -> 10 with GELU."""

  def __init__(self, hidden: int, rngs: nnx.Rngs):
    self.l1 = nnx.Linear(64, hidden, rngs=rngs)
    self.l2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.gelu(self.l2(jax.nn.gelu(self.l1(x)))))


class Conv3x3(nnx.Module):
  """A 3x3 'SAME' convolution as one matmul over the nine shifted copies of the input.

  XLA's CPU convolution (and its gradient) is ~50x slower than this on 8x8 images; the kernel
  keeps the usual (3, 3, in, out) shape, so optimizers see a convolution's parameter tree.
  """

  def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs):
    self.stride = stride
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (3, 3, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))

  def __call__(self, x):
    h, w = x.shape[-3:-1]
    pad = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)])
    patches = jnp.concatenate(
        [pad[..., i: i + h: self.stride, j: j + w: self.stride, :] for i in range(3) for j in range(3)], -1
    )
    kernel = self.kernel[...]
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + self.bias[...]


class CNN(nnx.Module):
  """8x8x1 -> conv3x3(8) -> conv3x3(16, stride 2) -> dense(64) -> 10, GELU; ~18 k params."""

  def __init__(self, rngs: nnx.Rngs):
    self.c1 = Conv3x3(1, 8, 1, rngs)
    self.c2 = Conv3x3(8, 16, 2, rngs)
    self.l1 = nnx.Linear(4 * 4 * 16, 64, rngs=rngs)
    self.out = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    h = x.reshape(x.shape[:-1] + (8, 8, 1))
    h = jax.nn.gelu(self.c2(jax.nn.gelu(self.c1(h))))
    h = h.reshape(h.shape[:-3] + (-1,))
    return self.out(jax.nn.gelu(self.l1(h)))


def _classifier(name: str, title: str, module: Callable[[nnx.Rngs], nnx.Module], **settings) -> Problem:
  x_tr, y_tr, x_te, y_te = _digits()
  graphdef, _ = nnx.split(module(nnx.Rngs(0)))

  def init(seed):
    return nnx.split(module(nnx.Rngs(seed)))[1]

  def logits(params, x):
    return nnx.merge(graphdef, params)(x)

  def loss_fn(params, batch):
    return _cross_entropy(logits(params, batch[0]), batch[1])

  return Problem(
      name=name, title=title, init=init, loss_fn=loss_fn, logits_fn=lambda p, batch: logits(p, batch[0]),
      batch_fn=lambda idx: (x_tr[idx], y_tr[idx]), num_examples=x_tr.shape[0], batch_size=128,
      eval_loss=lambda p: loss_fn(p, (x_tr, y_tr)), eval_label="full-batch train loss",
      metric=lambda p: jnp.mean(jnp.argmax(logits(p, x_te), -1) == y_te), metric_label="test accuracy",
      **settings,
  )


class Block(nnx.Module):
  """Pre-LayerNorm transformer block: causal multi-head self-attention and a 4x GELU MLP."""

  def __init__(self, d: int, heads: int, rngs: nnx.Rngs):
    self.heads = heads
    self.ln1 = nnx.LayerNorm(d, rngs=rngs)
    self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
    self.proj = nnx.Linear(d, d, rngs=rngs)
    self.ln2 = nnx.LayerNorm(d, rngs=rngs)
    self.fc = nnx.Linear(d, 4 * d, rngs=rngs)
    self.fc_out = nnx.Linear(4 * d, d, rngs=rngs)

  def __call__(self, x):
    t, d = x.shape[-2:]
    q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
    split = lambda a: a.reshape(a.shape[:-1] + (self.heads, d // self.heads))  # noqa: E731
    scores = jnp.einsum("...qhc,...khc->...hqk", split(q), split(k)) / np.sqrt(d // self.heads)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -1e9)
    att = jnp.einsum("...hqk,...khc->...qhc", jax.nn.softmax(scores, -1), split(v)).reshape(x.shape)
    x = x + self.proj(att)
    return x + self.fc_out(jax.nn.gelu(self.fc(self.ln2(x))))


class CharTransformer(nnx.Module):
  """Token and position embeddings, ``layers`` blocks, final LayerNorm, linear head."""

  def __init__(self, vocab: int, context: int, d: int, heads: int, layers: int, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab, d, rngs=rngs)
    self.pos = nnx.Param(jax.random.normal(rngs.params(), (context, d)) * 0.02)
    self.blocks = nnx.List([Block(d, heads, rngs) for _ in range(layers)])
    self.ln = nnx.LayerNorm(d, rngs=rngs)
    self.head = nnx.Linear(d, vocab, rngs=rngs)

  def __call__(self, tokens):
    x = self.embed(tokens) + self.pos[...][: tokens.shape[-1]]
    for block in self.blocks:
      x = block(x)
    return self.head(self.ln(x))


def _transformer(context: int = 32, d: int = 32, heads: int = 4, layers: int = 2, **settings) -> Problem:
  with open(TEXT_PATH, encoding="utf-8") as f:
    text = f.read()
  chars = sorted(set(text))
  tokens = np.asarray([chars.index(c) for c in text], np.int32)
  split = int(0.9 * len(tokens))
  train, held_out = jnp.asarray(tokens[:split]), tokens[split:]
  # A fixed held-out set: 64 windows spread evenly over the last 10% of the text.
  starts = np.linspace(0, len(held_out) - context - 1, 64).astype(int)
  eval_windows = jnp.asarray(np.stack([held_out[s: s + context + 1] for s in starts]))
  module = functools.partial(CharTransformer, len(chars), context, d, heads, layers)
  graphdef, _ = nnx.split(module(nnx.Rngs(0)))
  offsets = jnp.arange(context + 1)

  def init(seed):
    return nnx.split(module(nnx.Rngs(seed)))[1]

  def logits_fn(params, windows):
    return nnx.merge(graphdef, params)(windows[..., :-1])

  def loss_fn(params, windows):
    return _cross_entropy(logits_fn(params, windows), windows[..., 1:])

  eval_loss = lambda p: loss_fn(p, eval_windows)  # noqa: E731

  def accuracy(params):
    return jnp.mean(jnp.argmax(logits_fn(params, eval_windows), -1) == eval_windows[..., 1:])

  return Problem(
      name="transformer",
      title=f"char-level transformer ({layers} layers, d={d}, context {context}) on Coriolanus",
      init=init, loss_fn=loss_fn, logits_fn=logits_fn, batch_fn=lambda idx: train[idx[..., None] + offsets],
      num_examples=split - context - 1, batch_size=16, eval_loss=eval_loss,
      eval_label="held-out loss (nats/char)", metric=accuracy, metric_label="held-out next-char accuracy",
      **settings,
  )


_BUILDERS = {
    "mlp": lambda: _classifier(
        "mlp", "MLP (64-64-64-10) on scikit-learn digits", lambda rngs: MLP(64, rngs),
        demo_steps=300, full_steps=300, eval_every=5, target=0.01,
    ),
    "cnn": lambda: _classifier(
        "cnn", "CNN (3x3 convs 8 and 16 channels, dense 64) on scikit-learn digits (8x8)", CNN,
        demo_steps=200, full_steps=200, eval_every=10, target=0.01,
    ),
    "transformer": lambda: _transformer(demo_steps=200, full_steps=300, eval_every=25, target=2.3),
}
PROBLEMS = tuple(_BUILDERS)


@functools.cache
def get(name: str) -> Problem:
  """The problem called ``name`` (one of :data:`PROBLEMS`), built once."""
  if name not in _BUILDERS:
    raise ValueError(f"unknown problem {name!r}; known: {list(PROBLEMS)}.")
  return _BUILDERS[name]()
