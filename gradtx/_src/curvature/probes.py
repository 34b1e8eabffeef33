"""Random probe vectors for Hutchinson estimators: packed Rademacher signs and Gaussians."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_ONE_BITS = np.uint32(0x3F800000)  # float32 1.0
_SHIFTS = np.arange(32, dtype=np.uint32)


def _packed_signs(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
  """``+-1`` of ``shape`` from ``ceil(n/32)`` random 32-bit words, one sign per bit."""
  n = int(np.prod(shape, dtype=np.int64))
  if n == 0:
    return jnp.zeros(shape, dtype)
  words = jax.random.bits(key, ((n + 31) // 32,), jnp.uint32)
  # Bit i of a word becomes the sign bit of float32 1.0: a shift, a mask and an or per sign.
  sign_bits = ((words[:, None] >> _SHIFTS) & np.uint32(1)) << np.uint32(31)
  signs = jax.lax.bitcast_convert_type(sign_bits | _ONE_BITS, jnp.float32)
  return signs.reshape(-1)[:n].reshape(shape).astype(dtype)


def _leaf_keys(key: jax.Array, leaves: list[Any]) -> list[jax.Array]:
  return [jax.random.fold_in(key, i) for i in range(len(leaves))]


def _probe_dtype(x: Any) -> Any:
  dtype = jnp.asarray(x).dtype
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def rademacher_like(key: jax.Array, tree: Any) -> Any:
  r"""A Rademacher probe (independent :math:`\pm 1` with probability 1/2 each) shaped like ``tree``.

  Each leaf draws ``ceil(size / 32)`` 32-bit words with ``jax.random.bits`` from
  ``fold_in(key, leaf_index)`` and uses every bit as one sign, which costs about 1/32 of the
  random-number generation of ``jax.random.rademacher`` (one 32-bit draw per sign).

  Args:
    key: a PRNG key (raw ``uint32[2]`` or typed).
    tree: any pytree of arrays; the probe takes each leaf's shape and floating dtype.

  Returns:
    A tree like ``tree`` of :math:`\pm 1` values.

  Example:
    >>> z = gradtx.curvature.rademacher_like(jax.random.key(0), params)
  """
  leaves, treedef = jax.tree.flatten(tree)
  keys = _leaf_keys(key, leaves)
  out = [_packed_signs(k, jnp.shape(x), _probe_dtype(x)) for k, x in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, out)


def gaussian_like(key: jax.Array, tree: Any) -> Any:
  """A standard normal probe shaped like ``tree``, leaf ``i`` drawn from ``fold_in(key, i)``.

  Args:
    key: a PRNG key.
    tree: any pytree of arrays.

  Returns:
    A tree like ``tree`` of independent N(0, 1) values.
  """
  leaves, treedef = jax.tree.flatten(tree)
  keys = _leaf_keys(key, leaves)
  out = [jax.random.normal(k, jnp.shape(x), _probe_dtype(x)) for k, x in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, out)


PROBES: dict[str, Callable[[jax.Array, Any], Any]] = {
    "rademacher": rademacher_like,
    "gaussian": gaussian_like,
}


def probe_like(key: jax.Array, tree: Any, probe: str = "rademacher") -> Any:
  """The probe named ``probe`` ("rademacher" or "gaussian") shaped like ``tree``."""
  return PROBES[probe](key, tree)


def probe_key(key: jax.Array, index: Any) -> jax.Array:
  """The key of probe number ``index`` drawn from ``key``: ``fold_in(key, index)``.

  Every estimator in :mod:`gradtx.curvature` draws its ``k``-th probe as
  ``probe_like(probe_key(key, k), params)``, so tests and training loops can regenerate them.
  """
  return jax.random.fold_in(key, index)
