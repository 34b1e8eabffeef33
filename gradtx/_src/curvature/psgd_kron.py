"""PSGD-Kron: a Kronecker-factored preconditioner (whitening or HVP fit) on the Lie group of triangular matrices."""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.scipy.linalg import solve_triangular

from gradtx._src.core import errors, keys, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.curvature.hvp import hvp
from gradtx._src.curvature.shampoo_blocks import as_matrix_shape

PRECONDITIONER_UPDATES = ("whitening", "hvp")
OBJ_FN_MEANING = (
    "the loss on the current batch as a function of params, for the Hessian-vector products of "
    "preconditioner_update='hvp' (or hvp_pair=(v, hv), a precomputed probe and its product)"
)
OBJ_FN_EXAMPLE = "tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))"


class ScaleByPsgdKronState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key: update coin and probe noise
  mu: optax.Updates  # momentum, like params (compute dtype)
  factors: tuple  # per leaf (flattened order): (Q_1, Q_2) for matrices, (q,) for vectors/scalars


def update_probability_schedule(
    max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 1e-3, flat_start: int = 500
) -> Callable[[jax.Array], jax.Array]:
  r"""The kron ports' schedule: :math:`p_n = \operatorname{clip}(p_{max} e^{-d (n - n_0)}, p_{min}, p_{max})`.

  Args:
    max_prob: probability during the flat start, in (0, 1].
    min_prob: floor, in (0, 1].
    decay: :math:`d`, >= 0.
    flat_start: :math:`n_0`, steps at ``max_prob``.

  Returns:
    A schedule of the 0-based step count.

  Example:
    >>> tx = scale_by_psgd_kron(preconditioner_update_probability=update_probability_schedule(min_prob=0.1))

  References:
    Pooladzandi & Li, "Curvature-Informed SGD via General Purpose Lie-Group Preconditioners",
    arXiv:2402.04553 (kron ports by E. Walker).
  """
  validate.in_range("max_prob", max_prob, 0.0, 1.0, left_open=True)
  validate.in_range("min_prob", min_prob, 0.0, 1.0, left_open=True)
  validate.non_negative("decay", decay)

  def schedule(n):
    p = max_prob * jnp.exp(-decay * (jnp.asarray(n, jnp.float32) - flat_start))
    return jnp.clip(p, min_prob, max_prob)

  return schedule


def norm_lower_bound(a: jax.Array) -> jax.Array:
  """A cheap lower bound of the spectral norm of a square matrix (one power step from the largest column or row)."""
  max_abs = jnp.max(jnp.abs(a))
  safe = jnp.where(max_abs > 0, max_abs, 1.0)
  a = a / safe
  aa = a * a
  col, row = jnp.sum(aa, axis=0), jnp.sum(aa, axis=1)
  i, j = jnp.argmax(col), jnp.argmax(row)

  def unit(x):
    n = jnp.linalg.norm(x)
    return x / jnp.where(n > 0, n, 1.0)

  v0 = jnp.linalg.norm(unit(a[:, i] @ a) @ a.T)
  v1 = jnp.linalg.norm(a.T @ unit(a @ a[j]))
  return jnp.where(max_abs > 0, jnp.where(col[i] > row[j], v0, v1) * max_abs, 0.0)


def _left(q, x, transpose=False):
  if q.ndim == 1:
    return q[:, None] * x
  return (q.T if transpose else q) @ x


def precondition(factors: tuple, g: jax.Array) -> jax.Array:
  r""":math:`P g` with :math:`P = Q^\top Q`, i.e. :math:`Q_1^\top Q_1 G Q_2^\top Q_2` (or :math:`q^2 g`)."""
  if len(factors) == 1:
    return jnp.square(factors[0]) * g
  q1, q2 = factors
  x = _left(q1, _left(q1, g), transpose=True)
  return _left(q2, _left(q2, x.T), transpose=True).T


