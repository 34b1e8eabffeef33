"""Subset-Norm: one second-moment scalar per subset of coordinates, with EMA or subspace momentum."""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero, power, resolve
from gradtx._src.core.tree import compute_dtype
from gradtx._src.moments import subspace_momentum as sm

MOMENTA = ("ema", "subspace", "none")


class ScaleBySubsetNormState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum (low-rank for subspace leaves); scalar placeholders when momentum="none"
  proj: optax.Updates  # subspace bases (scalar placeholders where unused)
  nu: optax.Updates  # one second-moment entry per subset: (a, 1), (1, b), (n/k, 1) or like the leaf


def _divisor_at_most(n: int, k: int) -> int:
  k = max(1, min(int(k), n))
  while n % k:
    k -= 1
  return k


def subset_layout(shape: tuple[int, ...], subset_size: Any) -> tuple[str, Any]:
  """How a leaf of ``shape`` is split into subsets.

  Returns ``("coord", None)`` (every coordinate its own subset), ``("rows", axis)`` (reduce over
  ``axis`` of a 2-D leaf, keeping dims) or ``("groups", k)`` (reshape to ``(numel // k, k)``).
  """
  numel = math.prod(shape)
  if subset_size is None or len(shape) < 2 or numel == 0:
    return "coord", None
  if subset_size == "heuristic":
    if len(shape) != 2:
      return "coord", None
    return "rows", 1 if shape[0] >= shape[1] else 0
  k = subset_size if subset_size > 0 else int(math.sqrt(numel) / abs(subset_size))
  return "groups", _divisor_at_most(numel, k)


