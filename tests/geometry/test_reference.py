"""Each geometry optimizer against its float64 NumPy reference, 60 steps, rtol 1e-10, two problems."""

import pytest

from gradtx._src.optimizers import geometry as g
from tests.reference import geometry_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

SPECTRAL_L2 = {"w": "spectral", "b": "l2"}

# (name, gradtx optimizer, reference): defaults and non-default hyperparameters incl. decay.
CASES = [
    ("sign_sgd", lambda: g.sign_sgd(0.01), lambda: ref.SignSGD(0.01)),
    ("sign_sgd_wd", lambda: g.sign_sgd(0.01, weight_decay=0.1), lambda: ref.SignSGD(0.01, wd=0.1)),
    ("signum", lambda: g.signum(0.01), lambda: ref.Signum(0.01)),
    ("signum_b_wd", lambda: g.signum(0.02, b1=0.5, weight_decay=0.05), lambda: ref.Signum(0.02, 0.5, 0.05)),
    ("lion", lambda: g.lion(0.01), lambda: ref.Lion(0.01, wd=1e-3)),
    ("lion_b_wd", lambda: g.lion(0.02, b1=0.8, b2=0.95, weight_decay=0.1), lambda: ref.Lion(0.02, 0.8, 0.95, 0.1)),
    ("normalized_sgd", lambda: g.normalized_sgd(0.02), lambda: ref.NormalizedSGD(0.02)),
    ("normalized_sgd_leaf_wd", lambda: g.normalized_sgd(0.03, momentum=0.5, weight_decay=0.1, per_leaf=True),
     lambda: ref.NormalizedSGD(0.03, 0.5, 0.1, per_leaf=True)),
    ("muon", lambda: g.muon(0.02), lambda: ref.Muon(0.02)),
    ("muon_options", lambda: g.muon(0.03, b1=0.8, nesterov=False, ns_steps=3, weight_decay=0.05,
                                    shape_scaling="match_rms", adam_learning_rate=0.01),
     lambda: ref.Muon(0.03, 0.8, False, 3, 0.05, "match_rms", adam_lr=0.01)),
    ("muon_svd", lambda: g.muon(0.02, method="svd", shape_scaling="rms_to_rms"),
     lambda: ref.Muon(0.02, shape_scaling="rms_to_rms", exact=True)),
    ("auon", lambda: g.auon(0.02), lambda: ref.AuON(0.02)),
    ("auon_code_reading", lambda: g.auon(0.05, b1=0.9, gamma=1.0, weight_decay=0.05, normalize=False,
                                         adam_learning_rate=0.01),
     lambda: ref.AuON(0.05, 0.9, 1.0, 0.05, normalize=False, adam_lr=0.01)),
    ("steepest", lambda: g.steepest_descent(0.01, method="svd"),
     lambda: ref.SteepestDescent(0.01, SPECTRAL_L2)),
    ("steepest_dual_momentum_wd", lambda: g.steepest_descent(
        0.005, {"w": "rms_to_rms", "b": "linf"}, momentum=0.5, weight_decay=0.1, scale_by_dual_norm=True,
        method="eigh"),
     lambda: ref.SteepestDescent(0.005, {"w": "rms_to_rms", "b": "linf"}, 0.5, 0.1, True)),
]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_reference(case, problem):
  _, make_tx, make_ref = case
  loss, init = PROBLEMS[problem]()
  # rtol 1e-10: both sides run the same float64 math; only summation order differs.
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60, rtol=1e-10)
