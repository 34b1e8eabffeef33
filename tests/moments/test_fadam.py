"""FAdam: float64 reference, invariants (first step, RMS bound) and bad input."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx._src.moments.scale_by_fadam import scale_by_fadam
from gradtx._src.optimizers.adam_variants import fadam
from tests.moments.adam_variants_util import PARAMS, random_grads, run_updates
from tests.reference import fadam_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS

CASES = {
    "default_no_decay": (lambda: fadam(0.02, weight_decay=0.0), lambda: ref.FAdam(0.02)),
    "custom_decay_masked": (
        lambda: fadam(0.05, b1=0.8, b2=0.99, eps=1e-4, weight_decay=0.1, clip=0.5,
                      mask={"w": True, "b": False}),
        lambda: ref.FAdam(0.05, b1=0.8, b2=0.99, eps=1e-4, wd=0.1, clip=0.5, mask={"w": True, "b": False}),
    ),
    "exponent": (
        lambda: fadam(0.02, weight_decay=0.01, p=0.4, clip=2.0),
        lambda: ref.FAdam(0.02, wd=0.01, p=0.4, clip=2.0),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_float64_reference(case, problem):
  make_tx, make_ref = CASES[case]
  loss, init = PROBLEMS[problem]()
  compare_trajectories(make_tx(), make_ref(), loss, init, steps=60)


def test_first_update_is_a_tenth_of_the_sign():
  # t = 1: f = g^2, g/D ~ sign(g) (RMS ~ 1, no clip), momentum not bias-corrected.
  (g,) = random_grads(1)
  (u,) = run_updates(fadam(1.0, weight_decay=0.0), [g])
  chex.assert_trees_all_close(u, {k: -0.1 * np.sign(v) for k, v in g.items()}, rtol=1e-7)


def test_update_rms_is_bounded_by_lr_times_one_plus_wd():
  grads = [{k: v * s for k, v in g.items()} for g, s in zip(random_grads(30), np.geomspace(1e-3, 1e3, 30))]
  lr, wd = 0.1, 0.5
  for u in run_updates(fadam(lr, weight_decay=wd), grads):
    for x in u.values():
      assert np.sqrt(np.mean(np.square(np.asarray(x)))) <= lr * (1 + wd) * (1 + 1e-12)


def test_zero_gradient_gives_a_finite_zero_update():
  zero = {k: jnp.zeros_like(v) for k, v in PARAMS.items()}
  (u,) = run_updates(fadam(0.1, weight_decay=0.1), [zero])
  chex.assert_trees_all_close(u, zero, atol=0.0)


def test_decay_needs_params_unless_it_is_off():
  tx = scale_by_fadam(weight_decay=0.1)
  with pytest.raises(TypeError, match="params="):
    tx.update(PARAMS, tx.init(PARAMS))
  off = scale_by_fadam(weight_decay=0.0)
  jax.jit(off.update)(PARAMS, off.init(PARAMS))


def test_weight_decay_is_required():
  with pytest.raises(TypeError, match="weight_decay"):
    fadam(0.01)  # pylint: disable=missing-kwoa


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(b1=1.0), "b1"),
        (dict(b2=-1.0), "b2"),
        (dict(eps=-1.0), "eps"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(clip=0.0), "clip"),
        (dict(p=0.0), "p"),
        (dict(p=1.5), "p"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
  kwargs.setdefault("weight_decay", 0.0)
  with pytest.raises(ValueError, match=match):
    fadam(0.01, **kwargs)
