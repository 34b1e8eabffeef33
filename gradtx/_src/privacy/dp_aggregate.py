"""DP aggregation: clip each example's gradient, sum, add Gaussian noise, divide by the batch size."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.clipping.per_example_clip import clip_per_example
from gradtx._src.core import errors, keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.rng import normal_like
from gradtx._src.core.tree import check_matching, compute_dtype

RNGS = ("threefry", "fast")
DENOMINATORS = ("expected", "actual")

_MEANING = "every leaf of the gradient with a leading batch axis (one row per example)"
_EXAMPLE = "per_example_grads=gradtx.clipping.per_example_gradients(loss, params, batch)"


class DpAggregateState(NamedTuple):
  # int32 number of private releases so far (the accountant's step count)
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
  key: jax.Array  # raw uint32[2] PRNG key, split once per update


def check_per_example(where: str, updates: Any, per_example_grads: Any) -> None:
  """Raise a TypeError for missing or aggregated per-example gradients, a ValueError for a tree mismatch."""
  per_example_grads = errors.require(where, "per_example_grads", per_example_grads, _MEANING, _EXAMPLE)
  u_leaves = jax.tree.leaves(updates)
  g_leaves = jax.tree.leaves(per_example_grads)
  if (
      # jaxlib ships no type stub for PyTreeDef, so mypy cannot see its __eq__.
      jax.tree.structure(updates) == jax.tree.structure(per_example_grads)  # type: ignore[operator]
      and u_leaves
      and all(jnp.ndim(g) == jnp.ndim(u) for g, u in zip(g_leaves, u_leaves))
  ):
    raise TypeError(
        f"{where}.update got per_example_grads= without a leading batch axis: its leaves have the "
        f"shapes of the aggregated gradient. A DP transformation must clip each example separately; "
        f"pass {_EXAMPLE} (every leaf shaped (batch, *param.shape))."
    )
  check_matching(where, updates, jax.tree.map(lambda g: g[0], per_example_grads), ("updates", "per_example_grads[i]"))
  sizes = {jnp.shape(g)[0] for g in g_leaves}
  if len(sizes) > 1:
    raise ValueError(f"{where}: the leaves of per_example_grads have different batch sizes {sorted(sizes)}.")


def masked(per_example_grads: Any, example_mask: Any) -> Any:
  """Zero the rows of padded examples (``example_mask`` False) with a select, so NaN padding stays out."""
  if example_mask is None:
    return per_example_grads
  mask = jnp.asarray(example_mask).astype(bool)

  def zero(g):
    m = mask.reshape(mask.shape + (1,) * (g.ndim - 1))
    return jnp.where(m, g, jnp.zeros((), g.dtype))

  return jax.tree.map(zero, per_example_grads)


def check_axis_name(where: str, axis_name: Any) -> None:
  """Raise TypeError unless ``axis_name`` is None, a mapped axis name or a tuple of them."""
  if not (
      axis_name is None
      or isinstance(axis_name, str)
      or (isinstance(axis_name, tuple) and axis_name and all(isinstance(a, str) for a in axis_name))
  ):
    raise TypeError(
        f"{where}: axis_name must be None, a mapped axis name or a tuple of them, e.g. "
        f"axis_name='data' (the name given to shard_map's mesh or to pmap), got {axis_name!r}."
    )


def _validate_aggregate(
    where: str,
    l2_clip: Any,
    noise_multiplier: Any,
    *,
    key: Any,
    expected_batch_size: Any,
    denominator: str,
    rng: str,
    axis_name: Any,
) -> tuple[jax.Array, dict[str, Any]]:
  """Check the hyperparameters shared by the DP aggregations; return the raw key and them as a dict.

  ``where`` names the factory in the errors raised here (``validate`` names the outermost
  gradtx function the user called).
  """
  validate.non_negative("noise_multiplier", noise_multiplier)
  validate.one_of("denominator", denominator, DENOMINATORS)
  validate.one_of("rng", rng, RNGS)
  if not (isinstance(l2_clip, (int, float)) and l2_clip == float("inf")):  # inf: no clipping
    validate.positive("l2_clip", l2_clip)
  if denominator == "expected":
    if expected_batch_size is None:
      raise ValueError(
          f"{where}: expected_batch_size is required with denominator='expected' "
          "(sampling_rate * num_examples), e.g. expected_batch_size=256; or pass denominator='actual'."
      )
    validate.positive("expected_batch_size", expected_batch_size)
  check_axis_name(where, axis_name)
  if key is None:
    raise TypeError(f"{where}: key is required (the noise lives in state), e.g. key=0 or key=jax.random.key(0).")
  hyperparams = dict(
      l2_clip=l2_clip, noise_multiplier=noise_multiplier, denominator=denominator,
      expected_batch_size=expected_batch_size, rng=rng, axis_name=axis_name,
  )
  return keys.as_key(key), hyperparams


def _noise_std(sigma: Any, clip: Any, dtype: Any) -> jax.Array:
  """The noise std sigma * C in ``dtype``; exactly 0 for sigma 0 (whatever C, also inf)."""
  sig = jnp.asarray(sigma, dtype)
  return jnp.where(sig == 0, jnp.zeros((), dtype), sig * jnp.asarray(clip, dtype))


def _clipped_sum(
    per_example_grads: Any,
    example_mask: Any,
    clip: Any,
    *,
    denominator: str,
    expected_batch_size: Any,
    count: jax.Array,
    axis_name: Any,
) -> tuple[Any, Any]:
  """The sum of the real examples' clipped gradients and the divisor, both global over ``axis_name``.

  With ``axis_name`` each device holds one shard of the batch: the sums (and the number of real
  examples, for ``denominator="actual"``) are ``psum``-ed, so every device gets the whole batch's.
  """
  total, _ = clip_per_example(masked(per_example_grads, example_mask), clip)
  if denominator == "expected":
    denom = resolve(expected_batch_size, count)
  else:
    batch = jax.tree.leaves(per_example_grads)[0].shape[0]
    real = batch if example_mask is None else jnp.sum(jnp.asarray(example_mask).astype(jnp.int32))
    if axis_name is not None:
      real = jax.lax.psum(jnp.asarray(real, jnp.int32), axis_name)
    denom = jnp.maximum(real, 1)
  if axis_name is not None:  # summed in float32 or wider, like each device's own sum
    total = jax.lax.psum(jax.tree.map(lambda s: s.astype(compute_dtype(s.dtype)), total), axis_name)
  return total, denom


def _clipped_sum_and_noise(
    where: str,
    updates: Any,
    count: jax.Array,
    key: jax.Array,
    per_example_grads: Any,
    example_mask: Any,
    *,
    l2_clip: Any,
    noise_multiplier: Any,
    denominator: str,
    expected_batch_size: Any,
    rng: str,
    axis_name: Any,
) -> tuple[Any, Any, Any, jax.Array]:
  """One release's ``(clipped sum, fresh noise sigma C z, divisor, key to keep)``, after checking the inputs.

  The noise comes from the state's key only, so it is the same on every device of ``axis_name``.
  """
  check_per_example(where, updates, per_example_grads)
  clip = resolve(l2_clip, count)
  sigma = resolve(noise_multiplier, count)
  total, denom = _clipped_sum(
      per_example_grads, example_mask, clip, denominator=denominator,
      expected_batch_size=expected_batch_size, count=count, axis_name=axis_name,
  )
  new_key, use = keys.split(key)
  z = normal_like(use, total, rng)
  return total, jax.tree.map(lambda zl: _noise_std(sigma, clip, zl.dtype) * zl, z), denom, new_key


def _divide(total: Any, noise: Any, updates: Any, denom: Any) -> Any:
  """``(total + noise) / denom`` in the noise's (compute) dtype, cast to the updates' dtypes."""

  def one(s, n, u):
    dt = n.dtype
    return ((s.astype(dt) + n) * (1.0 / jnp.asarray(denom, dt))).astype(u.dtype)

  return jax.tree.map(one, total, noise, updates)


def dp_aggregate(
    l2_clip: Any,
    noise_multiplier: Any,
    *,
    key: Any = None,
    expected_batch_size: Any = None,
    denominator: str = "expected",
    rng: str = "threefry",
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The private gradient of DP-SGD: per-example clipping, sum, Gaussian noise, division.

  .. math::
    \bar g_t = \frac{1}{D}\Big(\sum_{i \in B_t} m_i\, g_i \min\big(1, C / \lVert g_i \rVert\big)
      + \mathcal N(0, \sigma^2 C^2 I)\Big),

  with :math:`\lVert g_i \rVert` the norm of example :math:`i`'s gradient over all leaves,
  :math:`m_i \in \{0, 1\}` the padding mask, and :math:`D = qN` (``expected_batch_size``) or
  :math:`D = \sum_i m_i` (``denominator="actual"``).

  Args:
    l2_clip: :math:`C`, > 0 (``inf``: no clipping, and no privacy); a float, array or schedule.
    noise_multiplier: :math:`\sigma`, >= 0 (the noise std divided by :math:`C`); a float,
      array or schedule. The accountant needs the value used at every step.
    key: an int seed or PRNG key (required); the noise is reproducible from it.
    expected_batch_size: :math:`qN`, > 0; required with ``denominator="expected"`` (Poisson
      sampling: the realised batch size is data-dependent and must not be the divisor).
    denominator: ``"expected"`` (divide by ``expected_batch_size``) or ``"actual"`` (divide by
      the number of real examples, for fixed-size batches).
    rng: ``"threefry"`` (``jax.random.normal``, the default) or ``"fast"`` (the counter-hash
      generator of :func:`gradtx.noise.add_annealed_noise`).
    axis_name: under data parallelism (``jax.shard_map`` or ``pmap`` over this axis name, or
      a tuple of names), each device passes the per-example gradients of its own shard of the
      batch: the clipped sums (and, for ``denominator="actual"``, the counts of real examples)
      are ``psum``-ed over the axis and the noise is drawn once for the global sum from the
      replicated state key, so every device returns the same update, the one a single device
      computes on the whole batch. ``expected_batch_size`` is then the global one. None: no
      reduction (one device, or the caller sums).

  Returns:
    A gradient transformation. Its ``update`` needs ``per_example_grads=`` (every leaf of the
    gradient with a leading batch axis) and takes an optional ``example_mask=`` (a ``(B,)``
    boolean array; False rows are padding and contribute nothing). The incoming ``updates``
    only fix the tree and dtypes; they are replaced. The state's ``count`` is the number of
    private releases, the ``steps`` of :class:`gradtx.privacy.PrivacyAccountant`.

  Example:
    >>> tx = optax.chain(gradtx.privacy.dp_aggregate(1.0, 1.1, key=0, expected_batch_size=256),
    ...                  optax.sgd(0.1))
    >>> g_i = gradtx.clipping.per_example_gradients(loss, params, batch)
    >>> updates, state = tx.update(grads, state, params, per_example_grads=g_i, example_mask=mask)

  References:
    Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang, "Deep Learning with Differential
    Privacy", arXiv:1607.00133.

  Notes:
    Clip factor :math:`\min(1, C/\lVert g_i\rVert)` without Opacus's :math:`10^{-6}`. The noise
    is drawn in float32 or wider and added to the sum before the division, as in the paper; the
    result is cast to the gradient's dtype. ``jax.random.normal`` is the default because the
    noise is drawn once per step for a parameter-sized tree, negligible next to the
    per-example gradients; ``rng="fast"`` trades a non-cryptographic hash for speed. Like every
    float-based implementation (optax, Opacus, TF Privacy) the float32 Gaussian is truncated
    near 5.4 standard deviations and the floating-point attacks of Mironov (2012) are not
    addressed. With ``denominator="actual"`` the divisor depends on the data; the accountant's
    guarantee then covers the (noised sum, batch size) pair only for fixed-size batches.
    With ``axis_name`` the state (its key) must be replicated, as optimizer states are in data
    parallelism; the result equals the single-device one up to the order of the summation.
  """
  raw_key, hyperparams = _validate_aggregate(
      "dp_aggregate", l2_clip, noise_multiplier, key=key, expected_batch_size=expected_batch_size,
      denominator=denominator, rng=rng, axis_name=axis_name,
  )

  def init_fn(params):
    del params
    return DpAggregateState(count=jnp.zeros([], jnp.int32), key=keys.fresh(raw_key))

  def update_fn(updates, state, params=None, *, per_example_grads=None, example_mask=None, **extra_args):
    del params, extra_args
    total, noise, denom, new_key = _clipped_sum_and_noise(
        "dp_aggregate", updates, state.count, state.key, per_example_grads, example_mask, **hyperparams
    )
    out = _divide(total, noise, updates, denom)
    return out, DpAggregateState(count=optax.safe_int32_increment(state.count), key=new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
