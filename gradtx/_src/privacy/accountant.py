"""Privacy accounting for DP-SGD: epsilon from (noise multiplier, sampling rate, steps, delta), and back.

Built on Google's ``dp-accounting`` package (``pip install 'gradtx[privacy]'``), imported lazily so
that gradtx imports without it.
"""

import contextlib
import dataclasses
import logging
import math
from typing import Any

import jax

from gradtx._src.privacy.dp_aggregate import DpAggregateState
from gradtx._src.privacy.dp_banded_aggregate import DpBandedAggregateState
from gradtx._src.privacy.dp_tree_aggregate import DpTreeAggregateState

ACCOUNTANTS = ("rdp", "pld")


def _dp_accounting():
  try:
    import dp_accounting  # noqa: PLC0415 (optional dependency, imported on first use)
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "gradtx.privacy's accountant needs the dp-accounting package: pip install 'gradtx[privacy]' "
        "(or pip install dp-accounting)."
    ) from e
  return dp_accounting


@contextlib.contextmanager
def _quiet():
  """Silence dp_accounting's absl warnings about RDP orders it drops (harmless: it takes the min over the rest)."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _check(name: str, value: Any, lo: float, hi: float, *, left_open: bool, right_open: bool) -> float:
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a number, got {value!r}.") from None
  ok = (x > lo if left_open else x >= lo) and (x < hi if right_open else x <= hi)
  if not ok or math.isnan(x):
    left, right = "(" if left_open else "[", ")" if right_open else "]"
    raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {value!r}.")
  return x


def _steps(steps: Any) -> int:
  if isinstance(steps, bool) or int(steps) != steps or int(steps) < 0:
    raise ValueError(f"steps must be an int >= 0, got {steps!r}.")
  return int(steps)


@dataclasses.dataclass(frozen=True)
class PrivacyAccountant:
  r"""The privacy cost of DP-SGD with Poisson sampling: epsilon for a given delta after any number of steps.

  One step is the Poisson-subsampled Gaussian mechanism (each example is in the batch with
  probability :math:`q`, noise :math:`\mathcal N(0, \sigma^2 C^2)` on the sum of clipped
  gradients); ``steps`` of them compose. ``"rdp"`` composes R\'enyi DP on a grid of orders and
  converts with the tight conversion of Canonne, Kamath & Steinke (as ``dp_accounting``);
  ``"pld"`` composes discretised privacy-loss distributions (tighter, slower).

  Args:
    noise_multiplier: :math:`\sigma`, > 0; or a noise multiplier that changes over the run:
      a sequence of ``(steps, sigma)`` segments run in order (e.g. ``[(1000, 2.0), (9000,
      1.1)]``), or a schedule ``step -> sigma`` (0-based, e.g. an ``optax`` schedule). The
      steps of equal :math:`\sigma` compose as one ``SelfComposedDpEvent`` each, and the
      segments as a ``ComposedDpEvent``.
    sampling_rate: :math:`q = \text{expected batch size} / N`, in (0, 1] (1: full batch).
    delta: the target :math:`\delta`, in (0, 1).
    accountant: ``"rdp"`` or ``"pld"``.
    neighboring: ``"add_or_remove_one"`` (the Poisson analysis) or ``"replace_one"``.
    value_discretization_interval: the PLD grid, > 0 (smaller: tighter and slower).

  Returns:
    An accountant; :meth:`epsilon` takes the step count (an int, or an optimizer state holding a
    :class:`DpAggregateState`).

  Example:
    >>> acc = gradtx.privacy.PrivacyAccountant(1.1, sampling_rate=256 / 60000, delta=1e-5)
    >>> acc.epsilon(steps=10_000)
    >>> acc.epsilon(opt_state)  # the steps taken so far

  References:
    Mironov, "R\'enyi Differential Privacy", arXiv:1702.07476.
    Mironov, Talwar & Zhang, "R\'enyi Differential Privacy of the Sampled Gaussian Mechanism",
    arXiv:1908.10530.
    Doroshenko, Ghazi, Kamath, Kumar & Manurangsi, "Connect the Dots: Tighter Discrete
    Approximations of Privacy Loss Distributions", arXiv:2207.04380.

  Notes:
    The guarantee assumes Poisson sampling (see :func:`gradtx.privacy.poisson_batches`). Shuffled
    fixed-size batches are not covered: reporting this epsilon for them can understate the loss
    (Chua et al., "How Private are DP-SGD Implementations?", arXiv:2403.17673). A schedule is
    evaluated at every step and grouped into runs of equal :math:`\sigma`; one that changes at
    every step builds one event per step (slow with ``"pld"`` for long runs: prefer segments).
    Asking for more steps than the segments cover raises. Correlated-noise mechanisms are
    accounted by :func:`gradtx.privacy.tree_aggregation_epsilon` and
    :func:`gradtx.privacy.banded_epsilon`.
  """

  noise_multiplier: float
  sampling_rate: float
  delta: float
  accountant: str = "rdp"
  neighboring: str = "add_or_remove_one"
  value_discretization_interval: float = 1e-4

  def __post_init__(self):
    if isinstance(self.noise_multiplier, (list, tuple)):
      object.__setattr__(self, "noise_multiplier", _as_segments(self.noise_multiplier))
    elif not callable(self.noise_multiplier):
      _check(
          "PrivacyAccountant: noise_multiplier", self.noise_multiplier, 0.0, math.inf, left_open=True, right_open=True
      )
    _check("PrivacyAccountant: sampling_rate", self.sampling_rate, 0.0, 1.0, left_open=True, right_open=False)
    _check("PrivacyAccountant: delta", self.delta, 0.0, 1.0, left_open=True, right_open=True)
    if self.accountant not in ACCOUNTANTS:
      raise ValueError(f"PrivacyAccountant: accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}.")
    if self.neighboring not in ("add_or_remove_one", "replace_one"):
      raise ValueError(
          f"PrivacyAccountant: neighboring must be 'add_or_remove_one' or 'replace_one', got {self.neighboring!r}."
      )
    _check(
        "PrivacyAccountant: value_discretization_interval", self.value_discretization_interval, 0.0, math.inf,
        left_open=True, right_open=True,
    )

  def event(self, steps: Any) -> Any:
    """The ``dp_accounting`` event of the first ``steps`` Poisson-subsampled Gaussian steps."""
    steps = _steps(steps)
    dpa = _dp_accounting()
    if not isinstance(self.noise_multiplier, tuple) and not callable(self.noise_multiplier):
      return _event(dpa, self.noise_multiplier, self.sampling_rate, steps)
    parts = _run_lengths(self.noise_multiplier, steps)
    if len(parts) == 1:
      return _event(dpa, parts[0][1], self.sampling_rate, parts[0][0])
    return dpa.ComposedDpEvent([_event(dpa, sigma, self.sampling_rate, n) for n, sigma in parts])

  def epsilon(self, steps: Any) -> float:
    """Epsilon at ``self.delta`` after ``steps`` steps (an int, or an optimizer state: its DP step count)."""
    if not isinstance(steps, (int, float)) and not hasattr(steps, "__index__"):
      steps = dp_steps(steps)
    steps = _steps(steps)
    if steps == 0:
      return 0.0
    acc = _make_accountant(_dp_accounting(), self.accountant, self.neighboring, self.value_discretization_interval)
    with _quiet():
      acc.compose(self.event(steps))
      return float(acc.get_epsilon(self.delta))


def _event(dpa, sigma: float, q: float, steps: int) -> Any:
  gaussian = dpa.GaussianDpEvent(sigma)
  one = gaussian if q == 1.0 else dpa.PoissonSampledDpEvent(q, gaussian)
  return dpa.SelfComposedDpEvent(one, steps)


def _as_segments(segments: Any) -> tuple[tuple[int, float], ...]:
  out = []
  for seg in segments:
    try:
      n, sigma = seg
    except (TypeError, ValueError):
      raise ValueError(
          f"PrivacyAccountant: noise_multiplier segments must be (steps, noise_multiplier) pairs, got {seg!r}."
      ) from None
    if isinstance(n, bool) or int(n) != n or int(n) < 0:
      raise ValueError(f"PrivacyAccountant: the steps of a noise_multiplier segment must be an int >= 0, got {n!r}.")
    sigma = _check("PrivacyAccountant: noise_multiplier", sigma, 0.0, math.inf, left_open=True, right_open=True)
    out.append((int(n), sigma))
  if not out:
    raise ValueError("PrivacyAccountant: noise_multiplier segments must not be empty.")
  return tuple(out)


def _schedule_values(schedule: Any, steps: int) -> list[float]:
  import numpy as np  # noqa: PLC0415

  try:
    array = np.broadcast_to(np.asarray(schedule(np.arange(steps)), np.float64), (steps,))
  except Exception:  # noqa: BLE001 - a schedule that does not vectorise: one call per step
    array = np.asarray([float(schedule(t)) for t in range(steps)], np.float64)
  values = [float(v) for v in array]
  for t, v in enumerate(values):
    if not v > 0 or math.isinf(v):
      raise ValueError(f"PrivacyAccountant: noise_multiplier schedule must be > 0 and finite, got {v!r} at step {t}.")
  return values


def _run_lengths(noise_multiplier: Any, steps: int) -> list[tuple[int, float]]:
  """The first ``steps`` steps as runs ``(length, sigma)`` of equal noise multiplier."""
  if isinstance(noise_multiplier, tuple):
    total = sum(n for n, _ in noise_multiplier)
    if steps > total:
      raise ValueError(
          f"PrivacyAccountant: steps={steps} exceeds the {total} steps the noise_multiplier segments cover."
      )
    values = []
    left = steps
    for n, sigma in noise_multiplier:
      take = min(n, left)
      if take:
        values.append((take, sigma))
      left -= take
  else:
    values = [(1, v) for v in _schedule_values(noise_multiplier, steps)]
  runs: list[tuple[int, float]] = []
  for n, sigma in values:
    if runs and runs[-1][1] == sigma:
      runs[-1] = (runs[-1][0] + n, sigma)
    else:
      runs.append((n, sigma))
  return runs or [(0, 1.0)]


def _make_accountant(dpa, kind: str, neighboring: str, interval: float) -> Any:
  relation = (
      dpa.NeighboringRelation.ADD_OR_REMOVE_ONE if neighboring == "add_or_remove_one"
      else dpa.NeighboringRelation.REPLACE_ONE
  )
  if kind == "rdp":
    return dpa.rdp.RdpAccountant(neighboring_relation=relation)
  return dpa.pld.PLDAccountant(neighboring_relation=relation, value_discretization_interval=interval)


def compute_epsilon(
    noise_multiplier: float,
    sampling_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: str = "rdp",
) -> float:
  r"""Epsilon of ``steps`` Poisson-subsampled Gaussian steps at ``delta`` (see :class:`PrivacyAccountant`).

  Args:
    noise_multiplier: :math:`\sigma`, > 0.
    sampling_rate: :math:`q`, in (0, 1].
    steps: number of steps, >= 0.
    delta: :math:`\delta`, in (0, 1).
    accountant: ``"rdp"`` or ``"pld"``.

  Returns:
    Epsilon, a float.

  Example:
    >>> gradtx.privacy.compute_epsilon(1.1, 256 / 60000, 10_000, 1e-5)
  """
  return PrivacyAccountant(noise_multiplier, sampling_rate, delta, accountant=accountant).epsilon(steps)


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sampling_rate: float,
    steps: int,
    *,
    accountant: str = "rdp",
    tol: float = 1e-6,
    value_discretization_interval: float = 1e-4,
) -> float:
  r"""The smallest noise multiplier whose epsilon after ``steps`` steps is at most ``target_epsilon``.

  A bracketing search (``dp_accounting.calibrate_dp_mechanism``) over :math:`\sigma` with
  :class:`PrivacyAccountant`'s events; the result is within ``tol`` of the exact solution. With
  ``"pld"`` the RDP solution (an upper bound) brackets the PLD search from above.

  Args:
    target_epsilon: > 0.
    delta: :math:`\delta`, in (0, 1).
    sampling_rate: :math:`q`, in (0, 1].
    steps: number of steps, >= 1.
    accountant: ``"rdp"`` or ``"pld"``.
    tol: tolerance on :math:`\sigma`, > 0.
    value_discretization_interval: the PLD grid (see :class:`PrivacyAccountant`).

  Returns:
    :math:`\sigma`, a float, with ``compute_epsilon(sigma, ...) <= target_epsilon``.

  Example:
    >>> sigma = gradtx.privacy.calibrate_noise_multiplier(3.0, 1e-5, 256 / 60000, 10_000)
  """
  _check("calibrate_noise_multiplier: target_epsilon", target_epsilon, 0.0, math.inf, left_open=True, right_open=True)
  _check("calibrate_noise_multiplier: tol", tol, 0.0, math.inf, left_open=True, right_open=True)
  if _steps(steps) < 1:
    raise ValueError(f"calibrate_noise_multiplier: steps must be >= 1, got {steps!r}.")
  base = PrivacyAccountant(  # validates the rest
      1.0, sampling_rate, delta, accountant=accountant, value_discretization_interval=value_discretization_interval
  )
  dpa = _dp_accounting()

  def calibrate(kind, bracket):
    with _quiet():
      return float(
          dpa.calibrate_dp_mechanism(
              lambda: _make_accountant(dpa, kind, base.neighboring, base.value_discretization_interval),
              lambda sigma: _event(dpa, sigma, float(sampling_rate), int(steps)),
              float(target_epsilon),
              float(delta),
              bracket_interval=bracket,
              tol=tol,
          )
      )

  sigma = calibrate("rdp", dpa.LowerEndpointAndGuess(1e-3, 1.0))
  if accountant == "rdp":
    return sigma
  # PLD is tighter, so its sigma is below RDP's. A bracket below RDP's sigma keeps the PLD
  # grid finite (a tiny sigma has a huge privacy loss range and exhausts memory).
  lo = sigma / 2
  for _ in range(20):
    if dataclasses.replace(base, noise_multiplier=lo).epsilon(int(steps)) > target_epsilon:
      break
    lo /= 2
  return calibrate("pld", dpa.ExplicitBracketInterval(lo, sigma))


def dp_steps(opt_state: Any) -> int:
  """The number of private releases recorded in an optimizer state (its private aggregation's count).

  Args:
    opt_state: the state of a chain containing :func:`gradtx.privacy.dp_aggregate`,
      :func:`gradtx.privacy.dp_banded_aggregate` or :func:`gradtx.privacy.dp_tree_aggregate`
      (e.g. of :func:`gradtx.dp_sgd` or :func:`gradtx.dp_ftrl`), possibly wrapped by
      ``optax.inject_hyperparams`` or flax.

  Returns:
    The step count, an int.

  Example:
    >>> eps = accountant.epsilon(gradtx.privacy.dp_steps(opt_state))
  """
  kinds = (DpAggregateState, DpBandedAggregateState, DpTreeAggregateState)
  found = [x for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, kinds)) if isinstance(x, kinds)]
  if not found:
    raise ValueError(
        "dp_steps: the optimizer state holds no DpAggregateState, DpBandedAggregateState or DpTreeAggregateState "
        "(no private aggregation in the chain)."
    )
  counts = {int(s.count) for s in found}
  if len(counts) > 1:
    raise ValueError(f"dp_steps: the state holds several dp_aggregate states with different counts {sorted(counts)}.")
  return counts.pop()


def tree_aggregation_epsilon(
    noise_multiplier: float,
    steps_per_tree: int,
    delta: float,
    *,
    trees: int = 1,
) -> float:
  r"""Epsilon of DP-FTRL's tree aggregation (RDP; ``dp_accounting``'s single-epoch tree event).

  Each example contributes to at most one step per tree; ``trees`` restarted trees (epochs)
  compose. No sampling amplification.

  Args:
    noise_multiplier: :math:`\sigma` per tree node, > 0.
    steps_per_tree: steps in each tree (``restart_every``, or all steps), >= 1.
    delta: :math:`\delta`, in (0, 1).
    trees: number of trees (epochs), >= 1; each example appears once in each.

  Returns:
    Epsilon, a float.

  Example:
    >>> gradtx.privacy.tree_aggregation_epsilon(4.0, steps_per_tree=240, delta=1e-5, trees=5)

  References:
    Kairouz et al., "Practical and Private (Deep) Learning without Sampling or Shuffling",
    arXiv:2103.00039 (appendix D).

  Notes:
    The neighbouring relation is ``dp_accounting``'s ``REPLACE_SPECIAL`` (one example's
    contribution replaced by a special zero one), the relation of Kairouz et al.'s analysis.
    Only RDP: ``dp_accounting``'s PLD accountant does not support tree aggregation.
    Multi-participation within one tree is not accounted; banded matrix-factorisation noise is
    accounted by :func:`gradtx.privacy.banded_epsilon`.
  """
  _check("tree_aggregation_epsilon: noise_multiplier", noise_multiplier, 0.0, math.inf, left_open=True, right_open=True)
  _check("tree_aggregation_epsilon: delta", delta, 0.0, 1.0, left_open=True, right_open=True)
  if _steps(steps_per_tree) < 1:
    raise ValueError(f"tree_aggregation_epsilon: steps_per_tree must be >= 1, got {steps_per_tree!r}.")
  if _steps(trees) < 1:
    raise ValueError(f"tree_aggregation_epsilon: trees must be >= 1, got {trees!r}.")
  dpa = _dp_accounting()
  # the relation dp_accounting requires for tree aggregation (Kairouz et al.'s replace-special)
  acc = dpa.rdp.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_SPECIAL)
  event = dpa.SingleEpochTreeAggregationDpEvent(float(noise_multiplier), int(steps_per_tree))
  with _quiet():
    acc.compose(dpa.SelfComposedDpEvent(event, int(trees)))
    return float(acc.get_epsilon(delta))
