"""Banded Toeplitz factors for correlated-noise DP training: coefficients and their sensitivity (float64 NumPy)."""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

BANDED = ("strategy", "correlation")


def as_coefficients(where: str, coefficients: Any) -> tuple[float, ...]:
  """Validate a banded Toeplitz coefficient sequence: finite floats, the first one nonzero."""
  try:
    c = np.asarray(coefficients, np.float64).reshape(-1)
  except (TypeError, ValueError):
    raise ValueError(f"{where}: coefficients must be a sequence of floats, got {coefficients!r}.") from None
  if c.size == 0 or not np.all(np.isfinite(c)) or c[0] == 0.0:
    raise ValueError(
        f"{where}: coefficients must be a nonempty sequence of finite floats with coefficients[0] != 0, "
        f"got {coefficients!r}; e.g. gradtx.privacy.banded_sqrt_coefficients(bands=4)."
    )
  return tuple(float(x) for x in c)


def _bands(where: str, bands: Any) -> int:
  if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 1:
    raise ValueError(f"{where}: bands must be an int >= 1, got {bands!r}.")
  return int(bands)


def _nu(where: str, nu: Any) -> float:
  x = float(nu)
  if not 0.0 <= x <= 1.0 or math.isnan(x):
    raise ValueError(f"{where}: nu must be in [0, 1], got {nu!r}.")
  return x


def _power_series(exponent: float, bands: int, nu: float) -> np.ndarray:
  """The first ``bands`` coefficients of (1 - (1 - nu) x)^exponent, in float64."""
  out = np.empty(bands)
  out[0] = 1.0
  for k in range(1, bands):  # (-1)^k binom(e, k) = prod_{i<k} (i - e) / (i + 1)
    out[k] = out[k - 1] * (k - 1 - exponent) / k * (1.0 - nu)
  return out


def banded_sqrt_coefficients(bands: int, nu: float = 0.0) -> tuple[float, ...]:
  r"""A banded strategy factor :math:`C`: the first ``bands`` coefficients of :math:`(1-(1-\nu)x)^{-1/2}`, unit norm.

  The square root of the prefix-sum matrix (:math:`\nu = 0`) truncated to ``bands`` diagonals,
  scaled so each full column of :math:`C` has norm 1: then
  :func:`gradtx.privacy.dp_banded_aggregate` with noise multiplier :math:`\sigma` has the privacy
  of DP-SGD with :math:`\sigma` (under the banded accounting of
  :func:`gradtx.privacy.banded_epsilon`).

  .. math::
    c_k \propto \binom{2k}{k} 4^{-k} (1 - \nu)^k, \quad k < b, \qquad \lVert c \rVert_2 = 1.

  Args:
    bands: :math:`b`, >= 1 (1: independent noise, DP-SGD).
    nu: damping :math:`\nu` in [0, 1] (1: independent noise).

  Returns:
    A tuple of ``bands`` floats for ``dp_banded_aggregate(..., banded="strategy")``.

  Example:
    >>> c = gradtx.privacy.banded_sqrt_coefficients(bands=8)

  References:
    Kalinin & Lampert, "Banded Square Root Matrix Factorization for Differentially Private Model
    Training", arXiv:2405.13763.
    Choquette-Choo, Dvijotham, Pillutla, Ganesh, Steinke & Thakurta, "Correlated Noise Provably
    Beats Independent Noise for Differentially Private Learning", arXiv:2310.06771 (the
    :math:`\nu`-damped square root).
  """
  c = _power_series(-0.5, _bands("banded_sqrt_coefficients", bands), _nu("banded_sqrt_coefficients", nu))
  return tuple(float(x) for x in c / np.linalg.norm(c))


def nu_dp_ftrl_coefficients(bands: int, nu: float) -> tuple[float, ...]:
  r"""The noise correlation of :math:`\nu`-DP-FTRL truncated to ``bands`` taps: :math:`C^{-1}`'s coefficients.

  .. math::
    \beta_k = (-1)^k \binom{1/2}{k} (1 - \nu)^k, \quad k < b,

  the coefficients of :math:`\sqrt{1 - (1-\nu) x}`. Not normalised: the sensitivity depends on
  the number of steps (:func:`gradtx.privacy.banded_sensitivity` with ``banded="correlation"``).

  Args:
    bands: :math:`b`, >= 1.
    nu: :math:`\nu` in [0, 1].

  Returns:
    A tuple of ``bands`` floats for ``dp_banded_aggregate(..., banded="correlation")``.

  Example:
    >>> beta = gradtx.privacy.nu_dp_ftrl_coefficients(bands=16, nu=0.05)

  References:
    Choquette-Choo, Dvijotham, Pillutla, Ganesh, Steinke & Thakurta, "Correlated Noise Provably
    Beats Independent Noise for Differentially Private Learning", arXiv:2310.06771.

  Notes:
    The paper's noise uses all :math:`t` past draws; truncating to ``bands`` keeps the memory at
    ``bands - 1`` parameter-sized trees. The truncated series :math:`1 - \sum_{k \ge 1}
    |\beta_k| x^k` has no zero in the closed unit disc, so :math:`C` stays bounded.
  """
  beta = _power_series(0.5, _bands("nu_dp_ftrl_coefficients", bands), _nu("nu_dp_ftrl_coefficients", nu))
  return tuple(float(x) for x in beta)


