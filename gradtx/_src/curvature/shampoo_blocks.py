"""Reshaping leaves into matrices and blocks for the Kronecker-factored preconditioners."""

import dataclasses
import math

import jax
import jax.numpy as jnp


def as_matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
  """The matrix a leaf is preconditioned as: ``(prod(shape[:-1]), shape[-1])``; None for ndim < 2."""
  if len(shape) < 2:
    return None
  return math.prod(shape[:-1]), shape[-1]


@dataclasses.dataclass(frozen=True)
class Blocking:
  """How an ``(m, n)`` matrix is cut into ``nbr x nbc`` blocks of ``br x bc`` (zero padded)."""

  m: int
  n: int
  br: int
  bc: int

  @property
  def nbr(self) -> int:
    return -(-self.m // self.br)

  @property
  def nbc(self) -> int:
    return -(-self.n // self.bc)

  @classmethod
  def make(cls, m: int, n: int, block_size: int | None) -> "Blocking":
    br = m if block_size is None or m <= block_size else block_size
    bc = n if block_size is None or n <= block_size else block_size
    return cls(m, n, br, bc)

  def split(self, x: jax.Array) -> jax.Array:
    """``(m, n)`` -> ``(nbr, nbc, br, bc)``, zero padded at the ends."""
    pr, pc = self.nbr * self.br - self.m, self.nbc * self.bc - self.n
    if pr or pc:
      x = jnp.pad(x, ((0, pr), (0, pc)))
    return x.reshape(self.nbr, self.br, self.nbc, self.bc).transpose(0, 2, 1, 3)

  def merge(self, b: jax.Array) -> jax.Array:
    """Inverse of :meth:`split`."""
    x = b.transpose(0, 2, 1, 3).reshape(self.nbr * self.br, self.nbc * self.bc)
    return x[: self.m, : self.n]

  def padding(self, dtype) -> tuple[jax.Array, jax.Array]:
    """Diagonal masks ``(nbr, 1, br)`` and ``(1, nbc, bc)``: 1 on padded rows/columns.

    Added to the diagonal of a padded block's statistic they make its padded part the identity,
    so the block's root equals the root of the unpadded block, direct sum with a constant.
    """
    rows = (jnp.arange(self.nbr * self.br) >= self.m).astype(dtype).reshape(self.nbr, 1, self.br)
    cols = (jnp.arange(self.nbc * self.bc) >= self.n).astype(dtype).reshape(1, self.nbc, self.bc)
    return rows, cols