def _nu_shape(shape: tuple[int, ...], layout: tuple[str, Any]) -> tuple[int, ...]:
  kind, arg = layout
  if kind == "coord":
    return shape
  if kind == "rows":
    return (shape[0], 1) if arg == 1 else (1, shape[1])
  return (math.prod(shape) // arg, 1)


def _subset_sums(g: jax.Array, layout: tuple[str, Any]) -> jax.Array:
  kind, arg = layout
  sq = jnp.square(g)
  if kind == "coord":
    return sq
  if kind == "rows":
    return jnp.sum(sq, axis=arg, keepdims=True)
  return jnp.sum(sq.reshape(-1, arg), axis=1, keepdims=True)


def _scaled_divide(scale: jax.Array, num: jax.Array, den: jax.Array, layout: tuple[str, Any]) -> jax.Array:
  """``scale * num / den``; with one ``den`` per subset, as ``num * (scale / den)`` (no per-element divide)."""
  if layout[0] == "coord":
    return scale * (num / den)
  factor = scale / den
  if layout[0] == "groups":
    return (num.reshape(-1, layout[1]) * factor).reshape(num.shape)
  return num * factor


def scale_by_subset_norm(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-6,
    *,
    subset_size: Any = "heuristic",
    momentum: str = "ema",
    rank: int | None = None,
    update_proj_gap: int = 200,
    correct_bias: bool = True,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by a Subset-Norm step size: one second-moment scalar per subset of coordinates.

  For each subset :math:`S` of a leaf's coordinates,

  .. math::
    s_S \leftarrow \beta_2 s_S + (1-\beta_2) \textstyle\sum_{i \in S} g_i^2
    \quad (\beta_2 = 1:\ s_S \leftarrow s_S + \sum_{i\in S} g_i^2),\\
    u = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\, \frac{n_t}{\sqrt{s_S} + \epsilon},

  where the numerator :math:`n_t` is EMA momentum (``"ema"``), Subspace-Momentum
  (``"subspace"``: see :func:`subspace_momentum`) or the raw gradient (``"none"``).

  Subsets (``subset_size``): ``"heuristic"`` makes each row of an (a, b) matrix a subset when
  a >= b and each column otherwise (state (a, 1) or (1, b)); an integer k > 0 reshapes each leaf
  with two or more dims to (numel/k', k') with k' the largest divisor of numel not above k; a
  negative integer -d uses k = sqrt(numel)/d; None gives every coordinate its own subset (Adam in
  the eps-hat form). Leaves with fewer than two dims are always coordinate-wise, as in the
  reference code (which puts only linear layers in the subset-norm group).

  Args:
    b1: momentum decay, in [0, 1).
    b2: second-moment decay, in [0, 1]; 1 accumulates like AdaGrad (no bias correction then).
    eps: added outside the square root, >= 0 (not rescaled by the bias correction).
    subset_size: ``"heuristic"``, a non-zero integer, or None (see above).
    momentum: ``"ema"``, ``"subspace"`` or ``"none"``.
    rank: subspace rank for ``momentum="subspace"`` (an integer >= 1, needed then).
    update_proj_gap: steps between subspace refreshes, an integer >= 1.
    correct_bias: apply the step-size bias correction :math:`\sqrt{1-\beta_2^t}/(1-\beta_1^t)`.
    mu_dtype: dtype of the momentum; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_subset_norm(momentum="subspace", rank=8),
    ...                  gradtx.scale_by_learning_rate(1e-3))

  References:
    Nguyen & Nguyen, "Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast,
    Memory-Reduced Training with Convergence Guarantees", arXiv:2411.07120 (code: timmytonga/sn-sm).

  Notes:
    Follows the reference ``GenericOptim``: bias correction folded into the step size (the eps-hat
    form), and it also multiplies the orthogonal SGD part of Subspace-Momentum (kept). Departures:
    with ``b2 = 1`` the :math:`\sqrt{1-\beta_2^t}` factor is 1 (the code's factor is 0, i.e. no
    step, unless bias correction is off); ``momentum="none"`` drops :math:`1/(1-\beta_1^t)` (the
    code keeps it); ``b2 = 0`` is an ordinary EMA with decay 0 (the code switches the adaptive
    step off); the subspace momentum resets on the refresh step itself (see
    :func:`subspace_momentum`). State per (a, b) matrix with the heuristic: max(a, b) second-moment
    entries plus ab (EMA), r max(a, b) + r min(a, b) (subspace) or 0 (none) momentum entries,
    against Adam's 2ab.
  """
  validate.beta("b1", b1)
  validate.in_range("b2", b2, 0.0, 1.0)
  validate.non_negative("eps", eps)
  validate.one_of("momentum", momentum, MOMENTA)
  if subset_size is not None and subset_size != "heuristic":
    if isinstance(subset_size, bool) or not isinstance(subset_size, int) or subset_size == 0:
      raise ValueError(
          f"scale_by_subset_norm: subset_size must be 'heuristic', a non-zero integer or None, "
          f"got {subset_size!r}."
      )
  if momentum == "subspace":
    if rank is None:
      raise ValueError("scale_by_subset_norm: momentum='subspace' needs rank=, an integer >= 1, got None.")
    validate.positive_int("rank", rank)
  validate.positive_int("update_proj_gap", update_proj_gap)
  use_momentum = momentum != "none" and not is_static_zero(b1)
  sm_rank = rank if momentum == "subspace" else None

  def init_fn(params):
    def leaf(p):
      shape = jnp.shape(p)
      pdt = jnp.asarray(p).dtype
      if use_momentum:
        m, basis = sm.init_leaf(p, sm_rank, mu_dtype)
      else:
        m, basis = jnp.zeros((), pdt), jnp.zeros((), pdt)
      nu = jnp.zeros(_nu_shape(shape, subset_layout(shape, subset_size)), pdt)
      return m, basis, nu

    treedef = jax.tree.structure(params)
    leaves = treedef.flatten_up_to(jax.tree.map(leaf, params))
    return ScaleBySubsetNormState(
        count=jnp.zeros([], jnp.int32),
        mu=treedef.unflatten([x[0] for x in leaves]),
        proj=treedef.unflatten([x[1] for x in leaves]),
        nu=treedef.unflatten([x[2] for x in leaves]),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    sm.check_structure("scale_by_subset_norm", updates, state.nu, params)
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    e = resolve(eps, state.count)
    t = state.count + 1
    refresh = sm.refresh_now(state.count, update_proj_gap)
    scale = jnp.asarray(1.0, jnp.float32)
    if correct_bias:
      beta2_arr = jnp.asarray(beta2)
      scale = jnp.where(beta2_arr < 1.0, jnp.sqrt(jnp.abs(1.0 - power(beta2_arr, t))), 1.0)
      if use_momentum:
        scale = scale / (1.0 - power(beta1, t))

    def leaf(g, m, basis, nu):
      dt = compute_dtype(g.dtype)
      layout = subset_layout(g.shape, subset_size)
      gg = g.astype(dt)
      if use_momentum:
        num, m, basis = sm.leaf_numerator(g, m, basis, beta1, refresh, sm_rank)
      else:
        num = gg
      sums = _subset_sums(gg, layout)
      old = nu.astype(dt)
      new = jnp.where(beta2 < 1.0, beta2 * old + (1.0 - beta2) * sums, old + sums)
      den = jnp.sqrt(new) + e
      out = _scaled_divide(scale.astype(dt), num.astype(dt), den, layout).astype(g.dtype)
      return out, m, basis, new.astype(nu.dtype)

    treedef = jax.tree.structure(updates)
    leaves = treedef.flatten_up_to(jax.tree.map(leaf, updates, state.mu, state.proj, state.nu))
    out, mu, proj, nu = (treedef.unflatten([x[i] for x in leaves]) for i in range(4))
    return out, ScaleBySubsetNormState(optax.safe_int32_increment(state.count), mu, proj, nu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
