"""Hessian-vector products by forward-over-reverse differentiation."""

from collections.abc import Callable
from typing import Any

import jax


def hvp(fn: Callable[[Any], jax.Array], params: Any, v: Any) -> Any:
  r"""The Hessian-vector product :math:`\nabla^2 f(p)\, v`, forward over reverse.

  Args:
    fn: scalar function of ``params``.
    params: the point, any pytree.
    v: the direction, a tree like ``params``.

  Returns:
    A tree like ``params``.

  Example:
    >>> hv = gradtx.hvp(lambda p: jnp.sum(p ** 3), jnp.ones(3), jnp.ones(3))  # 6 * ones

  References:
    Pearlmutter, "Fast Exact Multiplication by the Hessian", Neural Computation 6 (1994).
  """
  return grad_and_hvp(fn, params, v)[1]


def grad_and_hvp(fn: Callable[[Any], jax.Array], params: Any, v: Any) -> tuple[Any, Any]:
  r"""The gradient and :math:`\nabla^2 f(p)\, v` from one ``jvp`` of the gradient.

  Args:
    fn: scalar function of ``params``.
    params: the point, any pytree.
    v: the direction, a tree like ``params``.

  Returns:
    ``(grad, hvp)``, both trees like ``params``.

  Example:
    >>> g, hv = gradtx.grad_and_hvp(loss, params, v)

  References:
    Pearlmutter, "Fast Exact Multiplication by the Hessian", Neural Computation 6 (1994).
  """
  return jax.jvp(jax.grad(fn), (params,), (v,))
