"""Orthogonalization of matrices: Newton-Schulz iteration and the exact polar factor."""

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from gradtx._src.core import linalg, validate
from gradtx._src.core.tree import compute_dtype

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def _swap(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, -1, -2)


def _explicit_matrix_spec(x: jax.Array) -> Any:
  """The PartitionSpec of ``x`` if an explicit mesh axis shards its matrix axes, else None."""
  try:
    sharding = jax.typeof(x).sharding
    spec, mesh = sharding.spec, sharding.mesh
    explicit = {n for n, t in zip(mesh.axis_names, mesh.axis_types) if t == jax.sharding.AxisType.Explicit}
  except (AttributeError, TypeError):
    return None
  entries = list(spec) + [None] * (x.ndim - len(spec))
  names: set[str] = set()
  for e in entries[-2:]:
    names.update((e,) if isinstance(e, str) else (e or ()))
  return PartitionSpec(*entries) if names & explicit else None


def _on_whole_matrix(fn: Any, x: jax.Array) -> jax.Array:
  """Run ``fn`` on ``x`` with its matrix axes replicated when an explicit mesh axis shards them.

  Under explicit sharding a product of two matrices sharded along the contracting axis is a
  sharding type error; gathering each matrix (batch axes stay sharded) makes it well defined.
  Under plain ``jit`` (auto axes) nothing is done and XLA partitions the computation.
  """
  spec = _explicit_matrix_spec(x)
  if spec is None:
    return fn(x)
  whole = PartitionSpec(*(list(spec)[:-2] + [None, None]))
  return jax.sharding.reshard(fn(jax.sharding.reshard(x, whole)), spec)


def _check_matrix(where: str, x: jax.Array) -> None:
  if x.ndim < 2:
    raise ValueError(f"{where}: x must have at least 2 axes (a matrix, batched over leading axes), "
                     f"got shape {x.shape}.")


def orthogonalize_newton_schulz(
    x: jax.Array,
    ns_steps: int = 5,
    coeffs: tuple[float, float, float] = NS_COEFFS,
    *,
    eps: float = 1e-7,
    dtype: Any = None,
) -> jax.Array:
  r"""Approximate the polar factor :math:`U V^\top` of a matrix by a quintic Newton-Schulz iteration.

  .. math::
    X_0 = X / (\lVert X \rVert_F + \epsilon),\qquad
    A_k = X_k X_k^\top,\quad X_{k+1} = a X_k + (b A_k + c A_k^2) X_k

  (on the wide orientation: a tall matrix is transposed first, and back at the end).

  Args:
    x: an array with at least 2 axes; the last two are the matrix, leading axes are a batch.
    ns_steps: number of iterations, an int >= 1.
    coeffs: the quintic's coefficients :math:`(a, b, c)`; the default is Keller Jordan's
      (3.4445, -4.7750, 2.0315), which maps the singular values of a reasonably conditioned
      matrix into about [0.68, 1.13] in 5 steps.
    eps: added to the Frobenius norm; a zero matrix maps to zero.
    dtype: dtype the iteration runs in; None means float32 or wider (``bfloat16`` for speed).

  Returns:
    An array of ``x``'s shape and dtype.

  Example:
    >>> o = gradtx.geometry.orthogonalize_newton_schulz(jnp.ones((4, 3)))

  References:
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
    https://kellerjordan.github.io/posts/muon/.

  Notes:
    The reference runs in bfloat16; gradtx runs in float32 (or the input's wider dtype) unless
    ``dtype`` says otherwise. The iteration is a polynomial of :math:`X X^\top` times :math:`X`,
    so it keeps the singular vectors, commutes with transposition and is invariant to scaling
    by a positive constant. It works on the whole logical matrix: under ``jit`` with sharded
    inputs XLA inserts the collectives, there is no per-device blocking; under explicit
    sharding (``AxisType.Explicit``) a matrix sharded along its own axes is gathered first and
    the result resharded like the input.
  """
  _check_matrix("orthogonalize_newton_schulz", x)
  validate.positive_int("ns_steps", ns_steps)
  if len(coeffs) != 3:
    raise ValueError(f"orthogonalize_newton_schulz: coeffs must be 3 numbers (a, b, c), got {coeffs!r}.")
  dt = compute_dtype(x.dtype) if dtype is None else jnp.dtype(dtype)
  coeffs = (float(coeffs[0]), float(coeffs[1]), float(coeffs[2]))
  return _on_whole_matrix(lambda y: _newton_schulz(y, ns_steps, coeffs, float(eps), dt), x)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _newton_schulz(x: jax.Array, ns_steps: int, coeffs: tuple[float, ...], eps: float, dt: Any) -> jax.Array:
  # Jitted on its own so that eager and jitted callers run the same compiled kernel (same rounding).
  a, b, c = coeffs
  y = x.astype(dt)
  tall = y.shape[-2] > y.shape[-1]
  if tall:
    y = _swap(y)
  norm = jnp.sqrt(jnp.sum(jnp.square(y.astype(compute_dtype(dt))), axis=(-2, -1), keepdims=True))
  y = (y / (norm + eps).astype(dt)).astype(dt)
  for _ in range(ns_steps):
    gram = y @ _swap(y)
    poly = b * gram + c * (gram @ gram)
    y = a * y + poly @ y
  if tall:
    y = _swap(y)
  return y.astype(x.dtype)


