"""A posterior sample collector: burn-in, thinning and running mean and variance, inside jit."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.tree import check_matching, compute_dtype


class CollectSamplesState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 number of updates seen
  num_samples: jax.Array  # int32 number of samples kept
  mean: optax.Params  # running mean of the kept samples
  m2: optax.Params  # running sum of squared deviations from the mean (Welford)


def collect_samples(burn_in: int = 0, thinning: int = 1) -> optax.GradientTransformationExtraArgs:
  r"""Pass updates through unchanged while accumulating statistics of the parameters they produce.

  Chain it last: after update :math:`t` (1-based) the new parameters
  :math:`\theta_t = \theta_{t-1} + u_t` are kept as a sample when :math:`t > ` ``burn_in`` and
  :math:`(t - ` ``burn_in`` :math:`- 1)` is a multiple of ``thinning``; the running mean and
  Welford's sum of squared deviations are updated in float32 or wider.

  Args:
    burn_in: the number of updates to discard first, an int >= 0.
    thinning: keep one sample every ``thinning`` updates, an int >= 1.

  Returns:
    An identity gradient transformation whose state is a :class:`CollectSamplesState`; read it
    with :func:`sample_moments`. ``update`` needs ``params``.

  Example:
    >>> tx = optax.chain(gradtx.sgld(1e-4, key=0), gradtx.noise.collect_samples(1000, 10))
    >>> mean, var = gradtx.noise.sample_moments(state)

  References:
    Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", ICML 2011.
    Welford, "Note on a method for calculating corrected sums of squares and products",
    Technometrics 4 (1962).
  """
  if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
    raise ValueError(f"collect_samples: burn_in must be an integer >= 0, got {burn_in!r}.")
  validate.positive_int("thinning", thinning)

  def init_fn(params):
    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.asarray(p).dtype)), params)
    return CollectSamplesState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    params = errors.require(
        "collect_samples", "params", params, "the current parameters", "tx.update(grads, state, params)"
    )
    check_matching("collect_samples", updates, params, ("updates", "params"))
    t = state.count + 1
    take = (t > burn_in) & ((t - burn_in - 1) % thinning == 0)
    n = state.num_samples + take.astype(jnp.int32)
    inv_n = jnp.where(take, 1.0 / jnp.maximum(n, 1), 0.0)

    def moments(p, u, m, s):
      x = p.astype(m.dtype) + u.astype(m.dtype)
      delta = x - m
      new_m = m + inv_n.astype(m.dtype) * delta
      new_s = s + jnp.where(take, delta * (x - new_m), 0.0).astype(s.dtype)
      return new_m, new_s

    pairs = jax.tree.map(moments, params, updates, state.mean, state.m2)
    is_pair = lambda x: isinstance(x, tuple) and len(x) == 2 and not hasattr(x, "_fields")
    mean = jax.tree.map(lambda x: x[0], pairs, is_leaf=is_pair)
    m2 = jax.tree.map(lambda x: x[1], pairs, is_leaf=is_pair)
    return updates, CollectSamplesState(optax.safe_int32_increment(state.count), n, mean, m2)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_samples_state(opt_state: Any) -> CollectSamplesState:
  """The first :class:`CollectSamplesState` inside an optimizer state (e.g. a chain's)."""
  found = [
      s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, CollectSamplesState))
      if isinstance(s, CollectSamplesState)
  ]
  if not found:
    raise ValueError("find_samples_state: the state holds no CollectSamplesState; chain collect_samples().")
  return found[0]


def sample_moments(opt_state: Any, *, ddof: int = 1) -> tuple[Any, Any]:
  """``(mean, variance)`` of the collected samples, elementwise; works inside ``jit``.

  Args:
    opt_state: a :class:`CollectSamplesState` or any optimizer state that contains one.
    ddof: 1 for the unbiased sample variance (default), 0 for the population variance.

  Returns:
    Two trees like the parameters. The variance is NaN until more than ``ddof`` samples are kept.

  Example:
    >>> mean, var = gradtx.noise.sample_moments(opt_state)  # opt_state of a chain ending in collect_samples
  """
  s = opt_state if isinstance(opt_state, CollectSamplesState) else find_samples_state(opt_state)
  denom = (s.num_samples - ddof).astype(jnp.float32)
  var = jax.tree.map(lambda m2: m2 / jnp.where(denom > 0, denom, jnp.nan).astype(m2.dtype), s.m2)
  return s.mean, var