def refit(factors: tuple, h: jax.Array, v: jax.Array, lr: Any, tiny: float) -> tuple:
  r"""One Lie-group gradient step of every factor on :math:`h^\top P h + v^\top P^{-1} v`.

  .. math::
    A = Q_1 H Q_2^\top,\ B = Q_1^{-\top} V Q_2^{-1},\quad
    Q_i \leftarrow Q_i - \frac{\eta_P}{\lVert A_i A_i^\top + B_i B_i^\top \rVert}
    \operatorname{triu}(A_i A_i^\top - B_i B_i^\top) Q_i

  (diagonal factors: the diagonal of the same terms, normalised by their largest entry).
  """
  if len(factors) == 1:
    q = factors[0]
    a, b = jnp.square(q * h), jnp.square(v / q)
    return (q - lr / (jnp.max(jnp.abs(a + b)) + tiny) * (a - b) * q,)
  q1, q2 = factors
  a = _left(q1, h)
  a = _left(q2, a.T).T
  if q1.ndim == 1:
    b = v / q1[:, None]
  else:
    b = solve_triangular(q1, v, trans="T", lower=False)
  if q2.ndim == 1:
    b = b / q2[None, :]
  else:
    b = solve_triangular(q2, b.T, trans="T", lower=False).T
  out = []
  for axis, q in enumerate((q1, q2)):
    aa, bb = (a, b) if axis == 0 else (a.T, b.T)
    if q.ndim == 1:
      t1, t2 = jnp.sum(aa * aa, axis=1), jnp.sum(bb * bb, axis=1)
      out.append(q - lr / (jnp.max(jnp.abs(t1 + t2)) + tiny) * (t1 - t2) * q)
    else:
      t1, t2 = aa @ aa.T, bb @ bb.T
      out.append(q - lr / (norm_lower_bound(t1 + t2) + tiny) * jnp.triu(t1 - t2) @ q)
  return tuple(out)


def _init_factors(shape, dtype, max_size_triangular, init_scale):
  mat = as_matrix_shape(shape)
  if mat is None:
    return (jnp.full((max(1, math.prod(shape)),), init_scale, dtype),)
  s = init_scale ** 0.5
  return tuple(
      jnp.eye(d, dtype=dtype) * s if 1 < d <= max_size_triangular else jnp.full((d,), s, dtype) for d in mat
  )


def _check_hvp_inputs(updates: Any, params: Any, obj_fn: Any, hvp_pair: Any) -> None:
  """Raise a TypeError/ValueError a user can act on for missing or malformed HVP-mode inputs."""
  name = "scale_by_psgd_kron"
  if hvp_pair is not None:
    if not (isinstance(hvp_pair, (tuple, list)) and len(hvp_pair) == 2):
      raise TypeError(f"{name}.update: hvp_pair must be a pair (v, hv) of trees like params, got {type(hvp_pair)}.")
    check_matching(name, hvp_pair[0], updates, ("hvp_pair v", "updates"))
    check_matching(name, hvp_pair[1], updates, ("hvp_pair hv", "updates"))
    return
  errors.require(name, "obj_fn", obj_fn, OBJ_FN_MEANING, OBJ_FN_EXAMPLE)
  errors.require(name, "params", params, "the current parameters (the point of the Hessian-vector products)",
                 "tx.update(grads, state, params, obj_fn=...)")
  check_matching(name, updates, params, ("updates", "params"))


