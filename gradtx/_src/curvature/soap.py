"""SOAP: Adam run in the eigenbasis of Shampoo's statistics, refreshed by one power-iteration/QR step."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, linalg, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.curvature import root_sharding as root_sharding_lib
from gradtx._src.curvature.shampoo_blocks import as_matrix_shape


class ScaleBySoapState(NamedTuple):
  # int32 step counter (calls, including the first one, which only sets the basis)
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
  mu: optax.Updates  # first moment in the rotated basis, like params (compute dtype)
  nu: optax.Updates  # second moment in the rotated basis, like params (compute dtype)
  factors: tuple  # per leaf (flattened order): ((L, Q_L) or (), (R, Q_R) or ())


class SoapDecayState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter


def _sides(shape, max_precond_dim):
  """Which sides of the leaf's matrix are rotated: (left?, right?, (m, n))."""
  mat = as_matrix_shape(shape)
  if mat is None:
    return False, False, None
  return mat[0] <= max_precond_dim, mat[1] <= max_precond_dim, mat


def canonical_signs(q: jax.Array, ref: jax.Array) -> jax.Array:
  """Flip columns of ``q`` so that ``ref`` (one value per column) is positive."""
  return q * jnp.where(ref < 0, -1.0, 1.0).astype(q.dtype)[None, :]


def eigh_basis(s: jax.Array) -> jax.Array:
  """Eigenvectors of symmetric ``s``, by descending eigenvalue, largest-|entry| of each column > 0."""
  _, q = jnp.linalg.eigh(0.5 * (s + s.T))
  q = q[:, ::-1]
  idx = jnp.argmax(jnp.abs(q), axis=0)
  return canonical_signs(q, q[idx, jnp.arange(q.shape[1])])


