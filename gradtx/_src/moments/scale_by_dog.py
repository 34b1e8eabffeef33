"""DoG and LDoG: parameter-free step sizes, distance from the start over accumulated gradient norms."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.tree import check_matching, compute_dtype, global_sq_norm, scalar_dtype


class ScaleByDogState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  x0: optax.Params  # the params at the first update
  rbar: Any  # max distance from x0 so far (r_eps at the first step): a scalar, or one per leaf
  sum_sq_norms: Any  # G = sum of squared gradient norms: a scalar, or one per leaf




def _leaf_sq_norm(x: jax.Array) -> jax.Array:
  x = x.astype(compute_dtype(x.dtype))
  return jnp.sum(jnp.square(x))


def scale_by_dog(
    reps_rel: Any = 1e-6,
    eps: Any = 1e-8,
    *,
    layerwise: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by the DoG step size (Distance over Gradients), globally or per leaf (LDoG).

  .. math::
    \bar r_1 = r_\epsilon = \text{reps\_rel}\,(1 + \lVert x_0 \rVert),\quad
    \bar r_t = \max(\bar r_{t-1}, \lVert x_t - x_0 \rVert),\\
    G_t = G_{t-1} + \lVert g_t \rVert^2,\quad
    \eta_t = \bar r_t / \sqrt{G_t + \epsilon},\quad u_t = \eta_t g_t,

  with :math:`x_t` the ``params`` passed to ``update`` and :math:`x_0` those of the first call.
  DoG takes every norm over all leaves together; LDoG (``layerwise=True``) keeps
  :math:`\bar r, G, \eta` and :math:`\lVert x_0 \rVert` per leaf.

  Args:
    reps_rel: relative initial movement, > 0: :math:`r_\epsilon = \text{reps\_rel}(1 +
      \lVert x_0 \rVert)` (1e-6; the authors suggest 1e-4 with batch norm).
    eps: added to :math:`G` inside the square root, >= 0.
    layerwise: LDoG, one step size per leaf.

  Returns:
    A gradient transformation that needs ``params``; apply ``scale_by_learning_rate(c)`` after it
    (``c = 1`` is plain DoG).

  Example:
    >>> tx = optax.chain(gradtx.scale_by_dog(), gradtx.scale_by_learning_rate(1.0))

  References:
    Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size
    Schedule", arXiv:2302.12022.

  Notes:
    :math:`x_0` and :math:`r_\epsilon` are taken from the ``params`` of the first ``update`` (as the
    official code does at its first step), not from those given to ``init`` as in
    ``optax.contrib.dog``; the two agree whenever ``init`` receives the real starting params, and
    gradtx also works when ``init`` gets placeholder params. The authors stress iterate averaging;
    it is a separate transformation, not part of this update. State: one params-sized copy of
    :math:`x_0` plus two scalars (per leaf for LDoG).
  """
  validate.positive("reps_rel", reps_rel)
  validate.non_negative("eps", eps)

  def init_fn(params):
    dt = scalar_dtype(params)

    def scalars():  # a fresh buffer per field: state leaves must not alias (buffer donation)
      if layerwise:
        return jax.tree.map(lambda _: jnp.zeros([], dt), params)
      return jnp.zeros([], dt)

    return ScaleByDogState(
        count=jnp.zeros([], jnp.int32),
        x0=jax.tree.map(jnp.copy, params),  # a copy: the state must not alias (donated) params
        rbar=scalars(),
        sum_sq_norms=scalars(),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    params = errors.require(
        "scale_by_dog", "params", params,
        "the current parameters (DoG measures the distance travelled from the start)",
        "tx.update(grads, state, params)",
    )
    check_matching("scale_by_dog", updates, params, ("updates", "params"))
    first = state.count == 0
    rrel, e = resolve(reps_rel, state.count), resolve(eps, state.count)

    # x0 and its norm change only at the first step: under lax.cond, later steps neither rewrite
    # x0 nor reduce it (a jnp.where did both every step: two passes over params-sized memory).
    def start():
      x0 = jax.tree.map(lambda p, x: p.astype(x.dtype), params, state.x0)
      return x0, jax.tree.map(_leaf_sq_norm, x0) if layerwise else global_sq_norm(x0)

    def later():
      norms = jax.eval_shape(start)[1]
      return state.x0, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), norms)

    x0, x0_sq = jax.lax.cond(first, start, later)

    def step_size(rbar, big_g, dist_sq, x0_sq, g_sq):
      dt = rbar.dtype
      r_eps = rrel * (1.0 + jnp.sqrt(x0_sq.astype(dt)))
      rbar = jnp.where(first, r_eps, jnp.maximum(rbar, jnp.sqrt(dist_sq.astype(dt))))
      big_g = big_g + g_sq.astype(dt)
      return rbar, big_g, rbar / jnp.sqrt(big_g + e)

    def diff_sq(p, x):
      dt = compute_dtype(p.dtype)
      return jnp.sum(jnp.square(p.astype(dt) - x.astype(dt)))

    if layerwise:
      triples = jax.tree.map(
          lambda p, x, g, rb, gg, xx: step_size(rb, gg, diff_sq(p, x), xx, _leaf_sq_norm(g)),
          params, x0, updates, state.rbar, state.sum_sq_norms, x0_sq,
      )
      treedef = jax.tree.structure(updates)
      leaves = treedef.flatten_up_to(triples)
      rbar = treedef.unflatten([t[0] for t in leaves])
      big_g = treedef.unflatten([t[1] for t in leaves])
      etas = treedef.unflatten([t[2] for t in leaves])
      out = jax.tree.map(
          lambda g, eta: (eta * g.astype(compute_dtype(g.dtype))).astype(g.dtype), updates, etas
      )
    else:
      dist_sq = sum(diff_sq(p, x) for p, x in zip(jax.tree.leaves(params), jax.tree.leaves(x0)))
      rbar, big_g, eta = step_size(
          state.rbar, state.sum_sq_norms, jnp.asarray(dist_sq), x0_sq, global_sq_norm(updates)
      )
      out = jax.tree.map(lambda g: (eta * g.astype(compute_dtype(g.dtype))).astype(g.dtype), updates)
    new_state = ScaleByDogState(optax.safe_int32_increment(state.count), x0, rbar, big_g)
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
