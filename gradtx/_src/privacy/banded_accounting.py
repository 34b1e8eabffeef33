"""Privacy accounting of banded matrix-factorisation noise by reduction to DP-SGD events (dp-accounting)."""

import math
from typing import Any

from gradtx._src.privacy.accountant import ACCOUNTANTS, _check, _dp_accounting, _make_accountant, _quiet, _steps
from gradtx._src.privacy.banded_coefficients import BANDED, as_coefficients, banded_sensitivity


def banded_event(
    noise_multiplier: float,
    coefficients: Any,
    steps: int,
    *,
    sampling_rate: float | None = None,
    participations: int = 1,
    min_separation: int | None = None,
    banded: str = "strategy",
) -> Any:
  """The ``dp_accounting`` event :func:`banded_epsilon` accounts (see there for the cases)."""
  c = as_coefficients("banded_epsilon", coefficients)
  sigma = _check("banded_epsilon: noise_multiplier", noise_multiplier, 0.0, math.inf, left_open=True, right_open=True)
  if banded not in BANDED:
    raise ValueError(f"banded_epsilon: banded must be one of {BANDED}, got {banded!r}.")
  n = _steps(steps)
  if n < 1:
    raise ValueError(f"banded_epsilon: steps must be >= 1, got {steps!r}.")
  b = len(c)
  dpa = _dp_accounting()
  if sampling_rate is not None:
    q = _check("banded_epsilon: sampling_rate", sampling_rate, 0.0, 1.0, left_open=True, right_open=False)
    if banded != "strategy":
      raise NotImplementedError(
          "banded_epsilon: sampling amplification is proved for a banded C (banded='strategy', BandMF, "
          "arXiv:2306.08153); with a banded C^{-1} C is dense and dp_accounting has no amplified analysis. "
          "Account a single participation without sampling (sampling_rate=None) instead."
      )
    # BandMF with cyclic Poisson sampling over b partitions == DP-SGD with ceil(n/b) steps,
    # rate q, noise sigma / (column norm of C) (Choquette-Choo et al. 2023, Theorem 4).
    gaussian = dpa.GaussianDpEvent(sigma / banded_sensitivity(c, n))
    one = gaussian if q == 1.0 else dpa.PoissonSampledDpEvent(q, gaussian)
    return dpa.SelfComposedDpEvent(one, -(-n // b))
  # no sampling: k participations, each a Gaussian on a disjoint block of rows of C x
  sens = banded_sensitivity(c, n, banded=banded, participations=participations, min_separation=min_separation)
  k = int(participations)
  return dpa.SelfComposedDpEvent(dpa.GaussianDpEvent(sigma * math.sqrt(k) / sens), k)


def banded_epsilon(
    noise_multiplier: float,
    coefficients: Any,
    steps: int,
    delta: float,
    *,
    sampling_rate: float | None = None,
    participations: int = 1,
    min_separation: int | None = None,
    banded: str = "strategy",
    accountant: str = "rdp",
    value_discretization_interval: float = 1e-4,
) -> float:
  r"""Epsilon of :func:`gradtx.privacy.dp_banded_aggregate`'s correlated noise, where dp-accounting can say.

  The cases reduce the matrix mechanism to DP-SGD events (add-or-remove-one adjacency):

  - ``banded="strategy"`` with ``sampling_rate=q`` (amplified BandMF): the data are split into
    :math:`b` = ``len(coefficients)`` fixed partitions and step :math:`t` Poisson-samples
    partition :math:`t \bmod b` with rate :math:`q` (:func:`gradtx.privacy.poisson_batches`
    with ``partitions=b``); this is as private as DP-SGD with :math:`\lceil n/b \rceil` steps,
    rate :math:`q` and noise multiplier :math:`\sigma / \lVert c \rVert_2`.
  - ``banded="strategy"`` without sampling: each example takes part in at most
    ``participations`` steps at least ``min_separation >= b`` apart (e.g. epochs in a fixed
    order): :math:`k` Gaussian mechanisms with noise multiplier :math:`\sigma / \lVert c
    \rVert_2`, equivalently one with sensitivity :math:`\sqrt{k}\lVert c\rVert_2`.
  - ``banded="correlation"`` (:math:`C^{-1}` banded, :math:`C` dense), single participation
    without sampling: one Gaussian with noise multiplier :math:`\sigma / \lVert C e_1 \rVert_2`
    over the ``steps`` rows.

  Every other case raises ``NotImplementedError`` saying why.

  Args:
    noise_multiplier: :math:`\sigma` of :func:`gradtx.privacy.dp_banded_aggregate`, > 0.
    coefficients: the banded factor's first column (as given to the transformation).
    steps: :math:`n`, the number of steps, >= 1.
    delta: :math:`\delta`, in (0, 1).
    sampling_rate: :math:`q` within a partition, in (0, 1]; None: no sampling.
    participations: :math:`k`, >= 1, without sampling.
    min_separation: the fewest steps between two participations of one example (``k > 1``).
    banded: ``"strategy"`` or ``"correlation"``, as in the transformation.
    accountant: ``"rdp"`` or ``"pld"``.
    value_discretization_interval: the PLD grid, > 0.

  Returns:
    Epsilon, a float.

  Example:
    >>> c = gradtx.privacy.banded_sqrt_coefficients(bands=8)
    >>> gradtx.privacy.banded_epsilon(1.0, c, steps=2000, delta=1e-5, sampling_rate=0.02)

  References:
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.
    Choquette-Choo, McMahan, Rush & Thakurta, "Multi-Epoch Matrix Factorization Mechanisms for
    Private Machine Learning", arXiv:2211.06530.

  Notes:
    Not accounted (``NotImplementedError``): participations closer than ``b`` steps for a
    banded :math:`C`; several participations or sampling for a banded :math:`C^{-1}`; and
    schedules of :math:`\sigma` or the clip norm. The noise multiplier is constant here. To
    calibrate the amplified case, calibrate DP-SGD and scale:
    ``sigma = norm(c) * calibrate_noise_multiplier(eps, delta, q, ceil(n / b))``.
  """
  _check("banded_epsilon: delta", delta, 0.0, 1.0, left_open=True, right_open=True)
  if accountant not in ACCOUNTANTS:
    raise ValueError(f"banded_epsilon: accountant must be one of {ACCOUNTANTS}, got {accountant!r}.")
  event = banded_event(
      noise_multiplier, coefficients, steps, sampling_rate=sampling_rate, participations=participations,
      min_separation=min_separation, banded=banded,
  )
  acc = _make_accountant(_dp_accounting(), accountant, "add_or_remove_one", value_discretization_interval)
  with _quiet():
    acc.compose(event)
    return float(acc.get_epsilon(delta))
