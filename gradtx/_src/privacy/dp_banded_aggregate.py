"""Correlated-noise DP aggregation by a banded matrix factorisation (BandMF, banded nu-DP-FTRL)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.tree import compute_dtype
from gradtx._src.privacy.banded_coefficients import BANDED, as_coefficients
from gradtx._src.privacy.dp_aggregate import _clipped_sum_and_noise, _divide, _validate_aggregate


class DpBandedAggregateState(NamedTuple):
  # int32 number of private releases so far (the accountant's step count)
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states
  key: jax.Array  # raw uint32[2] PRNG key, split once per update (as dp_aggregate's)
  history: tuple  # bands - 1 parameter-sized trees, newest first (see the docstring), compute dtype


def dp_banded_aggregate(
    l2_clip: Any,
    noise_multiplier: Any,
    *,
    coefficients: Any,
    key: Any = None,
    expected_batch_size: Any = None,
    banded: str = "strategy",
    denominator: str = "expected",
    rng: str = "threefry",
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Clipped per-example sums plus correlated Gaussian noise :math:`C^{-1} w` from a banded Toeplitz factor.

  With :math:`x_t = \sum_i m_i\, g_i \min(1, C_{\text{clip}}/\lVert g_i\rVert)`, fresh
  :math:`w_t = \sigma C_{\text{clip}} z_t`, :math:`z_t \sim \mathcal N(0, I)`, and a
  lower-triangular Toeplitz factor with ``coefficients`` :math:`c_0, \dots, c_{b-1}`:

  .. math::
    \tilde g_t = (x_t + \zeta_t) / D, \qquad
    \zeta_t = \begin{cases}
      \big(w_t - \sum_{j=1}^{b-1} c_j\, \zeta_{t-j}\big) / c_0 & \texttt{banded="strategy"}
        \ (C \text{ banded: } \zeta = C^{-1} w) \\
      \sum_{j=0}^{b-1} c_j\, w_{t-j} & \texttt{banded="correlation"}
        \ (C^{-1} \text{ banded: } \zeta = C^{-1} w)
    \end{cases}

  (terms with :math:`t - j < 1` are zero). SGD with a constant learning rate on
  :math:`\tilde g_t` releases the prefix sums :math:`A x + A C^{-1} w` of the matrix mechanism
  for :math:`A = BC`; ``coefficients=(1,)`` is DP-SGD's independent noise (bit for bit
  :func:`gradtx.privacy.dp_aggregate` with the same key).

  Args:
    l2_clip: :math:`C_{\text{clip}}`, > 0; a float, array or schedule.
    noise_multiplier: :math:`\sigma`, >= 0; a float, array or schedule. The privacy is that of
      :math:`\sigma / \mathrm{sens}(C)` (:func:`gradtx.privacy.banded_sensitivity`); the
      coefficient helpers give sensitivity 1.
    coefficients: the first column of the banded factor (``bands = len(coefficients)``), e.g.
      :func:`gradtx.privacy.banded_sqrt_coefficients` (strategy) or
      :func:`gradtx.privacy.nu_dp_ftrl_coefficients` (correlation); floats, ``c_0 != 0``.
    key: an int seed or PRNG key (required).
    expected_batch_size: :math:`D`, > 0; required with ``denominator="expected"``.
    banded: ``"strategy"`` (:math:`C` banded, BandMF: amplifiable by cyclic Poisson
      sampling) or ``"correlation"`` (:math:`C^{-1}` banded: a finite noise filter).
    denominator: ``"expected"`` or ``"actual"`` (see :func:`gradtx.privacy.dp_aggregate`).
    rng: ``"threefry"`` or ``"fast"``.
    axis_name: under data parallelism, ``psum`` the clipped sums over this mapped axis and add
      the noise once, from the replicated state (see :func:`gradtx.privacy.dp_aggregate`).

  Returns:
    A gradient transformation whose ``update`` needs ``per_example_grads=`` and takes
    ``example_mask=``. Its state holds ``bands - 1`` parameter-sized trees in float32 or wider
    (memory :math:`(b-1) \times` params): the last noises :math:`\zeta_{t-1}, \dots` (strategy)
    or the last draws :math:`w_{t-1}, \dots` (correlation), newest first.

  Example:
    >>> c = gradtx.privacy.banded_sqrt_coefficients(bands=4)
    >>> tx = optax.chain(gradtx.privacy.dp_banded_aggregate(1.0, 1.0, coefficients=c, key=0,
    ...                                                     expected_batch_size=256), optax.sgd(0.5))

  References:
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.
    Choquette-Choo, Dvijotham, Pillutla, Ganesh, Steinke & Thakurta, "Correlated Noise Provably
    Beats Independent Noise for Differentially Private Learning", arXiv:2310.06771.

  Notes:
    The noise history is stored (not regenerated from the key), so each step draws one normal
    tree, like DP-SGD. A schedule for ``l2_clip`` or ``noise_multiplier`` scales each fresh draw
    :math:`w_t` (the noise of release :math:`t` of :math:`Cx`); the banded accountant assumes
    both constant. The BandMF amplification needs cyclic Poisson sampling over ``bands``
    partitions (:func:`gradtx.privacy.poisson_batches` with ``partitions=bands``).
  """
  validate.one_of("banded", banded, BANDED)
  coefs = as_coefficients("dp_banded_aggregate", coefficients)
  raw_key, hyperparams = _validate_aggregate(
      "dp_banded_aggregate", l2_clip, noise_multiplier, key=key, expected_batch_size=expected_batch_size,
      denominator=denominator, rng=rng, axis_name=axis_name,
  )
  bands = len(coefs)
  inv0 = 1.0 / coefs[0]

  def init_fn(params):
    zeros = lambda: jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), compute_dtype(jnp.asarray(p).dtype)), params)
    return DpBandedAggregateState(
        count=jnp.zeros([], jnp.int32), key=keys.fresh(raw_key), history=tuple(zeros() for _ in range(bands - 1))
    )

  def update_fn(updates, state, params=None, *, per_example_grads=None, example_mask=None, **extra_args):
    del params, extra_args
    total, w, denom, new_key = _clipped_sum_and_noise(  # w_t = sigma C z_t
        "dp_banded_aggregate", updates, state.count, state.key, per_example_grads, example_mask, **hyperparams
    )
    hist = state.history
    if banded == "strategy":
      acc = w
      for j in range(1, bands):
        acc = jax.tree.map(lambda a, h, cj=coefs[j]: a - cj * h, acc, hist[j - 1])
      zeta = acc if inv0 == 1.0 else jax.tree.map(lambda a: a * inv0, acc)
      new_hist = (zeta, *hist[:-1]) if bands > 1 else ()
    else:
      zeta = w if coefs[0] == 1.0 else jax.tree.map(lambda a: coefs[0] * a, w)
      for j in range(1, bands):
        zeta = jax.tree.map(lambda a, h, cj=coefs[j]: a + cj * h, zeta, hist[j - 1])
      new_hist = (w, *hist[:-1]) if bands > 1 else ()
    out = _divide(total, zeta, updates, denom)
    if bands > 1:  # keep the state's dtypes (lax.cond-safe) whatever the gradient's dtype
      new_hist = tuple(jax.tree.map(lambda n, o: n.astype(o.dtype), nh, oh) for nh, oh in zip(new_hist, hist))
    new_state = DpBandedAggregateState(count=optax.safe_int32_increment(state.count), key=new_key, history=new_hist)
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