def scale_by_psgd_kron(
    b1: Any = 0.9,
    *,
    preconditioner_update: str = "whitening",
    preconditioner_update_probability: Any = None,
    max_size_triangular: int = 8192,
    precond_lr: Any = 0.1,
    precond_init_scale: float = 1.0,
    clip_rms: float | None = 1.1,
    key: Any = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""Precondition the debiased momentum by PSGD's Kronecker-factored preconditioner.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad \hat m_t = m_t / (1-\beta_1^t),\\
    \text{with probability } p_t:\ Q \leftarrow \text{refit}(Q, h, v),\quad v \sim \mathcal N(0, I),\\
    h = \hat m_t \text{ (whitening) or } h = H_t v \text{ (hvp)},\\
    u_0 = Q^\top Q\, \hat m_t,\quad u_t = u_0 \min(1, c / \operatorname{RMS}(u_0)).

  The fit minimises :math:`\mathbb E[h^\top P h + v^\top P^{-1} v]` over :math:`P = Q^\top Q`,
  :math:`Q = Q_1 \otimes Q_2`, with optimum :math:`P = (\mathbb E[h h^\top])^{-1/2}` (see
  :func:`refit`): the whitening preconditioner for :math:`h = \hat m_t`, and
  :math:`P = (H^2)^{-1/2} = |H|^{-1}` (Newton-like, for the Hessian :math:`H` of the loss at
  the current params) for the pairs :math:`(v, Hv)` of ``preconditioner_update="hvp"``.
  In that mode ``update`` takes ``obj_fn=`` (the loss as a function of params; :math:`Hv` by
  forward-over-reverse, only on the steps that refit) or ``hvp_pair=(v, hv)`` (trees like
  params, computed by the caller; used as given). Each matrix side up to ``max_size_triangular``
  (and > 1) gets an upper-triangular factor, others a diagonal one; 1-D and scalar leaves a
  diagonal one.

  Args:
    b1: momentum decay, in [0, 1).
    preconditioner_update: "whitening" (fit on the pairs :math:`(v, \hat m_t)`, the kron
      ports) or "hvp" (fit on Hessian-vector pairs :math:`(v, Hv)`, PSGD's original mode; needs
      ``obj_fn=`` or ``hvp_pair=`` in ``update``).
    preconditioner_update_probability: :math:`p_t`, a float in (0, 1] or a schedule of the
      0-based count; None uses :func:`update_probability_schedule` with its defaults.
    max_size_triangular: largest side with a triangular factor (a Python int).
    precond_lr: :math:`\eta_P`, step size of the fit, > 0.
    precond_init_scale: initial :math:`P = s I` (each of :math:`K` factors :math:`s^{1/(2K)} I`).
    clip_rms: :math:`c`, the per-leaf RMS cap of the update; None disables it.
    key: int seed or PRNG key for the update coin and the probe noise.

  Returns:
    A gradient transformation; apply decay and ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_psgd_kron(key=0), gradtx.scale_by_learning_rate(3e-4))
    >>> tx = optax.chain(gradtx.scale_by_psgd_kron(preconditioner_update="hvp"), gradtx.scale_by_learning_rate(0.1))
    >>> updates, state = tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Li, "Preconditioned Stochastic Gradient Descent", arXiv:1512.04202; Li, "Preconditioner on
    Matrix Lie Group for SGD", arXiv:1809.10232; Pooladzandi & Li, "Curvature-Informed SGD via
    General Purpose Lie-Group Preconditioners", arXiv:2402.04553.

  Notes:
    The whitening mode is the kron ports'; the HVP mode is the pair of Li's original PSGD
    (exact :math:`Hv`, as psgd_torch's ``exact_hessian_vector_product=True``), but the rest of
    the step (momentum, RMS cap, update schedule, init) is the kron ports' pipeline, not
    psgd_torch's Newton class (which clips by gradient norm); no damping is added to :math:`Hv`,
    so a leaf with zero curvature grows its :math:`P` by about :math:`1+\eta_P` per refit (the
    RMS cap bounds the update). In HVP mode the probe of leaf ``i`` is drawn in the leaf's matrix
    shape (as in whitening mode), cast to the param dtype for the product, and that cast probe
    is the :math:`v` of the pair. Higher-order leaves are reshaped to matrices instead of one
    factor per axis.
    Each call splits the state key into a coin key and a noise key; leaf ``i``'s probe is
    ``normal(fold_in(noise_key, i))``, and the coin is drawn on every call so the random stream
    does not depend on the schedule. The RMS cap has no ``1e-6`` in its denominator (a zero
    update stays zero). ``precond_init_scale`` is a constant (later kron versions set it from
    the first gradient).
  """
  validate.beta("b1", b1)
  validate.one_of("preconditioner_update", preconditioner_update, PRECONDITIONER_UPDATES)
  validate.positive_int("max_size_triangular", max_size_triangular)
  validate.positive("precond_lr", precond_lr)
  validate.positive("precond_init_scale", precond_init_scale)
  if clip_rms is not None:
    validate.positive("clip_rms", clip_rms)
  prob = update_probability_schedule() if preconditioner_update_probability is None else (
      preconditioner_update_probability
  )
  validate.in_range("preconditioner_update_probability", prob, 0.0, 1.0, left_open=True)
  key0 = keys.as_key(key)

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    factors = tuple(
        _init_factors(p.shape, compute_dtype(p.dtype), max_size_triangular, precond_init_scale) for p in leaves
    )
    mu = jax.tree.map(lambda p: jnp.zeros(p.shape, compute_dtype(p.dtype)), params)
    return ScaleByPsgdKronState(count=jnp.zeros([], jnp.int32), key=keys.fresh(key0), mu=mu, factors=factors)

  hvp_mode = preconditioner_update == "hvp"

  def update_fn(updates, state, params=None, *, obj_fn=None, hvp_pair=None, **extra_args):
    del extra_args
    check_matching("scale_by_psgd_kron", updates, state.mu, ("updates", "state"))
    if hvp_mode:
      _check_hvp_inputs(updates, params, obj_fn, hvp_pair)
    leaves, treedef = jax.tree.flatten(updates)
    count = state.count
    beta1 = resolve(b1, count)
    new_key, use = keys.split(state.key)
    coin_key, noise_key = jax.random.split(use)
    mus, hs, mats = [], [], []
    c1 = 1.0 / (1.0 - power(beta1, count + 1))
    for g, m in zip(leaves, treedef.flatten_up_to(state.mu)):
      dt = m.dtype
      m = jnp.asarray(beta1, dt) * m + jnp.asarray(1 - beta1, dt) * g.astype(dt)
      mus.append(m)
      h = m * jnp.asarray(c1, dt)
      mat = as_matrix_shape(g.shape)
      mats.append(mat)
      hs.append(h.reshape(mat if mat is not None else (max(1, h.size),)))
    p = resolve(prob, count)
    do = jax.random.uniform(coin_key) < p
    lr_p = resolve(precond_lr, count)

    def probes():
      return [jax.random.normal(jax.random.fold_in(noise_key, i), h.shape, h.dtype) for i, h in enumerate(hs)]

    def pairs():
      """(h, v) per leaf, in the leaf's matrix (or flat vector) shape and compute dtype."""
      if not hvp_mode:
        return list(zip(hs, probes()))
      if hvp_pair is not None:
        vs, hvs = (treedef.flatten_up_to(t) for t in hvp_pair)
      else:
        ps = treedef.flatten_up_to(params)
        vs = [v.reshape(x.shape).astype(x.dtype) for v, x in zip(probes(), ps)]
        hvs = treedef.flatten_up_to(hvp(obj_fn, params, treedef.unflatten(vs)))
      return [
          (hv.astype(h.dtype).reshape(h.shape), v.astype(h.dtype).reshape(h.shape))
          for h, v, hv in zip(hs, vs, hvs)
      ]

    def fit(factors):
      out = []
      for (h, v), f in zip(pairs(), factors):
        out.append(refit(f, h, v, jnp.asarray(lr_p, h.dtype), float(jnp.finfo(h.dtype).tiny)))
      return tuple(out)

    factors = jax.lax.cond(do, fit, lambda f: f, state.factors)
    outs = []
    for g, h, f in zip(leaves, hs, factors):
      u = precondition(f, h)
      if clip_rms is not None:
        rms = jnp.sqrt(jnp.mean(jnp.square(u)))
        u = u * jnp.minimum(1.0, clip_rms / rms).astype(u.dtype)
      outs.append(u.reshape(g.shape).astype(g.dtype))
    new_state = ScaleByPsgdKronState(
        count=optax.safe_int32_increment(count), key=new_key, mu=treedef.unflatten(mus), factors=factors
    )
    return treedef.unflatten(outs), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
