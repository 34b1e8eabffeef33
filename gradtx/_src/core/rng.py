"""Cheap, backend-independent Gaussian noise for whole parameter trees.

``rng="fast"`` (the default) numbers the elements of a tree consecutively (leaf after leaf) and
draws each element's 32 random bits with a counter-based integer hash of its number, keyed by
the update's key: two rounds of the ``lowbias32`` mixer, no per-leaf key derivation. The bits
become a standard normal by the inverse normal CDF: the top bit is the sign, the low 31 bits a
uniform ``q = (a + 1/2) 2^-32`` in ``(0, 1/2)``, and ``|z| = Phi^-1(1 - q)`` is evaluated as a
rational function of ``t = sqrt(-2 ln q)`` (``ln q`` from the float's exponent and a polynomial
of its mantissa). That is one sqrt, one divide and about twenty multiply-adds per element, no
branches and no tables: it fuses into the update that consumes the noise.

``rng="threefry"`` uses ``jax.random.normal`` with one folded key per leaf (threefry bits,
XLA's erf_inv).

Integer hashing gives bit-identical bits on every backend; the transform is a few dozen float32
operations, so results may differ in the last ulps between backends or between jit and eager
execution (FMA contraction).

Measured on the development CPU (jax 0.10.2, 1.8 M floats, ratios in one run): the transform
costs 0.41x the previous one (24-bit uniforms through Giles' two-branch erfinv polynomials) and
0.62x the same rational with ``jnp.log``; hash + transform costs 0.53x the previous generator.
In ``chain(add_annealed_noise, adam)`` on the 1.8 M-parameter transformer-like tree the noise
costs about 0.8-0.9x an Adam step (previously 1.8-2.8x). What remains is arithmetic: about 55
vector instructions per 8 elements (17 for the hash, the rest log polynomial, sqrt, rational and
divide), and XLA materialises the noise because Adam's two moment updates both read it.
Variants tried without a measurable gain in the chain: Estrin instead of Horner, no Weyl
multiply in the hash, one flat fusion for the whole tree, an optimization barrier after the add;
replacing sqrt and divide by bit-trick Newton iterations was 1.8x slower (XLA then duplicates
the generator into both moment updates).

Trade-offs: the quantile is accurate to about 4e-6 absolute (1.2e-6 from the fit, the rest
float32 rounding) and the tails stop at 6.34 sigma (q >= 2^-33; a true normal exceeds that once
in 4e9 draws). Sum-of-uniforms (Irwin-Hall) generators would be cheaper but have visibly light
tails and kurtosis (Irwin-Hall of 4: bounded at 3.46 sigma, excess kurtosis -0.3); Box-Muller
needs two outputs per evaluation, which XLA's elementwise code generation cannot share.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx._src.core import keys
from gradtx._src.core.tree import compute_dtype

RNGS = ("fast", "threefry")
_WORDS = 2**32  # counters are uint32; no leaf may have more elements


def key_from(key: Any, where: str) -> jax.Array:
  """A raw ``uint32[2]`` key from an int seed, a PRNG key or an integer scalar array; None is an error."""
  if key is None:
    raise TypeError(f"{where}: key is required (randomness is kept in state), e.g. key=0 or key=jax.random.key(0).")
  return keys.as_key(key)


def _mix(x: jax.Array) -> jax.Array:
  # lowbias32 (C. Wellons): a bijective 32-bit mixer with low avalanche bias.
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _mix_int(x: int) -> int:
  """``_mix`` on a Python int (trace-time constants)."""
  m = 0xFFFFFFFF
  x ^= x >> 16
  x = (x * 0x7FEB352D) & m
  x ^= x >> 15
  x = (x * 0x846CA68B) & m
  return x ^ (x >> 16)


def hash_bits(key: jax.Array, size: int, offset: int = 0, block: int = 0) -> jax.Array:
  """``size`` uint32 words: a counter-based hash of the counters ``offset, ..., offset + size - 1``.

  ``block`` (a Python int) selects an independent stream of ``2^32`` counters, for trees with more
  than ``2^32`` elements.
  """
  if offset < 0 or offset + size > _WORDS:
    raise ValueError(f"hash_bits: counters [{offset}, {offset + size}) must lie in [0, 2^32).")
  k = key.astype(jnp.uint32)
  k1 = k[1] ^ jnp.uint32(_mix_int(block)) if block else k[1]
  i = jax.lax.iota(jnp.uint32, size)
  if offset:
    i = i + jnp.uint32(offset)
  return _mix(_mix(i * jnp.uint32(0x9E3779B9) + k[0]) ^ k1)


# log2 of a mantissa m in [1, 2): the degree-7 Chebyshev least-squares fit, in powers of m
# (max error 6e-7, below the float32 resolution of ln q for q < 1/4).
_LOG2_MANTISSA = (-3.2352099418640137, 7.085102558135986, -7.396151542663574, 5.673521518707275,
                  -2.914492607116699, 0.9507418274879456, -0.17810975015163422, 0.014598489739000797)
# Phi^-1(1 - q) = P(t) / Q(t), t = sqrt(-2 ln q), q in [2^-33, 1/2]: a (3, 3) rational fitted by
# iteratively reweighted least squares toward minimax; max error 1.2e-6 with these float32
# coefficients (float64 evaluation), Q >= 7 on the range.
_P = (-2.982548952102661, -3.508223533630371, 3.2795934677124023, 1.5724995136260986)
_Q = (1.0, 3.5011727809906006, 1.5619322061538696, 0.00029977227677591145)


def _poly(coefficients, x):
  """Horner's rule, coefficients from the constant term up."""
  p = jnp.full_like(x, np.float32(coefficients[-1]))
  for c in coefficients[-2::-1]:
    p = p * x + np.float32(c)
  return p


