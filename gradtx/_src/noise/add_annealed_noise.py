"""Annealed Gaussian gradient noise with variance eta / (1 + t)^gamma, drawn cheaply."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.rng import RNGS, key_from, normal_like
from gradtx._src.core.tree import check_matching, compute_dtype, scalar_dtype


class AddAnnealedNoiseState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  key: jax.Array  # raw uint32[2] PRNG key, split once per update


def add_annealed_noise(
    eta: Any = 0.01, gamma: Any = 0.55, *, key: Any = None, rng: str = "fast"
) -> optax.GradientTransformationExtraArgs:
  r"""Add Gaussian noise whose variance decays as :math:`\eta / (1 + t)^\gamma`.

  .. math::
    \sigma_t^2 = \eta / (1 + t)^\gamma,\qquad u_t = g_t + \sigma_t \xi_t,\quad
    \xi_t \sim \mathcal N(0, I),

  with :math:`t` the 0-based step (the first call has variance :math:`\eta`).

  Args:
    eta: :math:`\eta`, the initial variance, >= 0 (paper: 0.01, 0.3 or 1.0). A float, array or schedule.
    gamma: :math:`\gamma`, the decay exponent, >= 0 (paper: 0.55).
    key: an int seed or PRNG key (required); the same key gives the same noise.
    rng: ``"fast"`` (counter-based hash bits and a rational inverse normal CDF, several times
      cheaper than ``jax.random.normal`` on CPU) or ``"threefry"`` (``jax.random.normal``).

  Returns:
    A gradient transformation. Place it first in a chain to perturb the raw gradient.

  Example:
    >>> tx = optax.chain(gradtx.add_annealed_noise(0.01, key=0), gradtx.adam(1e-3))

  References:
    Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach & Martens, "Adding Gradient Noise
    Improves Learning for Very Deep Networks", arXiv:1511.06807.

  Notes:
    Same variance as ``optax.add_noise`` (which draws with ``jax.random.normal`` per leaf).
    ``rng="fast"`` draws from a counter-based integer hash of the element's position in the
    tree, keyed by the step's key, so a given key gives identical bits on every backend. Each
    32-bit word gives one normal by the inverse CDF (sign bit plus a 31-bit uniform): the tails
    reach 6.3 sigma, and the quantile is within about 4e-6 of the exact one (see
    ``gradtx._src.core.rng``). On CPU the transform (one log polynomial, one sqrt, one divide per
    element) still costs about as much as an Adam step's arithmetic: measured in
    ``benchmarks/clip_noise.py``, ``chain(add_annealed_noise, adam)`` costs about 1.8-1.9x ``adam``
    (the previous generator 2.8-3.8x, ``optax.add_noise`` 5-8x; the issue's target of 1.3x is not
    reached on CPU).
  """
  validate.non_negative("eta", eta)
  validate.non_negative("gamma", gamma)
  validate.one_of("rng", rng, RNGS)
  key = key_from(key, "add_annealed_noise")

  def init_fn(params):
    del params
    return AddAnnealedNoiseState(count=jnp.zeros([], jnp.int32), key=keys.fresh(key))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is not None:
      check_matching("add_annealed_noise", updates, params, ("updates", "params"))
    new_key, use = keys.split(state.key)
    t = state.count.astype(scalar_dtype(updates))
    e, gm = resolve(eta, state.count), resolve(gamma, state.count)
    sigma = jnp.sqrt(e / jnp.power(1.0 + t, gm))
    noise = normal_like(use, updates, rng)

    def add(g, z):
      dt = compute_dtype(g.dtype)
      return (g.astype(dt) + sigma.astype(dt) * z).astype(g.dtype)

    out = jax.tree.map(add, updates, noise)
    return out, AddAnnealedNoiseState(optax.safe_int32_increment(state.count), new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