def inverse_series(coefficients: Sequence[float] | np.ndarray, steps: int) -> np.ndarray:
  """The first ``steps`` coefficients of 1 / c(x): the first column of the inverse lower-triangular Toeplitz matrix."""
  c = np.asarray(coefficients, np.float64)
  b = c.size
  r = np.zeros(steps)
  inv0 = 1.0 / c[0]
  for k in range(steps):
    acc = 1.0 if k == 0 else 0.0
    m = min(k, b - 1)
    if m:
      acc -= np.dot(c[1 : m + 1], r[k - 1 :: -1][:m])
    r[k] = acc * inv0
  return r


def banded_sensitivity(
    coefficients: Sequence[float],
    steps: int,
    *,
    banded: str = "strategy",
    participations: int = 1,
    min_separation: int | None = None,
) -> float:
  r"""The L2 sensitivity of the factor :math:`C`: the largest norm of a sum of its participating columns.

  For :math:`C` (lower-triangular Toeplitz, ``steps`` rows) an example participating at steps
  :math:`i_1 < \dots < i_k` changes :math:`C x` by at most :math:`\lVert \sum_m C e_{i_m} \rVert`
  (per unit of clip norm). ``banded="strategy"``: :math:`C` is b-banded with first column
  ``coefficients``; with ``min_separation >= b`` the columns have disjoint support, so the
  sensitivity is :math:`\sqrt{k}\,\lVert c_{:\min(b, n)} \rVert_2`. ``banded="correlation"``:
  :math:`C^{-1}` is banded and :math:`C`'s first column is the inverse series of the
  coefficients over the ``steps`` steps; single participation only.

  Args:
    coefficients: the banded factor's first column.
    steps: :math:`n`, >= 1.
    banded: ``"strategy"`` (:math:`C` banded, BandMF) or ``"correlation"`` (:math:`C^{-1}` banded).
    participations: :math:`k`, >= 1, the most steps one example takes part in.
    min_separation: the fewest steps between two participations (needed when :math:`k > 1`).

  Returns:
    The sensitivity per unit clip norm, a float (an upper bound when the last participation
    is within ``b`` steps of the end, exact otherwise).

  Example:
    >>> gradtx.privacy.banded_sensitivity(gradtx.privacy.banded_sqrt_coefficients(4), 1000)  # 1.0

  References:
    Choquette-Choo, McMahan, Rush & Thakurta, "Multi-Epoch Matrix Factorization Mechanisms for
    Private Machine Learning", arXiv:2211.06530.
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.
  """
  c = as_coefficients("banded_sensitivity", coefficients)
  if banded not in BANDED:
    raise ValueError(f"banded_sensitivity: banded must be one of {BANDED}, got {banded!r}.")
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"banded_sensitivity: steps must be an int >= 1, got {steps!r}.")
  if isinstance(participations, bool) or int(participations) != participations or participations < 1:
    raise ValueError(f"banded_sensitivity: participations must be an int >= 1, got {participations!r}.")
  n, k, b = int(steps), int(participations), len(c)
  if banded == "correlation":
    if k > 1:
      raise NotImplementedError(
          "banded_sensitivity: with a banded C^{-1} (banded='correlation') C is dense, so the columns of "
          "several participations overlap and the sensitivity depends on the participation pattern; only "
          "participations=1 is computed. Use banded='strategy' (BandMF) for multiple participations."
      )
    return float(np.linalg.norm(inverse_series(c, n)))
  if k > 1 and (min_separation is None or min_separation < b):
    raise NotImplementedError(
        f"banded_sensitivity: {k} participations need min_separation >= bands = {b} (disjoint column "
        f"supports), got min_separation={min_separation!r}; overlapping participations of a banded C "
        f"need the multi-epoch analysis of arXiv:2211.06530, which is not implemented."
    )
  return math.sqrt(k) * float(np.linalg.norm(np.asarray(c[: min(b, n)])))


