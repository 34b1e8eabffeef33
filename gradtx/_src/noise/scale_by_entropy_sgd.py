"""Entropy-SGD: an inner Langevin loop estimates the gradient of the local entropy."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, keys, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.rng import RNGS, key_from, normal_like
from gradtx._src.core.tree import check_matching, compute_dtype, scalar_dtype


class ScaleByEntropySgdState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 outer step counter k
  key: jax.Array  # raw uint32[2] PRNG key, split once per outer update


def scale_by_entropy_sgd(
    gamma: Any = 0.03,
    scoping: Any = 1e-3,
    *,
    inner_steps: int = 20,
    inner_learning_rate: Any = 0.1,
    alpha: Any = 0.75,
    thermal_noise: Any = 1e-4,
    key: Any = None,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""Replace the gradient by Entropy-SGD's local-entropy gradient, from an inner SGLD loop.

  At params :math:`x`, with scope :math:`\gamma_k = \gamma_0 (1 + \gamma_1)^k`, :math:`x' = \mu = x`:

  .. math::
    \text{for } l = 1..L:\quad
    x' \leftarrow x' - \eta' \big(\nabla f(x') - \gamma_k (x - x')\big) + \sqrt{\eta'}\,
      \varepsilon\, \xi_l,\qquad
    \mu \leftarrow (1-\alpha)\mu + \alpha x';\qquad
    u = \gamma_k (x - \mu).

  Args:
    gamma: :math:`\gamma_0`, the initial scope, >= 0; a float, array or schedule.
    scoping: :math:`\gamma_1`, >= 0; the scope grows by :math:`(1+\gamma_1)` per outer step.
    inner_steps: :math:`L`, the number of inner Langevin steps, an int >= 0 (static).
    inner_learning_rate: :math:`\eta'`, > 0.
    alpha: :math:`\alpha`, the averaging weight of :math:`\mu`, in (0, 1].
    thermal_noise: :math:`\varepsilon`, the inner noise scale, >= 0.
    key: an int seed or PRNG key (required).
    rng: ``"fast"`` or ``"threefry"`` (see :func:`add_annealed_noise`).

  Returns:
    A gradient transformation; ``update`` needs ``params`` and ``grad_fn=`` (params -> gradient
    on the current batch). Follow it with momentum and a learning rate (see ``entropy_sgd``).

  Example:
    >>> tx = gradtx.noise.scale_by_entropy_sgd(key=0)
    >>> u, s = tx.update(grads, s, params, grad_fn=jax.grad(lambda p: loss(p, batch)))

  References:
    Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun & Zecchina,
    "Entropy-SGD: Biasing Gradient Descent Into Wide Valleys", arXiv:1611.01838.

  Notes:
    The first inner step uses the incoming gradient (at :math:`x' = x` it is
    :math:`\nabla f(x)`), so an outer step costs :math:`L - 1` calls of ``grad_fn``. The paper
    draws a fresh minibatch for every inner step; here ``grad_fn`` is one batch's gradient, so
    all inner steps see the same batch unless ``grad_fn`` samples itself. The first inner step
    uses whatever reaches this transformation in a chain (put it first to get the raw gradient).
    Defaults are the paper's (L = 20, :math:`\eta'` = 0.1, :math:`\alpha` = 0.75,
    :math:`\varepsilon` = 1e-4, :math:`\gamma_0` = 0.03, :math:`\gamma_1` = 1e-3).
  """
  validate.non_negative("gamma", gamma)
  validate.non_negative("scoping", scoping)
  if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 0:
    raise ValueError(f"scale_by_entropy_sgd: inner_steps must be an integer >= 0, got {inner_steps!r}.")
  validate.positive("inner_learning_rate", inner_learning_rate)
  validate.in_range("alpha", alpha, 0.0, 1.0, left_open=True)
  validate.non_negative("thermal_noise", thermal_noise)
  validate.one_of("rng", rng, RNGS)
  key = key_from(key, "scale_by_entropy_sgd")

  def init_fn(params):
    del params
    return ScaleByEntropySgdState(count=jnp.zeros([], jnp.int32), key=keys.fresh(key))

  def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
    del extra_args
    params = errors.require(
        "scale_by_entropy_sgd", "params", params, "the current parameters", "tx.update(grads, state, params)"
    )
    check_matching("scale_by_entropy_sgd", updates, params, ("updates", "params"))
    new_key, use = keys.split(state.key)
    c = state.count
    wide = scalar_dtype(params)
    g_k = jnp.asarray(resolve(gamma, c), wide) * power(1.0 + jnp.asarray(resolve(scoping, c), wide), c)
    g_k = g_k.astype(wide)
    lr_in = resolve(inner_learning_rate, c)
    a = resolve(alpha, c)
    noise_scale = jnp.sqrt(lr_in) * resolve(thermal_noise, c)
    x = jax.tree.map(lambda p: p.astype(compute_dtype(p.dtype)), params)

    def inner(step_index, grads, xp, mu):
      z = normal_like(jax.random.fold_in(use, step_index), xp, rng)

      def step(g, xi, xpi, zi):
        dx = g.astype(xpi.dtype) - g_k.astype(xpi.dtype) * (xi - xpi)
        return xpi - lr_in * dx + noise_scale * zi

      xp = jax.tree.map(step, grads, x, xp, z)
      mu = jax.tree.map(lambda m, xpi: (1.0 - a) * m + a * xpi, mu, xp)
      return xp, mu

    xp, mu = x, x
    if inner_steps >= 1:
      xp, mu = inner(0, updates, xp, mu)
    if inner_steps >= 2:
      grad_fn = errors.require(
          "scale_by_entropy_sgd", "grad_fn", grad_fn,
          "the gradient of the loss on the current batch as a function of params",
          "tx.update(grads, state, params, grad_fn=jax.grad(lambda p: loss(p, batch)))",
      )

      def body(step_index, carry):
        xp, mu = carry
        cast = jax.tree.map(lambda v, p: v.astype(p.dtype), xp, params)
        return inner(step_index, grad_fn(cast), xp, mu)

      xp, mu = jax.lax.fori_loop(1, inner_steps, body, (xp, mu))
    out = jax.tree.map(
        lambda xi, m, g: (g_k.astype(xi.dtype) * (xi - m)).astype(g.dtype), x, mu, updates
    )
    return out, ScaleByEntropySgdState(optax.safe_int32_increment(c), new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