def _log2_positive(x: jax.Array) -> jax.Array:
  """log2 of positive normal float32 values: the exponent plus a polynomial of the mantissa."""
  b = jax.lax.bitcast_convert_type(x, jnp.int32)
  exponent = ((b >> 23) - 127).astype(jnp.float32)
  mantissa = jax.lax.bitcast_convert_type((b & 0x7FFFFF) | 0x3F800000, jnp.float32)
  return exponent + _poly(_LOG2_MANTISSA, mantissa)


def _bits_to_normal(bits: jax.Array) -> jax.Array:
  """Float32 standard normals from uint32 words: sign from the top bit, |z| from the low 31.

  ``|z| = Phi^-1(1 - q)`` with ``q = (a + 1/2) 2^-32``, ``a`` the low 31 bits: ``q`` is in
  ``[2^-33, 1/2)``, so ``|z| <= 6.34``; flipping the top bit of a word negates its normal exactly.
  Max absolute error against the exact quantile of the same ``q``: about 4e-6 (float32).
  """
  a = (bits & jnp.uint32(0x7FFFFFFF)).astype(jnp.int32)
  q = a.astype(jnp.float32) * np.float32(2.0**-32) + np.float32(2.0**-33)
  t = jnp.sqrt(_log2_positive(q) * np.float32(-2.0 * np.log(2.0)))
  z = _poly(_P, t) / _poly(_Q, t)
  signed = jax.lax.bitcast_convert_type(z, jnp.uint32) ^ (bits & jnp.uint32(0x80000000))
  return jax.lax.bitcast_convert_type(signed, jnp.float32)


def normal(key: jax.Array, shape: tuple[int, ...], dtype: Any, rng: str = "fast", *, offset: int = 0,
           block: int = 0) -> jax.Array:
  """Standard normal samples of ``shape`` in ``dtype`` (computed in float32 or wider).

  With ``rng="fast"``, element ``j`` (row-major) is drawn from counter ``offset + j`` of stream
  ``block``; ``offset`` and ``block`` are ignored by ``"threefry"``.
  """
  dt = compute_dtype(dtype)
  if rng == "threefry":
    return jax.random.normal(key, shape, dt)
  size = int(np.prod(shape)) if shape else 1
  return _bits_to_normal(hash_bits(key, size, offset, block)).reshape(shape).astype(dt)


def _counters(sizes: list[int]) -> list[tuple[int, int]]:
  """``(offset, block)`` for consecutive leaves: numbered in order, a new block where 2^32 would overflow."""
  out, offset, block = [], 0, 0
  for size in sizes:
    if size > _WORDS:
      raise ValueError(f"normal_like: a leaf has {size} elements; the fast generator supports up to 2^32 per leaf.")
    if offset + size > _WORDS:
      offset, block = 0, block + 1
    out.append((offset, block))
    offset += size
  return out


def normal_like(key: jax.Array, tree: Any, rng: str = "fast") -> Any:
  """A standard normal tree like ``tree`` (in each leaf's compute dtype).

  ``"fast"``: the leaves' elements are numbered consecutively and hashed with ``key`` itself, so a
  tree's noise equals ``normal(key, (n,), ...)`` of its flattened leaves (n < 2^32) and costs no
  per-leaf key derivation. ``"threefry"``: one ``jax.random.fold_in`` key per leaf.
  """
  leaves, treedef = jax.tree.flatten(tree)
  shapes = [jnp.shape(x) for x in leaves]
  dtypes = [jnp.asarray(x).dtype for x in leaves]
  if rng == "threefry":
    out = [normal(jax.random.fold_in(key, i), s, d, rng) for i, (s, d) in enumerate(zip(shapes, dtypes))]
  else:
    where = _counters([int(np.prod(s)) if s else 1 for s in shapes])
    out = [normal(key, s, d, rng, offset=o, block=b) for s, d, (o, b) in zip(shapes, dtypes, where)]
  return jax.tree.unflatten(treedef, out)
