"""Per-example clipping: clip each example's gradient (all leaves together) and aggregate, in one pass."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.clipping._common import check_bound
from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype, scalar_dtype


def per_example_gradients(loss_fn: Callable[..., jax.Array], params: Any, batch: Any) -> Any:
  """Per-example gradients with ``vmap``: every leaf gets a leading batch axis.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``; it is called on batches of one example
      (each leaf of ``batch`` sliced to a leading axis of size 1), so a mean or sum loss works.
    params: the parameters.
    batch: a tree whose leaves share a leading example axis of size B.

  Returns:
    A tree like ``params`` whose leaves have shape ``(B, *leaf.shape)``.

  Example:
    >>> g = gradtx.clipping.per_example_gradients(loss, params, {"x": x, "y": y})
    >>> updates, state = tx.update(grads, state, params, per_example_grads=g)
  """

  def one(example):
    return jax.grad(loss_fn)(params, jax.tree.map(lambda x: x[None], example))

  return jax.vmap(one)(batch)


def per_example_norms(per_example_grads: Any) -> jax.Array:
  """``(B,)`` Euclidean norms of each example's gradient over all leaves, in float32 or wider.

  Args:
    per_example_grads: a tree whose leaves have a leading batch axis of size B.

  Returns:
    A ``(B,)`` array: entry i is the norm of example i's gradient over all its leaves.

  Example:
    >>> norms = gradtx.clipping.per_example_norms(per_example_grads)
  """
  leaves = jax.tree.leaves(per_example_grads)
  if not leaves:
    raise ValueError("per_example_norms: per_example_grads has no leaves.")
  total = None
  for g in leaves:
    sq = jnp.sum(jnp.square(g.astype(compute_dtype(g.dtype))).reshape(g.shape[0], -1), axis=1)
    total = sq if total is None else total + sq.astype(jnp.promote_types(total.dtype, sq.dtype))
  assert total is not None  # leaves is non-empty
  return jnp.sqrt(total)


def clip_per_example(per_example_grads: Any, max_norm: Any) -> tuple[Any, jax.Array]:
  r"""Clip every example's gradient to norm ``max_norm`` and sum over the batch, in one pass.

  .. math::
    n_i = \lVert g_i \rVert\ (\text{all leaves of example } i),\quad
    f_i = \min(1, C / n_i),\quad \textstyle s = \sum_i f_i\, g_i .

  The weighted sum is one contraction per leaf (``tensordot(f, g)``): the clipped per-example
  gradients are never materialised.

  Args:
    per_example_grads: a tree whose leaves have a leading batch axis of size B.
    max_norm: :math:`C`, > 0 (``inf``: plain sum).

  Returns:
    ``(clipped_sum, norms)``: the sum of the clipped gradients (a tree shaped like one example,
    in each leaf's dtype) and the ``(B,)`` pre-clip norms.

  Example:
    >>> total, norms = gradtx.clipping.clip_per_example(per_example_grads, 1.0)
    >>> mean = jax.tree.map(lambda s: s / norms.shape[0], total)
  """
  norms = per_example_norms(per_example_grads)
  bound = jnp.asarray(max_norm, norms.dtype)
  over = norms > bound
  factors = jnp.where(over, bound / jnp.where(over, norms, 1.0), 1.0)

  def weighted_sum(g):
    dt = compute_dtype(g.dtype)
    return jnp.tensordot(factors.astype(dt), g.astype(dt), axes=(0, 0)).astype(g.dtype)

  return jax.tree.map(weighted_sum, per_example_grads), norms


class PerExampleClipState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  norm: jax.Array  # mean pre-clip per-example norm of the last batch
  clipped: jax.Array  # fraction of the last batch's examples that were scaled down, in [0, 1]


def per_example_clip(max_norm: Any, *, aggregate: str = "mean") -> optax.GradientTransformationExtraArgs:
  r"""Clip each example's gradient to ``max_norm`` and aggregate them into one update.

  .. math::
    u = \frac{1}{B} \sum_{i=1}^B g_i \min(1, C / \lVert g_i \rVert)
    \quad(\text{or the sum, with } \texttt{aggregate="sum"}).

  Args:
    max_norm: :math:`C`, > 0 (``inf``: plain mean). A float, array or schedule.
    aggregate: ``"mean"`` (a gradient estimate to feed an optimizer) or ``"sum"`` (as DP-SGD
      adds noise to the sum before dividing by B).

  Returns:
    A gradient transformation whose ``update`` needs ``per_example_grads=`` (every leaf of the
    gradient with a leading batch axis, e.g. from :func:`per_example_gradients`); the incoming
    ``updates`` only fix the tree and are otherwise replaced. Its state logs ``norm`` (mean
    pre-clip per-example norm) and ``clipped`` (fraction of examples clipped).

  Example:
    >>> tx = optax.chain(gradtx.per_example_clip(1.0), gradtx.sgd(0.1))
    >>> g_i = gradtx.clipping.per_example_gradients(loss, params, batch)
    >>> updates, state = tx.update(grads, state, params, per_example_grads=g_i)

  References:
    Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang, "Deep Learning with Differential
    Privacy", arXiv:1607.00133.

  Notes:
    The norm is over all leaves of one example (flat clipping). No eps: Opacus uses
    :math:`C / (n_i + 10^{-6})` clamped at 1, which scales slightly even below the bound.
    The clipped gradients are combined by one weighted contraction per leaf, never stored.
  """
  check_bound("per_example_clip", "max_norm", max_norm)
  validate.one_of("aggregate", aggregate, ("mean", "sum"))

  def init_fn(params):
    dtype = scalar_dtype(params)
    return PerExampleClipState(jnp.zeros([], jnp.int32), jnp.zeros([], dtype), jnp.zeros([], dtype))

  def update_fn(updates, state, params=None, *, per_example_grads=None, **extra_args):
    del params, extra_args
    per_example_grads = errors.require(
        "per_example_clip", "per_example_grads", per_example_grads,
        "every leaf of the gradient with a leading batch axis",
        "per_example_grads=gradtx.clipping.per_example_gradients(loss, params, batch)",
    )
    check_matching(
        "per_example_clip", updates, jax.tree.map(lambda g: g[0], per_example_grads),
        ("updates", "per_example_grads[i]"),
    )
    total, norms = clip_per_example(per_example_grads, resolve(max_norm, state.count))
    batch = norms.shape[0]
    if aggregate == "mean":
      total = jax.tree.map(lambda s: (s.astype(compute_dtype(s.dtype)) * (1.0 / batch)).astype(s.dtype), total)
    out = jax.tree.map(lambda s, g: s.astype(g.dtype), total, updates)
    c = jnp.asarray(resolve(max_norm, state.count), norms.dtype)
    new_state = PerExampleClipState(
        count=optax.safe_int32_increment(state.count),
        norm=jnp.mean(norms).astype(state.norm.dtype),
        clipped=jnp.mean((norms > c).astype(state.clipped.dtype)),
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