def qr_refresh(s: jax.Array, q: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One power-iteration step ``qr(S Q)`` with columns pre-sorted by ``diag(Q^T S Q)``, descending.

  Returns the new basis (R's diagonal made positive) and the permutation applied to the columns.
  """
  est = jnp.sum(q * (s @ q), axis=0)
  order = jnp.argsort(-est, stable=True)
  q = q[:, order]
  new_q, r = jnp.linalg.qr(s @ q)
  return canonical_signs(new_q, jnp.diagonal(r)), order


def scale_by_soap(
    b1: Any = 0.95,
    b2: Any = 0.95,
    eps: Any = 1e-8,
    *,
    shampoo_beta: Any = -1.0,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    root_sharding: root_sharding_lib.RootSharding = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Adam in the eigenbasis of Shampoo's factors (SOAP), the step size carrying the bias correction.

  For a matrix leaf :math:`G` (higher-order leaves reshaped to ``(prod(shape[:-1]), shape[-1])``):

  .. math::
    \text{first call: } L = (1-s) G G^\top,\ R = (1-s) G^\top G,\ Q_L, Q_R = \text{eigh},\ u = 0;\\
    G' = Q_L^\top G Q_R,\ m_t = \beta_1 m_{t-1} + (1-\beta_1) G',\ v_t = \beta_2 v_{t-1} + (1-\beta_2) G'^2,\\
    u_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} Q_L \frac{m_t}{\sqrt{v_t} + \epsilon} Q_R^\top,\quad
    L \leftarrow s L + (1-s) G G^\top,\ R \text{ likewise},

  with :math:`t` counted from the second call, and every ``precondition_frequency`` values of
  :math:`t` the basis becomes :math:`Q \leftarrow \operatorname{qr}(L Q)` after sorting the
  columns by :math:`\operatorname{diag}(Q^\top L Q)` (and permuting :math:`v` alike). Sides
  longer than ``max_precond_dim`` and 1-D leaves are not rotated (Adam there).

  Args:
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps: added outside the square root, >= 0.
    shampoo_beta: :math:`s`, decay of the statistics, in [0, 1); a negative value means ``b2``.
    precondition_frequency: basis refresh period (a Python int).
    max_precond_dim: sides longer than this keep the identity basis.
    root_sharding: None (default) computes every eigh / QR on every device. A
      ``NamedSharding(mesh, P(axes))`` (or mesh axis name(s) of the mesh set with
      ``jax.set_mesh``) spreads them over those mesh axes: statistics of equal size from all
      leaves are stacked, padded with identities to a multiple of the axes' size, each device
      decomposes its share, and the bases are gathered back (replicated). Use the mesh the
      params live on.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_soap(), gradtx.scale_by_learning_rate(3e-3))

  References:
    Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321.

  Notes:
    Follows the first release of the official code (nikhilvyas/SOAP): :math:`m` lives in the
    rotated basis and is not re-rotated on refresh; the bias correction rides on the step size,
    so ``eps`` is not rescaled. Eigenvector and QR signs are fixed (largest entry positive,
    :math:`\operatorname{diag}(R) > 0`): the official code inherits LAPACK's arbitrary signs,
    which changes results because :math:`m` is kept across refreshes. Higher-order leaves are
    reshaped to matrices (the official code keeps one factor per axis unless ``merge_dims``).
    The 1e-30 ridge the official code adds before ``eigh`` is left out. With ``root_sharding``
    each matrix is decomposed by the same unbatched eigh / QR, so the bases equal the unsharded
    ones up to the rounding of the sharded statistics; None keeps the computation unchanged.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)
  validate.in_range("shampoo_beta", shampoo_beta, -float("inf"), 1.0, right_open=True)
  validate.positive_int("precondition_frequency", precondition_frequency)
  validate.positive_int("max_precond_dim", max_precond_dim)
  root_sharding_lib.check("scale_by_soap", root_sharding)

  def init_fn(params):
    factors = []
    for p in jax.tree.leaves(params):
      dt = compute_dtype(p.dtype)
      left, right, mat = _sides(p.shape, max_precond_dim)
      fl = (jnp.zeros((mat[0], mat[0]), dt), jnp.eye(mat[0], dtype=dt)) if left else ()
      fr = (jnp.zeros((mat[1], mat[1]), dt), jnp.eye(mat[1], dtype=dt)) if right else ()
      factors.append((fl, fr))
    zeros = lambda: jax.tree.map(lambda p: jnp.zeros(p.shape, compute_dtype(p.dtype)), params)
    return ScaleBySoapState(count=jnp.zeros([], jnp.int32), mu=zeros(), nu=zeros(), factors=tuple(factors))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_soap", updates, state.mu, ("updates", "state"))
    leaves, treedef = jax.tree.flatten(updates)
    count = state.count
    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    sb = resolve(shampoo_beta, count)
    sb = jnp.where(jnp.asarray(sb) < 0, beta2, sb)
    e = resolve(eps, count)
    gs = [g.astype(compute_dtype(g.dtype)) for g in leaves]
    mats = [g.reshape(_sides(g.shape, max_precond_dim)[2] or g.shape) for g in gs]

    def stats(factors):
      out = []
      for g, (fl, fr) in zip(mats, factors):
        s1, s0 = jnp.asarray(sb, g.dtype), jnp.asarray(1 - sb, g.dtype)
        nl = (s1 * fl[0] + s0 * (g @ g.T), fl[1]) if fl else ()
        nr = (s1 * fr[0] + s0 * (g.T @ g), fr[1]) if fr else ()
        out.append((nl, nr))
      return tuple(out)

    def first(_):
      st = stats(state.factors)
      sides = [f[0] for fl, fr in st for f in (fl, fr) if f]
      if root_sharding is None:
        bases = iter([eigh_basis(s) for s in sides])
      else:
        outs = root_sharding_lib.grouped_map(
            lambda s: linalg.map_matrices(eigh_basis, s), [(s[None],) for s in sides], root_sharding
        )
        bases = iter([o[0] for o in outs])
      factors = tuple(
          ((fl[0], next(bases)) if fl else (), (fr[0], next(bases)) if fr else ()) for fl, fr in st
      )
      zeros = treedef.unflatten([jnp.zeros_like(g) for g in gs])
      return zeros, state.mu, state.nu, factors

    def later(_):
      t = count  # the first call does not count for the bias correction
      c = jnp.sqrt(1.0 - power(beta2, t)) / (1.0 - power(beta1, t))
      mus, nus, outs = [], [], []
      for g, m, v, (fl, fr) in zip(mats, treedef.flatten_up_to(state.mu),
                                   treedef.flatten_up_to(state.nu), state.factors):
        gr = g
        if fl:
          gr = fl[1].T @ gr
        if fr:
          gr = gr @ fr[1]
        dt = g.dtype
        m = jnp.asarray(beta1, dt) * m.reshape(gr.shape) + jnp.asarray(1 - beta1, dt) * gr
        v = jnp.asarray(beta2, dt) * v.reshape(gr.shape) + jnp.asarray(1 - beta2, dt) * jnp.square(gr)
        n = m / (jnp.sqrt(v) + jnp.asarray(e, dt))
        if fl:
          n = fl[1] @ n
        if fr:
          n = n @ fr[1].T
        mus.append(m)
        nus.append(v)
        outs.append(jnp.asarray(c, dt) * n)
      factors = stats(state.factors)

      def refresh(args):
        factors, nus = args
        sides = [f for fl, fr in factors for f in (fl, fr) if f]
        if root_sharding is None:
          new = iter([qr_refresh(f[0], f[1]) for f in sides])
        else:
          outs = root_sharding_lib.grouped_map(
              lambda s, q: linalg.map_matrices(qr_refresh, s, q),
              [(f[0][None], f[1][None]) for f in sides], root_sharding,
          )
          new = iter([(q[0], order[0]) for q, order in outs])
        new_f, new_nu = [], []
        for (fl, fr), v in zip(factors, nus):
          if fl:
            q, order = next(new)
            fl, v = (fl[0], q), v[order, :]
          if fr:
            q, order = next(new)
            fr, v = (fr[0], q), v[:, order]
          new_f.append((fl, fr))
          new_nu.append(v)
        return tuple(new_f), new_nu

      factors, nus = jax.lax.cond(
          jnp.mod(t, precondition_frequency) == 0, refresh, lambda a: a, (factors, nus)
      )
      shape_back = lambda xs: treedef.unflatten([x.reshape(g.shape) for x, g in zip(xs, gs)])
      return shape_back(outs), shape_back(mus), shape_back(nus), factors

    out, mu, nu, factors = jax.lax.cond(count == 0, first, later, None)
    out = jax.tree.map(lambda o, g: o.astype(g.dtype), out, updates)
    return out, ScaleBySoapState(count=optax.safe_int32_increment(count), mu=mu, nu=nu, factors=factors)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def add_decayed_weights_after_step(weight_decay: Any, learning_rate: Any) -> optax.GradientTransformationExtraArgs:
  r"""Decoupled decay on the already-updated parameters, skipped on the first call (SOAP's order).

  .. math::
    u \leftarrow u - \eta_t \lambda (p + u)\quad (\text{calls } > 1), \qquad u \leftarrow u \text{ (first call)}.

  Args:
    weight_decay: :math:`\lambda`, >= 0.
    learning_rate: :math:`\eta`, a float or a schedule of the 0-based step.

  Returns:
    A gradient transformation; place it after ``scale_by_learning_rate``.

  Example:
    >>> tx = optax.chain(scale_by_soap(), scale_by_learning_rate(3e-3), add_decayed_weights_after_step(0.01, 3e-3))

  References:
    Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321.
  """
  validate.non_negative("weight_decay", weight_decay)
  validate.non_negative("learning_rate", learning_rate)

  def init_fn(params):
    del params
    return SoapDecayState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    params = errors.require(
        "soap", "params", params, "the current parameters (decay is a multiple of them)",
        "tx.update(grads, state, params)",
    )
    check_matching("soap", updates, params, ("updates", "params"))
    coef = jnp.where(state.count > 0, resolve(learning_rate, state.count) * resolve(weight_decay, state.count), 0.0)

    def one(u, p):
      dt = compute_dtype(u.dtype)
      u32 = u.astype(dt)
      return (u32 - coef.astype(dt) * (p.astype(dt) + u32)).astype(u.dtype)

    return jax.tree.map(one, updates, params), SoapDecayState(optax.safe_int32_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
