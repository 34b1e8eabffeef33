"""Shampoo: left and right Kronecker-factor statistics per (blocked) matrix leaf, inverse roots, grafting."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import is_static_zero, power, resolve
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.curvature import root_sharding as root_sharding_lib
from gradtx._src.curvature.matrix_roots import inverse_root as _inverse_root
from gradtx._src.curvature.matrix_roots import inverse_root_eigh as _inverse_root_eigh
from gradtx._src.curvature.matrix_roots import inverse_root_newton as _inverse_root_newton
from gradtx._src.curvature.matrix_roots import safe_eps
from gradtx._src.curvature.shampoo_blocks import Blocking, as_matrix_shape

GRAFTS = ("adam", "adagrad", "sgd", None)
ROOT_METHODS = ("eigh", "newton")


class ScaleByShampooState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # momentum of the grafted direction, like params; None when b1 is a Python 0
  graft_nu: optax.Updates  # grafting second moment, like params; None for graft "sgd" or None
  factors: tuple  # per leaf (flattened order): (L, R, PL, PR) blocked, or (v,) for a diagonal leaf


def _leaf_plan(shape, block_size, max_precond_dim):
  """A :class:`Blocking` for a matrix leaf, or None for the diagonal rule."""
  mat = as_matrix_shape(shape)
  if mat is None or max(mat) > max_precond_dim:
    return None
  return Blocking.make(mat[0], mat[1], block_size)


def _c(x: Any, like: jax.Array) -> jax.Array:
  """A hyperparameter (number, array or tracer) in the dtype of ``like``."""
  return jnp.asarray(x, like.dtype)


def _root_dtype(dtype: Any) -> Any:
  """float64 for the roots whenever jax_enable_x64 is on, else the statistics' dtype."""
  wide = jax.dtypes.canonicalize_dtype(jnp.float64)
  return wide if wide == jnp.float64 else dtype


def _fro_blocks(x: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=(-1, -2), keepdims=True))


def _graft_scale(d_norm: jax.Array, g_norm: jax.Array) -> jax.Array:
  ok = d_norm > 0
  return jnp.where(ok, g_norm / jnp.where(ok, d_norm, 1.0), 0.0)


