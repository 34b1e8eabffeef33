"""Weight decay: add a multiple of the parameters to the updates."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype, mask_tree


class AddDecayedWeightsState(NamedTuple):
  # int32 step counter, the argument of a weight-decay schedule
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states


def add_decayed_weights(
    weight_decay: Any = 0.0,
    *,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Add ``weight_decay * params`` to the updates, on the leaves ``mask`` selects.

  .. math::
    u_t = g_t + \lambda\, p_{t-1}.

  Placed before a scaling (``chain(add_decayed_weights(wd), scale_by_adam())``) this is coupled L2
  regularisation (torch ``Adam(weight_decay=)``); placed after it and before the learning rate it
  is decoupled weight decay (AdamW).

  Args:
    weight_decay: :math:`\lambda`, >= 0; a float, an array or a schedule of the 0-based step.
    mask: which leaves decay: None (all), a tree of bools like the params, or a callable taking
      the params and returning such a tree (e.g. ``lambda p: jax.tree.map(lambda x: x.ndim > 1,
      p)`` to skip biases and norms).

  Returns:
    A gradient transformation that needs ``params`` in ``update``.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_adam(), gradtx.add_decayed_weights(1e-2),
    ...                  gradtx.scale_by_learning_rate(1e-3))

  References:
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.

  Notes:
    Unlike ``optax.add_decayed_weights`` the mask is applied leaf by leaf inside one
    transformation (no ``optax.masked`` wrapper state), so the state is the same with or without
    a mask.
  """
  validate.non_negative("weight_decay", weight_decay)

  def init_fn(params):
    del params
    return AddDecayedWeightsState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    params = errors.require(
        "add_decayed_weights",
        "params",
        params,
        "the current parameters (decay is a multiple of them)",
        "tx.update(grads, state, params)",
    )
    check_matching("add_decayed_weights", updates, params, ("updates", "params"))
    decay = resolve(weight_decay, state.count)

    def add(g, p, m):
      if not m:
        return g
      dt = compute_dtype(g.dtype)
      return (g.astype(dt) + decay * p.astype(dt)).astype(g.dtype)

    out = jax.tree.map(add, updates, params, mask_tree(mask, params))
    return out, AddDecayedWeightsState(optax.safe_int32_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
