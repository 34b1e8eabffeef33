"""Poisson sampling for DP-SGD: index batches padded to one static size, with a mask of the real rows."""

import functools
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._src.core import keys


@functools.partial(jax.jit, static_argnums=(1, 3))
def _draw(key: jax.Array, num_examples: int, sampling_rate: Any, max_batch_size: int, group: Any = None):
  chosen = jax.random.uniform(key, (num_examples,)) < sampling_rate
  if group is not None:
    chosen = chosen & group
  (indices,) = jnp.nonzero(chosen, size=max_batch_size, fill_value=0)
  size = jnp.sum(chosen.astype(jnp.int32))
  return indices.astype(jnp.int32), jnp.arange(max_batch_size) < size, size


def poisson_batches(
    num_examples: int,
    sampling_rate: float,
    max_batch_size: int,
    key: Any,
    *,
    steps: int | None = None,
    start: int = 0,
    partitions: int = 1,
) -> Iterator[tuple[jax.Array, jax.Array]]:
  r"""Poisson-sampled batches of example indices, padded to ``max_batch_size`` with a mask.

  At step :math:`t` every example is in the batch independently with probability :math:`q`,
  using the key ``fold_in(key, t)`` (so a run resumes at ``start=t`` with the same batches).
  The batch is padded to ``max_batch_size`` with index 0 and ``mask`` False, so one compiled
  training step serves every batch: pass ``example_mask=mask`` to
  :func:`gradtx.privacy.dp_aggregate` (or :func:`gradtx.dp_sgd`) and padded rows count for
  nothing.

  Args:
    num_examples: :math:`N`, >= 1.
    sampling_rate: :math:`q`, in (0, 1].
    max_batch_size: the static batch size, >= 1. A sampled batch larger than this raises
      instead of being truncated (truncation breaks the privacy analysis). Choose it a few
      standard deviations above :math:`qN`, e.g. ``int(q*N + 5*sqrt(q*N*(1-q))) + 1``.
    key: an int seed or PRNG key.
    steps: number of batches to yield; None: forever.
    start: index of the first step (to resume).
    partitions: :math:`b`, >= 1. With :math:`b > 1` (cyclic Poisson sampling, for banded
      matrix-factorisation noise with :math:`b` bands) every example is assigned once to one of
      :math:`b` groups, independently and uniformly (from ``key``), and step :math:`t` samples
      only group :math:`t \bmod b`, each of its examples with probability :math:`q`: the
      expected batch size is :math:`qN/b` and an example's participations are at least
      :math:`b` steps apart (see :func:`gradtx.privacy.banded_epsilon`).

  Returns:
    An iterator of ``(indices, mask)``: int32 and bool arrays of shape ``(max_batch_size,)``;
    the real examples come first, in increasing index order.

  Example:
    >>> for idx, mask in gradtx.privacy.poisson_batches(60000, 256 / 60000, 384, key=0, steps=100):
    ...   g_i = gradtx.clipping.per_example_gradients(loss, params, (x[idx], y[idx]))
    ...   updates, state = opt.update(g_i, state, params, per_example_grads=g_i, example_mask=mask)

  References:
    Abadi et al., "Deep Learning with Differential Privacy", arXiv:1607.00133 (sampling with
    probability q, the setting of the moments accountant).

  Notes:
    The check against ``max_batch_size`` reads the batch size on the host once per batch (a
    device sync of one scalar).
  """
  if isinstance(num_examples, bool) or int(num_examples) != num_examples or num_examples < 1:
    raise ValueError(f"poisson_batches: num_examples must be an int >= 1, got {num_examples!r}.")
  if isinstance(max_batch_size, bool) or int(max_batch_size) != max_batch_size or max_batch_size < 1:
    raise ValueError(f"poisson_batches: max_batch_size must be an int >= 1, got {max_batch_size!r}.")
  q = float(sampling_rate)
  if not 0.0 < q <= 1.0:
    raise ValueError(f"poisson_batches: sampling_rate must be in (0, 1], got {sampling_rate!r}.")
  if steps is not None and (int(steps) != steps or steps < 0):
    raise ValueError(f"poisson_batches: steps must be an int >= 0 or None, got {steps!r}.")
  if isinstance(partitions, bool) or int(partitions) != partitions or partitions < 1:
    raise ValueError(f"poisson_batches: partitions must be an int >= 1, got {partitions!r}.")
  base = keys.as_key(key)
  n, cap, parts = int(num_examples), int(max_batch_size), int(partitions)
  # the group of each example, fixed for the run (its key folds in 2**32 - 1, a step never reached)
  groups = None if parts == 1 else jax.random.randint(jax.random.fold_in(base, np.uint32(0xFFFFFFFF)), (n,), 0, parts)
  t = int(start)
  while steps is None or t < start + steps:
    group = None if groups is None else groups == t % parts
    indices, mask, size = _draw(jax.random.fold_in(base, t), n, np.float32(q), cap, group)
    size = int(size)
    if size > cap:
      mean, std = q * n / parts, math.sqrt(q * n / parts * (1.0 - q))
      raise ValueError(
          f"poisson_batches: step {t} sampled {size} examples but max_batch_size is {cap}; the batch "
          f"cannot be truncated without breaking the privacy guarantee. Raise max_batch_size (the "
          f"expected size is {mean:.1f} with std {std:.1f}; e.g. {int(mean + 5 * std) + 1})."
      )
    yield indices, mask
    t += 1