def orthogonalize_polar(x: jax.Array, method: str = "svd") -> jax.Array:
  r"""The exact polar factor :math:`U V^\top` of a matrix (batched over leading axes).

  .. math::
    X = U \Sigma V^\top \;\Rightarrow\; \mathrm{polar}(X) = U V^\top
    = X (X^\top X)^{-1/2}.

  Args:
    x: an array with at least 2 axes; the last two are the matrix.
    method: ``"svd"`` (thin SVD; rank-deficient inputs give the minimum-norm partial isometry
      on the range, zero singular values map to zero) or ``"eigh"`` (eigendecomposition of the
      smaller Gram matrix; same result, faster on some backends, less accurate for
      ill-conditioned inputs).

  Returns:
    An array of ``x``'s shape and dtype whose nonzero singular values are exactly 1.

  Example:
    >>> o = gradtx.geometry.orthogonalize_polar(jnp.ones((4, 3)) + jnp.eye(4, 3))

  References:
    Higham, "Functions of Matrices: Theory and Computation" (2008), ch. 8;
    Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325.

  Notes:
    Singular values below ``max(shape) * eps(dtype) * sigma_max`` count as zero, so an exactly
    rank-deficient (or zero) matrix gives a partial isometry (zero for zero) and no NaN.
  """
  _check_matrix("orthogonalize_polar", x)
  validate.one_of("method", method, ("svd", "eigh"))
  return _on_whole_matrix(lambda y: _polar(y, method), x)


def _polar(x: jax.Array, method: str) -> jax.Array:
  dt = compute_dtype(x.dtype)
  y = x.astype(dt)
  tol_scale = max(y.shape[-2:]) * jnp.finfo(dt).eps
  if method == "svd":
    u, s, vt = linalg.svd(y, full_matrices=False)
    keep = (s > tol_scale * s[..., :1]).astype(dt)
    out = (u * keep[..., None, :]) @ vt
  else:
    tall = y.shape[-2] >= y.shape[-1]
    z = y if tall else _swap(y)
    w, v = linalg.eigh(_swap(z) @ z)  # z^T z = V S^2 V^T
    w = jnp.maximum(w, 0.0)
    top = jnp.max(w, axis=-1, keepdims=True)
    keep = w > tol_scale * top  # eigenvalues are sigma^2, accurate to eps * sigma_max^2
    inv_sqrt = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, w, 1.0)), 0.0)
    out = z @ ((v * inv_sqrt[..., None, :]) @ _swap(v))
    out = out if tall else _swap(out)
  return out.astype(x.dtype)


def as_matrix(x: jax.Array) -> jax.Array:
  """View a leaf as a ``(fan_in, fan_out)`` matrix: conv kernels ``(..., I, O)`` flatten to ``(prod, O)``."""
  if x.ndim == 2:
    return x
  return x.reshape(-1, x.shape[-1])


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
  """``(fan_in, fan_out)`` of a JAX-layout kernel: ``(in, out)`` or conv ``(H, W, I, O)``."""
  fan_out = shape[-1]
  fan_in = 1
  for n in shape[:-1]:
    fan_in *= n
  return fan_in, fan_out
