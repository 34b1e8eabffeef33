"""Steepest descent under a chosen norm per leaf: the dual map ("dualization") of the gradient."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.tree import check_matching, compute_dtype, global_norm
from gradtx._src.geometry.gather import path_name
from gradtx._src.geometry.orthogonalize import NS_COEFFS
from gradtx._src.geometry.scale_by_orthogonalized_momentum import orthogonalize, shape_scale

NORMS = ("l2", "global_l2", "linf", "spectral", "rms_to_rms")


class ScaleByDualizedNormState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter


def _leaf_norms(norm: Any, tree: Any) -> Any:
  """A tree of norm names like ``tree`` from a string, a tree of strings or a rule (path, leaf)."""
  if isinstance(norm, str):
    return jax.tree.map(lambda _: norm, tree)
  if callable(norm):
    return jax.tree_util.tree_map_with_path(lambda p, x: norm(path_name(p), x), tree)
  return norm


def _dualize_leaf(g: jax.Array, norm: str, method: str, ns_steps: int, coeffs: Any) -> jax.Array:
  dt = compute_dtype(g.dtype)
  x = g.astype(dt)
  if norm == "linf":
    return jnp.sign(x)
  if norm == "l2":
    n = jnp.sqrt(jnp.sum(jnp.square(x)))
    return x * jnp.where(n > 0, 1.0 / jnp.where(n > 0, n, 1.0), 0.0)
  if x.ndim < 2:
    raise ValueError(f"dualize: the {norm!r} norm needs a matrix leaf, got shape {x.shape}; "
                     f"choose 'l2' or 'linf' for it with a per-leaf norm rule.")
  o = orthogonalize(x, method, ns_steps, coeffs, None)
  return o * shape_scale(x.shape, "rms_to_rms") if norm == "rms_to_rms" else o


def dualize(
    tree: Any,
    norm: Any = "spectral",
    *,
    method: str = "newton_schulz",
    ns_steps: int = 5,
    coeffs: tuple[float, float, float] = NS_COEFFS,
) -> Any:
  r"""The dual map :math:`d(g) = \arg\max_{\lVert d \rVert \le 1} \langle g, d \rangle`, leaf by leaf.

  ================  ========================================================  =========================
  norm              d(g)                                                      dual norm <g, d(g)>
  ================  ========================================================  =========================
  ``"l2"``          :math:`g / \lVert g \rVert_2` (0 for 0)                   :math:`\lVert g \rVert_2`
  ``"global_l2"``   the same over all leaves concatenated                     global l2 norm
  ``"linf"``        :math:`\operatorname{sign}(g)`                            :math:`\lVert g \rVert_1`
  ``"spectral"``    :math:`U V^\top`                                          :math:`\sum_i \sigma_i`
  ``"rms_to_rms"``  :math:`\sqrt{\text{fan\_out}/\text{fan\_in}}\, U V^\top`  scaled nuclear norm
  ================  ========================================================  =========================

  Args:
    tree: the gradient (or momentum) tree; float leaves, returned in their own dtype.
    norm: a name above, a tree of names like ``tree``, or a rule ``norm(path, leaf) -> name``
      (``path`` is the ``/``-joined leaf path). Matrix norms need leaves with >= 2 axes
      (JAX ``(in, out)`` layout; conv kernels flatten to ``(H*W*I, O)``).
    method: how :math:`U V^\top` is computed: ``"newton_schulz"`` (approximate, fast), ``"svd"`` or
      ``"eigh"`` (exact).
    ns_steps: Newton-Schulz iterations.
    coeffs: Newton-Schulz coefficients.

  Returns:
    The tree of :math:`d(g)`.

  Example:
    >>> d = gradtx.geometry.dualize({"w": jnp.ones((3, 2))}, "spectral", method="svd")

  References:
    Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325.
  """
  validate.one_of("method", method, ("newton_schulz", "svd", "eigh"))
  validate.positive_int("ns_steps", ns_steps)
  if isinstance(norm, str):
    validate.one_of("norm", norm, NORMS)
  if norm == "global_l2":
    n = global_norm(tree)
    inv = jnp.where(n > 0, 1.0 / jnp.where(n > 0, n, 1.0), 0.0)
    return jax.tree.map(lambda g: (g.astype(compute_dtype(g.dtype)) * inv).astype(g.dtype), tree)
  names = _leaf_norms(norm, tree)

  def one(g, name):
    if name not in NORMS or name == "global_l2":
      raise ValueError(f"dualize: a per-leaf norm must be one of {NORMS[:1] + NORMS[2:]}, got {name!r}.")
    return _dualize_leaf(g, name, method, ns_steps, coeffs).astype(g.dtype)

  return jax.tree.map(one, tree, names)


def scale_by_dualized_norm(
    norm: Any = "spectral",
    *,
    scale_by_dual_norm: bool = False,
    method: str = "newton_schulz",
    ns_steps: int = 5,
    coeffs: tuple[float, float, float] = NS_COEFFS,
) -> optax.GradientTransformationExtraArgs:
  r"""Steepest descent under a chosen norm: replace each leaf by its dual map :math:`d(g)`.

  .. math::
    u_t = d(g_t)\ \text{(trust-region form, default)}\qquad\text{or}\qquad
    u_t = \lVert g_t \rVert_*\, d(g_t)\ \text{(steepest descent,}\ \texttt{scale\_by\_dual\_norm=True)},

  with :math:`\lVert g \rVert_* = \langle g, d(g) \rangle` per leaf (over all leaves for
  ``"global_l2"``). See :func:`dualize` for the norms. Chained after :func:`ema_momentum` the
  trust-region form is Signum (``"linf"``), normalized SGD (``"l2"``/``"global_l2"``) and Muon
  without its shape factor (``"spectral"``).

  Args:
    norm: ``"l2"``, ``"global_l2"``, ``"linf"``, ``"spectral"``, ``"rms_to_rms"``; a tree of
      these; or a rule ``norm(path, leaf) -> name``.
    scale_by_dual_norm: multiply by the dual norm (steepest descent with step
      :math:`\eta \lVert g \rVert_*`) instead of the normalised trust-region step.
    method: ``"newton_schulz"``, ``"svd"`` or ``"eigh"`` for the matrix norms.
    ns_steps: Newton-Schulz iterations.
    coeffs: Newton-Schulz coefficients.

  Returns:
    A gradient transformation.

  Example:
    >>> tx = optax.chain(gradtx.geometry.scale_by_dualized_norm(
    ...     lambda path, x: "spectral" if x.ndim == 2 else "l2"), gradtx.scale_by_learning_rate(0.1))

  References:
    Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325;
    Kovalev, "Understanding Gradient Orthogonalization for Deep Learning via Non-Euclidean
    Trust-Region Optimization", arXiv:2503.12645.

  Notes:
    The dual norm is computed as :math:`\langle g, d(g) \rangle`, which is exact for exact
    :math:`d` and, with Newton-Schulz, the matching approximation (singular values of
    :math:`d` within about [0.68, 1.13]).
  """
  validate.one_of("method", method, ("newton_schulz", "svd", "eigh"))
  validate.positive_int("ns_steps", ns_steps)
  if isinstance(norm, str):
    validate.one_of("norm", norm, NORMS)

  def init_fn(params):
    del params
    return ScaleByDualizedNormState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("scale_by_dualized_norm", updates, params, ("updates", "params"))
    d = dualize(updates, norm, method=method, ns_steps=ns_steps, coeffs=coeffs)
    if scale_by_dual_norm:
      def ip(g, x):
        dt = compute_dtype(g.dtype)
        return jnp.sum(g.astype(dt) * x.astype(dt))

      if norm == "global_l2":
        total = sum(jax.tree.leaves(jax.tree.map(ip, updates, d)), jnp.zeros([], jnp.float32))
        d = jax.tree.map(lambda x: (total * x.astype(compute_dtype(x.dtype))).astype(x.dtype), d)
      else:
        d = jax.tree.map(lambda g, x: (ip(g, x) * x.astype(compute_dtype(x.dtype))).astype(x.dtype), updates, d)
    return d, ScaleByDualizedNormState(optax.safe_int32_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
