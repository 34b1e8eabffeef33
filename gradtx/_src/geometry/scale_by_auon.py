"""AuON: momentum normalized by its Frobenius norm and a cosh-RMS brake, in linear time."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import init_moment
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.geometry.orthogonalize import as_matrix, orthogonalize_newton_schulz
from gradtx._src.geometry.scale_by_orthogonalized_momentum import SHAPE_SCALINGS, shape_scale

_FRO_EPS = 1e-7
_R_EPS = 1e-8


class ScaleByAuonState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # EMA momentum, in mu_dtype


def auon_direction(n: jax.Array, gamma: Any, *, normalize: bool = True, hybrid: bool = False) -> jax.Array:
  r"""AuON's map of one momentum leaf: :math:`G_n / (r + 10^{-8})` (or :math:`N / (r + 10^{-8})`).

  .. math::
    G_n = N / (\lVert N \rVert_F + 10^{-7}),\qquad
    r = \sqrt{\operatorname{mean}\big(\cosh(\gamma G_n)^2\big)}.

  With ``hybrid=True``, :math:`G_n` is one Newton-Schulz iteration of :math:`N` (which starts
  with the same Frobenius normalisation). Computed in float32 or wider.
  """
  dt = compute_dtype(n.dtype)
  n = n.astype(dt)
  if hybrid:
    gn = orthogonalize_newton_schulz(as_matrix(n), 1, eps=_FRO_EPS).reshape(n.shape)
  else:
    gn = n / (jnp.sqrt(jnp.sum(jnp.square(n))) + _FRO_EPS)
  r = jnp.sqrt(jnp.mean(jnp.square(jnp.cosh(gamma * gn))))
  inv = 1.0 / (r + _R_EPS)
  return (gn if normalize else n) * inv


def scale_by_auon(
    b1: Any = 0.95,
    gamma: Any = 1.5,
    *,
    nesterov: bool = True,
    normalize: bool = True,
    hybrid: bool = False,
    shape_scaling: str = "none",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AuON's direction: Nesterov EMA momentum, Frobenius-normalized and braked by a cosh-RMS.

  .. math::
    M_t = \beta M_{t-1} + (1-\beta) G_t,\quad N_t = (1-\beta) G_t + \beta M_t,\\
    G_n = N_t / (\lVert N_t \rVert_F + 10^{-7}),\quad
    r = \sqrt{\operatorname{mean}(\cosh(\gamma G_n)^2)},\quad
    u_t = s(\text{shape})\, G_n / (r + 10^{-8}).

  Args:
    b1: momentum :math:`\beta`, in [0, 1).
    gamma: the cosh sharpness :math:`\gamma`, >= 0 (code default 1.5).
    nesterov: use the look-ahead :math:`N_t` (else :math:`M_t`).
    normalize: return :math:`G_n / (r + 10^{-8})` (gradtx's reading, unit Frobenius norm at most);
      False returns :math:`N_t / (r + 10^{-8})`, the released code's behaviour.
    hybrid: Hybrid-AuON: one Newton-Schulz iteration in place of the Frobenius normalisation.
    shape_scaling: factor per leaf, as in Muon (:func:`shape_scale`); default ``"none"``.
    mu_dtype: dtype of the momentum.

  Returns:
    A gradient transformation, per leaf; O(mn) per ``m x n`` leaf (no matrix products unless
    ``hybrid``). Any leaf shape is accepted; Muon's leaf selection applies in :func:`auon`.

  Example:
    >>> tx = optax.chain(gradtx.geometry.scale_by_auon(), gradtx.scale_by_learning_rate(0.05))

  References:
    Maity, "AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
    arXiv:2509.24320; code github.com/ryyzn9/AuON.

  Notes:
    The paper's formula admits two readings. gradtx takes the normalised one that matches the
    abstract ("unit-norm" update inside a spectral-norm trust region): then
    :math:`1 \le r \le \cosh\gamma`, :math:`\lVert u \rVert_2 \le \lVert u \rVert_F \le 1`, and u is
    a positive multiple of the momentum (AuON never rotates it) and invariant to rescaling G.
    The released optimizer divides the *unnormalised* momentum by r (``normalize=False``), which
    for large matrices is close to SGD with momentum. Where Hybrid-AuON places its single
    Newton-Schulz step is not confirmed; gradtx applies it before the cosh brake.
  """
  validate.beta("b1", b1)
  validate.non_negative("gamma", gamma)
  validate.one_of("shape_scaling", shape_scaling, SHAPE_SCALINGS)

  def init_fn(params):
    if hybrid:
      for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        if jnp.ndim(p) < 2:
          raise ValueError(
              f"scale_by_auon: hybrid=True needs matrix leaves, leaf '{jax.tree_util.keystr(path)}' "
              f"has shape {jnp.shape(p)}."
          )
    return ScaleByAuonState(count=jnp.zeros([], jnp.int32), mu=init_moment(params, mu_dtype))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_auon", updates, state.mu, ("updates", "state"))
    beta = resolve(b1, state.count)
    gam = resolve(gamma, state.count)

    def moment(g, m):
      dt = compute_dtype(m.dtype)
      return (beta * m.astype(dt) + (1.0 - beta) * g.astype(dt)).astype(m.dtype)

    mu = jax.tree.map(moment, updates, state.mu)

    def direction(g, m):
      dt = compute_dtype(g.dtype)
      n = m.astype(dt)
      if nesterov:
        n = (1.0 - beta) * g.astype(dt) + beta * n
      s = shape_scale(g.shape, shape_scaling) if g.ndim >= 2 else 1.0
      return (s * auon_direction(n, gam, normalize=normalize, hybrid=hybrid)).astype(g.dtype)

    out = jax.tree.map(direction, updates, mu)
    return out, ScaleByAuonState(count=optax.safe_int32_increment(state.count), mu=mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
