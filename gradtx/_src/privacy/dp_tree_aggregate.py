"""DP-FTRL's aggregation: clipped per-example sums plus tree-aggregation noise, as correlated noise per step."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import compute_dtype
from gradtx._src.privacy.dp_aggregate import _clipped_sum, _divide, _noise_std, check_axis_name, check_per_example


class DpTreeAggregateState(NamedTuple):
  # int32 number of private releases so far
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
  key: jax.Array  # raw uint32[2] base key; node noise is derived from it, never split
  noise: optax.Updates  # the noise of the current prefix sum (sum of its tree nodes), compute dtype


def tree_node_noise(key: jax.Array, epoch: Any, level: Any, node: Any, like: Any) -> Any:
  """The standard normal noise of tree node ``(level, node)`` in ``epoch`` (one folded key per leaf).

  Node ``(l, j)``, ``j >= 1``, covers steps ``(j-1) 2^l + 1 .. j 2^l`` of its epoch's tree.
  """
  k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, epoch), level), node)
  leaves, treedef = jax.tree.flatten(like)
  return jax.tree.unflatten(
      treedef,
      [jax.random.normal(jax.random.fold_in(k, i), jnp.shape(x), compute_dtype(jnp.asarray(x).dtype))
       for i, x in enumerate(leaves)],
  )


def _trailing_zeros(t: jax.Array) -> jax.Array:
  return jax.lax.population_count((t & -t) - 1)


def dp_tree_aggregate(
    l2_clip: Any,
    noise_multiplier: Any,
    *,
    key: Any = None,
    batch_size: Any = None,
    restart_every: int | None = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Clipped per-example sums with tree-aggregation noise (DP-FTRL), as a per-step gradient.

  With :math:`x_t = \sum_i m_i\, g_i \min(1, C/\lVert g_i\rVert)` and a binary tree over the
  steps whose nodes carry independent :math:`\mathcal N(0, \sigma^2 C^2 I)` noise, the noisy
  prefix sum is :math:`S_t = \sum_{s \le t} x_s + N_t`, :math:`N_t` the sum of the at most
  :math:`\lceil \log_2(t+1) \rceil` nodes of the dyadic decomposition of :math:`[1, t]`
  (node :math:`(l, t \gg l)` for every set bit :math:`l` of :math:`t`). The update is the
  increment

  .. math::
    \tilde g_t = (S_t - S_{t-1}) / B = \big(x_t + N_t - N_{t-1}\big) / B,

  so SGD with a constant learning rate :math:`\eta` on :math:`\tilde g_t` gives exactly
  FTRL's :math:`\theta_t = \theta_0 - \eta S_t / B`.

  Args:
    l2_clip: :math:`C`, > 0; a float, array or schedule.
    noise_multiplier: :math:`\sigma`, >= 0, the noise std of each tree node divided by :math:`C`.
    key: an int seed or PRNG key (required).
    batch_size: :math:`B`, > 0, the (fixed) batch size the sum is divided by.
    restart_every: restart the tree (and FTRL's anchor :math:`\theta_0`) every this many
      steps, e.g. once per epoch; None: one tree for the whole run.
    axis_name: under data parallelism, the mapped axis name (or names) over which each device
      holds a shard of the batch: the clipped sums are ``psum``-ed and the tree noise, drawn
      from the replicated state key, is added once (see :func:`gradtx.privacy.dp_aggregate`).

  Returns:
    A gradient transformation whose ``update`` needs ``per_example_grads=`` and takes
    ``example_mask=``. The state holds the current prefix noise :math:`N_t` (one
    parameter-sized tree); each step draws on average two nodes' noise (a node is drawn when
    it enters the prefix and regenerated from the key when it leaves).

  Example:
    >>> tx = optax.chain(gradtx.privacy.dp_tree_aggregate(1.0, 4.0, key=0, batch_size=256,
    ...                                                   restart_every=steps_per_epoch),
    ...                  optax.sgd(0.5))

  References:
    Kairouz, McMahan, Song, Thakkar, Thakurta & Xu, "Practical and Private (Deep) Learning
    without Sampling or Shuffling", arXiv:2103.00039.

  Notes:
    Data is processed in a fixed order without sampling (no amplification); each example
    must appear at most once per tree. :math:`N_t` is updated incrementally (subtracting the
    nodes that leave the prefix, adding the one that enters), so it equals the sum of its nodes
    up to floating-point rounding. The paper's variant with Honaker's estimator (lower
    variance) is not implemented. Account with
    :func:`gradtx.privacy.tree_aggregation_epsilon`.
  """
  validate.non_negative("noise_multiplier", noise_multiplier)
  if not (isinstance(l2_clip, (int, float)) and l2_clip == float("inf")):
    validate.positive("l2_clip", l2_clip)
  if batch_size is None:
    raise ValueError("dp_tree_aggregate: batch_size is required (the fixed batch size), e.g. batch_size=256.")
  validate.positive("batch_size", batch_size)
  if restart_every is not None:
    validate.positive_int("restart_every", restart_every)
  if key is None:
    raise TypeError("dp_tree_aggregate: key is required, e.g. key=0 or key=jax.random.key(0).")
  check_axis_name("dp_tree_aggregate", axis_name)
  raw_key = keys.as_key(key)

  def init_fn(params):
    noise = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.asarray(p).dtype)), params)
    return DpTreeAggregateState(count=jnp.zeros([], jnp.int32), key=keys.fresh(raw_key), noise=noise)

  def update_fn(updates, state, params=None, *, per_example_grads=None, example_mask=None, **extra_args):
    del params, extra_args
    check_per_example("dp_tree_aggregate", updates, per_example_grads)
    clip = resolve(l2_clip, state.count)
    sigma = resolve(noise_multiplier, state.count)
    total, denom = _clipped_sum(
        per_example_grads, example_mask, clip, denominator="expected", expected_batch_size=batch_size,
        count=state.count, axis_name=axis_name,
    )
    if restart_every is None:
      epoch, t = jnp.zeros([], jnp.int32), state.count + 1
    else:
      epoch, t = state.count // restart_every, state.count % restart_every + 1
    prev = jax.tree.map(lambda n: jnp.where(t == 1, jnp.zeros_like(n), n), state.noise)
    k = _trailing_zeros(t)

    def remove(level, acc):
      z = tree_node_noise(state.key, epoch, level, (t - 1) >> level, acc)
      return jax.tree.map(lambda a, b: a - b, acc, z)

    # nodes (l, (t-1) >> l), l < k, leave the prefix; node (k, t >> k) enters it
    without = jax.lax.fori_loop(0, k, remove, jax.tree.map(jnp.zeros_like, prev))
    entering = tree_node_noise(state.key, epoch, k, t >> k, prev)

    noise = jax.tree.map(lambda p, w, e: p + _noise_std(sigma, clip, p.dtype) * (w + e), prev, without, entering)
    out = _divide(total, jax.tree.map(lambda n, p: n - p, noise, prev), updates, denom)
    return out, DpTreeAggregateState(count=optax.safe_int32_increment(state.count), key=state.key, noise=noise)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