def prefix_sum_loss(coefficients: Sequence[float], steps: int) -> tuple[float, np.ndarray]:
  r"""The squared error of the prefix-sum matrix mechanism with a banded Toeplitz strategy, and its gradient.

  :math:`L(c) = \lVert c \rVert_2^2 \, \lVert A C^{-1} \rVert_F^2 = \lVert c\rVert_2^2 \sum_{k<n}
  (n - k)\, s_k^2` with :math:`s = \mathrm{cumsum}(r)`, :math:`r` the first :math:`n` coefficients
  of :math:`1/c(x)` (sensitivity :math:`\lVert c \rVert_2` times the total noise variance of all
  prefix sums, for unit noise). The gradient uses :math:`\partial r / \partial c_j = -(r * r)_{\cdot - j}`.
  """
  c = np.asarray(coefficients, np.float64)
  n = int(steps)
  with np.errstate(over="ignore", invalid="ignore"):  # an unstable trial c (line search) overflows
    r = inverse_series(c, n)
    s = np.cumsum(r)
    w = n - np.arange(n, dtype=np.float64)
    f = float(np.dot(w, s * s))
    if not np.isfinite(f):
      return math.inf, np.full(c.shape, np.nan)
    g = np.cumsum((2.0 * w * s)[::-1])[::-1]  # dF/dr_m = sum_{k >= m} 2 w_k s_k
    size = 1 << (2 * n - 1).bit_length()
    q = np.fft.irfft(np.fft.rfft(r, size) ** 2, size)[:n]  # r * r, truncated
    df = np.array([-np.dot(g[j:], q[: n - j]) for j in range(c.size)])
  norm2 = float(np.dot(c, c))
  return norm2 * f, 2.0 * c * f + norm2 * df


def optimal_banded_coefficients(bands: int, steps: int, *, max_iterations: int = 200) -> tuple[float, ...]:
  r"""Banded Toeplitz strategy coefficients that minimise the prefix-sum error for ``steps`` steps (float64).

  Minimises :func:`prefix_sum_loss` (scale-invariant) over :math:`c_1, \dots, c_{b-1}` with
  :math:`c_0 = 1` by BFGS with a backtracking line search, starting from
  :func:`banded_sqrt_coefficients`; returns the minimiser scaled to :math:`\lVert c \rVert_2 = 1`.
  Every accepted step lowers the loss, so the result is never worse than the banded square root.

  Args:
    bands: :math:`b`, >= 1 (cut to ``steps``).
    steps: :math:`n`, >= 1, the number of training steps the factor is optimised for.
    max_iterations: BFGS iterations, >= 1.

  Returns:
    A tuple of ``min(bands, steps)`` floats with unit norm, for ``banded="strategy"``.

  Example:
    >>> c = gradtx.privacy.optimal_banded_coefficients(bands=8, steps=1000)

  References:
    Choquette-Choo, Ganesh, McMahan, Rush, Steinke & Thakurta, "(Amplified) Banded Matrix
    Factorizations: A unified approach to private training", arXiv:2306.08153.

  Notes:
    The objective is the prefix-sum workload (SGD without momentum, single participation
    error), optimised over Toeplitz banded strategies only (the paper also optimises
    non-Toeplitz banded ones). A local optimum: the problem is not convex in :math:`c`. Each
    loss evaluation costs :math:`O(n b)` in a Python loop over the steps: about 0.1 s for 16
    bands and 1,000 steps, a few seconds for 64 bands and 2,000 steps (once, at factory time).
  """
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"optimal_banded_coefficients: steps must be an int >= 1, got {steps!r}.")
  b = min(_bands("optimal_banded_coefficients", bands), int(steps))
  if b == 1:
    return (1.0,)
  c = np.asarray(banded_sqrt_coefficients(b))
  x = c[1:] / c[0]

  def fg(v):
    loss, grad = prefix_sum_loss(np.concatenate([[1.0], v]), steps)
    return loss, grad[1:]

  f, g = fg(x)
  h = np.eye(b - 1)
  for _ in range(int(max_iterations)):
    d = -h @ g
    if np.dot(d, g) >= 0:  # not a descent direction: restart from steepest descent
      h, d = np.eye(b - 1), -g
    t = 1.0
    while True:
      f_new, g_new = fg(x + t * d)
      if f_new <= f + 1e-4 * t * np.dot(g, d) or t < 1e-12:
        break
      t *= 0.5
    if not f_new < f:
      break
    s, y = t * d, g_new - g
    x, f_prev, f, g = x + s, f, f_new, g_new
    sy = float(np.dot(s, y))
    if sy > 1e-300:
      rho = 1.0 / sy
      i = np.eye(b - 1)
      h = (i - rho * np.outer(s, y)) @ h @ (i - rho * np.outer(y, s)) + rho * np.outer(s, s)
    if f_prev - f <= 1e-13 * abs(f):
      break
  c = np.concatenate([[1.0], x])
  return tuple(float(v) for v in c / np.linalg.norm(c))