def scale_by_shampoo(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-12,
    *,
    precondition_every: int = 10,
    start_preconditioning_step: int | None = None,
    block_size: int | None = 1024,
    max_precond_dim: int = 8192,
    graft: str | None = "adagrad",
    graft_eps: Any = 1e-8,
    matrix_root_method: str = "eigh",
    inverse_root: int = 4,
    nesterov: bool = False,
    root_sharding: root_sharding_lib.RootSharding = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Precondition each matrix leaf by Shampoo's inverse-root Kronecker factors, with grafting.

  For a matrix leaf (higher-order leaves are reshaped to ``(prod(shape[:-1]), shape[-1])``), cut
  into blocks :math:`G` of at most ``block_size`` per side, each block keeps

  .. math::
    L_t = \beta_2 L_{t-1} + (1-\beta_2) G G^\top,\quad R_t = \beta_2 R_{t-1} + (1-\beta_2) G^\top G,\\
    P_L = (L + \epsilon' I)^{-1/r},\ P_R = (R + \epsilon' I)^{-1/r}
    \ \text{(refreshed every } f \text{ steps)},\quad D = P_L G P_R,\\
    D \leftarrow D\, \lVert D_{\text{graft}} \rVert_F / \lVert D \rVert_F \ \text{(per block)},\quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) D,\quad u_t = m_t.

  with :math:`r` = ``inverse_root`` (4), :math:`\epsilon' = \epsilon + 100\,\epsilon_{mach}\lambda_{max}`.
  Leaves with fewer than two dimensions, or with a matrix side above ``max_precond_dim``, use the
  diagonal rule :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2,\ D = g (v_t + \epsilon)^{-2/r}`
  (a 1x1 matrix leaf gives the same), grafted likewise.
  Grafting directions: "adagrad" :math:`g/(\sqrt{\sum g^2} + \epsilon_g)`, "adam"
  :math:`g/(\sqrt{\nu_t/(1-\beta_2^t)} + \epsilon_g)` with :math:`\nu` an EMA of :math:`g^2` at
  :math:`\beta_2`, "sgd" :math:`g`, None: no grafting. Before ``start_preconditioning_step``
  (0-based count) :math:`D = D_{\text{graft}}` (:math:`g` when ``graft=None``).

  Args:
    b1: momentum decay on the grafted direction, in [0, 1); a Python 0 leaves out the buffer.
    b2: decay of the statistics, in [0, 1).
    eps: absolute damping added before the roots, >= 0.
    precondition_every: :math:`f`, roots are recomputed on counts ``start + k f`` (a Python int).
    start_preconditioning_step: 0-based count from which the Shampoo direction is used (and the
      first roots computed); None means ``precondition_every``, as Meta's implementation, so the
      first roots see several gradients: roots of a single, rank-deficient statistic amplify
      every new direction by :math:`\epsilon'^{-1/4}` until the next refresh.
    block_size: largest block side; None keeps whole matrices.
    max_precond_dim: matrix leaves with a side above this use the diagonal rule.
    graft: "adagrad" (default), "adam", "sgd" or None.
    graft_eps: epsilon of the grafting direction, >= 0.
    matrix_root_method: "eigh" or "newton" (coupled Newton iteration).
    inverse_root: :math:`r`, the root of each factor (4 as in the paper; 2 gives a
      ``(L^{-1/2}, R^{-1/2})`` variant).
    nesterov: return :math:`\beta_1 m_t + (1-\beta_1) D` instead of :math:`m_t`.
    root_sharding: None (default) computes every root on every device. A
      ``NamedSharding(mesh, P(axes))`` (or mesh axis name(s) of the mesh set with
      ``jax.set_mesh``) spreads the roots of a refresh over those mesh axes: factors of equal
      size from all blocks of all leaves are stacked, padded with identities to a multiple of the
      axes' size, each device computes its share, and the roots are gathered back (replicated).
      Use the mesh the params live on.

  Returns:
    A gradient transformation; chain decoupled decay and ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_shampoo(block_size=256), gradtx.scale_by_learning_rate(1e-3))

  References:
    Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor Optimization",
    arXiv:1802.09568; Anil et al., "Scalable Second Order Optimization for Deep Learning",
    arXiv:2002.09018; Shi et al., "A Distributed Data-Parallel PyTorch Implementation of the
    Distributed Shampoo Optimizer for Training Neural Networks At-Scale", arXiv:2309.06497.

  Notes:
    EMA statistics (the original paper sums them from :math:`\epsilon I`) without bias
    correction, absolute epsilon (as Meta's implementation; Google's uses one relative to
    :math:`\lambda_{max}`), plus a floor of 100 machine epsilons times :math:`\lambda_{max}`
    (1.2e-5 relative in float32) so that rounding-noise eigenvalues are never amplified;
    negative eigenvalues from rounding are clamped to 0. Higher-order tensors are reshaped to
    matrices instead of keeping one factor per axis. Padded blocks add the identity on their
    padded diagonal, so blocking with padding equals per-block Shampoo on the unpadded blocks.
    The first roots are computed at ``start_preconditioning_step`` (default
    ``precondition_every``, as Meta's implementation), and the preconditioned direction is
    computed on every step and selected once started. Momentum is an EMA of the grafted
    direction (some implementations use heavy ball ``m = b1 m + D``; rescale the learning rate
    by ``1/(1-b1)`` to compare). Statistics are kept in float32 (float64 for float64 params);
    roots are computed in float64 whenever ``jax_enable_x64`` is on, else in float32. In float32
    a statistic with condition number above ~1e3 loses digits to rounding alone; raise ``eps``
    (e.g. to 1e-6 times the typical statistic scale) when reproducibility across compilations
    matters. With ``root_sharding`` the roots equal the unsharded ones up to the rounding of
    batched matmuls (``"newton"`` still stops all blocks of a leaf's side together, with one
    ``pmax`` of the per-side errors per iteration); None keeps the computation unchanged.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)
  validate.non_negative("graft_eps", graft_eps)
  validate.positive_int("precondition_every", precondition_every)
  start = precondition_every if start_preconditioning_step is None else start_preconditioning_step
  if isinstance(start, bool) or not isinstance(start, int) or start < 0:
    raise ValueError(
        f"scale_by_shampoo: start_preconditioning_step must be an integer >= 0 or None, got {start!r}."
    )
  if block_size is not None:
    validate.positive_int("block_size", block_size)
  validate.positive_int("max_precond_dim", max_precond_dim)
  validate.one_of("graft", graft, GRAFTS)
  validate.one_of("matrix_root_method", matrix_root_method, ROOT_METHODS)
  validate.positive_int("inverse_root", inverse_root)
  root_sharding_lib.check("scale_by_shampoo", root_sharding)
  use_momentum = not is_static_zero(b1)
  if nesterov and not use_momentum:
    raise ValueError("scale_by_shampoo: nesterov=True needs b1 > 0, got b1=0.")

  def init_fn(params):
    leaves = jax.tree.leaves(params)
    factors = []
    for p in leaves:
      dt = compute_dtype(p.dtype)
      plan = _leaf_plan(p.shape, block_size, max_precond_dim)
      if plan is None:
        factors.append((jnp.zeros(p.shape, dt),))
        continue
      lshape = (plan.nbr, plan.nbc, plan.br, plan.br)
      rshape = (plan.nbr, plan.nbc, plan.bc, plan.bc)
      eye_l = jnp.broadcast_to(jnp.eye(plan.br, dtype=dt), lshape)
      eye_r = jnp.broadcast_to(jnp.eye(plan.bc, dtype=dt), rshape)
      factors.append((jnp.zeros(lshape, dt), jnp.zeros(rshape, dt), eye_l, eye_r))
    acc = lambda: jax.tree.map(lambda p: jnp.zeros(p.shape, compute_dtype(p.dtype)), params)
    return ScaleByShampooState(
        count=jnp.zeros([], jnp.int32),
        mu=acc() if use_momentum else None,
        graft_nu=acc() if graft in ("adam", "adagrad") else None,
        factors=tuple(factors),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    like = next((t for t in (state.mu, state.graft_nu, params) if t is not None), None)
    if like is not None:
      check_matching("scale_by_shampoo", updates, like, ("updates", "state" if like is not params else "params"))
    leaves, treedef = jax.tree.flatten(updates)
    if len(leaves) != len(state.factors):
      raise ValueError(
          f"scale_by_shampoo: updates have {len(leaves)} leaves but the state was built for {len(state.factors)}."
      )
    count = state.count
    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    e, ge = resolve(eps, count), resolve(graft_eps, count)
    t = count + 1

    # Grafting direction (before any cast, in the compute dtype).
    gs = [g.astype(compute_dtype(g.dtype)) for g in leaves]
    if graft in ("adam", "adagrad"):
      nus = treedef.flatten_up_to(state.graft_nu)
      if graft == "adagrad":
        nus = [nu + jnp.square(g) for g, nu in zip(gs, nus)]
        grafts = [g / (jnp.sqrt(nu) + _c(ge, g)) for g, nu in zip(gs, nus)]
      else:
        nus = [_c(beta2, g) * nu + _c(1 - beta2, g) * jnp.square(g) for g, nu in zip(gs, nus)]
        c2 = 1.0 / (1.0 - power(beta2, t))
        grafts = [g / (jnp.sqrt(nu * _c(c2, g)) + _c(ge, g)) for g, nu in zip(gs, nus)]
      graft_nu = treedef.unflatten(nus)
    else:
      graft_nu = None
      grafts = gs

    # Statistics.
    new_stats = []
    for g, fac in zip(gs, state.factors):
      if len(fac) == 1:
        new_stats.append((_c(beta2, g) * fac[0] + _c(1 - beta2, g) * jnp.square(g),))
        continue
      plan = _leaf_plan(g.shape, block_size, max_precond_dim)
      gb = plan.split(g.reshape(plan.m, plan.n))
      gbt = jnp.swapaxes(gb, -1, -2)
      lf = _c(beta2, g) * fac[0] + _c(1 - beta2, g) * (gb @ gbt)
      rf = _c(beta2, g) * fac[1] + _c(1 - beta2, g) * (gbt @ gb)
      new_stats.append((lf, rf))

    # Roots, only on scheduled steps.
    def compute_roots(_):
      padded = []
      for g, st in zip(gs, new_stats):
        if len(st) == 1:
          continue
        plan = _leaf_plan(g.shape, block_size, max_precond_dim)
        pad_r, pad_c = plan.padding(st[0].dtype)
        eye_r = jnp.eye(plan.br, dtype=st[0].dtype)
        eye_c = jnp.eye(plan.bc, dtype=st[0].dtype)
        padded += [st[0] + pad_r[..., None] * eye_r, st[1] + pad_c[..., None] * eye_c]
      if root_sharding is None:
        roots = []
        for a in padded:
          rdt = _root_dtype(a.dtype)
          roots.append(_inverse_root(a.astype(rdt), inverse_root, jnp.asarray(e, rdt), matrix_root_method))
      else:
        roots = sharded_inverse_roots(padded, e)
      roots = [r.astype(a.dtype) for r, a in zip(roots, padded)]
      out, k = [], 0
      for st in new_stats:
        out.append(() if len(st) == 1 else (roots[k], roots[k + 1]))
        k += 0 if len(st) == 1 else 2
      return tuple(out)

    def sharded_inverse_roots(padded, e):
      items = [(a.astype(_root_dtype(a.dtype)).reshape((-1,) + a.shape[-2:]),) for a in padded]
      if matrix_root_method == "eigh":
        outs = root_sharding_lib.grouped_map(
            lambda a, ee: _inverse_root_eigh(a, inverse_root, ee.astype(a.dtype)), items, root_sharding, jnp.asarray(e)
        )
      else:
        # One segment per leaf side: the blocks of a side stop together, as without sharding.
        def newton(a, seg, ee, num_segments, axis_name):
          return _inverse_root_newton(
              a, inverse_root, ee.astype(a.dtype), segments=seg, num_segments=num_segments,
              reduce_max=lambda x: jax.lax.pmax(x, axis_name),
          )

        outs = root_sharding_lib.grouped_map(newton, items, root_sharding, jnp.asarray(e), segmented=True)
      return [o.reshape(a.shape) for o, a in zip(outs, padded)]

    old_roots = tuple(() if len(f) == 1 else (f[2], f[3]) for f in state.factors)
    refresh = (count >= start) & (jnp.mod(count - start, precondition_every) == 0)
    roots = jax.lax.cond(refresh, compute_roots, lambda _: old_roots, None)

    # Preconditioned, grafted directions.
    started = count >= start
    directions = []
    for g, gr, st, rt in zip(gs, grafts, new_stats, roots):
      if len(st) == 1:
        v = st[0]
        d = g * (v + safe_eps(v, _c(e, g), v.dtype)) ** (-2.0 / inverse_root)
        if graft is not None:
          d = d * _graft_scale(jnp.sqrt(jnp.sum(jnp.square(d))), jnp.sqrt(jnp.sum(jnp.square(gr))))
      else:
        plan = _leaf_plan(g.shape, block_size, max_precond_dim)
        gb = plan.split(g.reshape(plan.m, plan.n))
        db = rt[0] @ gb @ rt[1]
        if graft is not None:
          grb = plan.split(gr.reshape(plan.m, plan.n))
          db = db * _graft_scale(_fro_blocks(db), _fro_blocks(grb))
        d = plan.merge(db).reshape(g.shape)
      directions.append(jnp.where(started, d, gr))

    factors = tuple(
        st if len(st) == 1 else (st[0], st[1], rt[0], rt[1]) for st, rt in zip(new_stats, roots)
    )
    if use_momentum:
      mus = [_c(beta1, d) * m + _c(1 - beta1, d) * d for m, d in zip(treedef.flatten_up_to(state.mu), directions)]
      mu = treedef.unflatten(mus)
      if nesterov:
        outs = [_c(beta1, d) * m + _c(1 - beta1, d) * d for m, d in zip(mus, directions)]
      else:
        outs = mus
    else:
      mu, outs = None, directions
    out = treedef.unflatten([o.astype(g.dtype) for o, g in zip(outs, leaves)])
    new_state = ScaleByShampooState(
        count=optax.safe_int32_increment(count), mu=mu, graft_nu=graft_nu, factors=factors
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
