"""Noise and Langevin transformations against float64 NumPy references, noise supplied from outside."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx.noise as gn
from gradtx._src.core import keys
from gradtx._src.core.rng import normal_like
from gradtx._src.optimizers.noise import adam_langevin, entropy_sgd, sghmc, sgld
from tests.reference import noise_ref as ref
from tests.reference.compare import compare_trajectories
from tests.reference.problems import PROBLEMS


def noise_supplier(seed, like, rng="fast", steps=60):
  """The noise gradtx draws at each step: key_{t+1}, use_t = split(key_t); one fold per leaf."""
  key = keys.as_key(seed)
  like = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), like)
  draw = jax.jit(lambda k: (lambda new, use: (new, normal_like(use, like, rng)))(*keys.split(k)))
  table = []
  for _ in range(steps):
    key, z = draw(key)
    table.append({k: np.asarray(v) for k, v in z.items()})
  return lambda t: table[t]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("eta, gamma, rng", [(0.01, 0.55, "fast"), (0.3, 1.0, "threefry")])
def test_annealed_noise(problem, eta, gamma, rng):
  loss, init = PROBLEMS[problem]()
  tx = optax.chain(gn.add_annealed_noise(eta, gamma, key=3, rng=rng), optax.scale(-0.1))
  reference = ref.AnnealedNoiseSgd(eta, gamma, 0.1, noise_supplier(3, init, rng))
  compare_trajectories(tx, reference, loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [dict(learning_rate=0.05),
     dict(learning_rate=0.02, temperature=0.1, preconditioner="rmsprop", decay=0.9, eps=1e-3)],
)
def test_sgld(problem, kwargs):
  loss, init = PROBLEMS[problem]()
  tx = sgld(key=5, **kwargs)
  reference = ref.Sgld(
      kwargs["learning_rate"], kwargs.get("temperature", 1.0), noise_supplier(5, init),
      kwargs.get("preconditioner"), kwargs.get("decay", 0.99), kwargs.get("eps", 1e-5),
  )
  compare_trajectories(tx, reference, loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs", [dict(learning_rate=0.01), dict(learning_rate=0.02, friction=0.3, temperature=0.5, beta_hat=0.1)]
)
def test_sghmc(problem, kwargs):
  loss, init = PROBLEMS[problem]()
  reference = ref.Sghmc(
      kwargs["learning_rate"], kwargs.get("friction", 0.1), kwargs.get("temperature", 1.0),
      noise_supplier(7, init), kwargs.get("beta_hat", 0.0),
  )
  compare_trajectories(sghmc(key=7, **kwargs), reference, loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [dict(learning_rate=0.01),
     dict(learning_rate=0.02, b1=0.8, b2=0.9, eps_root=1e-4, bias_factor=0.5, temperature=0.01)],
)
def test_adam_langevin(problem, kwargs):
  loss, init = PROBLEMS[problem]()
  reference = ref.AdamLangevin(
      kwargs["learning_rate"], kwargs.get("b1", 0.9), kwargs.get("b2", 0.999), kwargs.get("eps_root", 1e-8),
      kwargs.get("bias_factor", 1.0), kwargs.get("temperature", 1.0), noise_supplier(9, init),
  )
  compare_trajectories(adam_langevin(key=9, **kwargs), reference, loss, init, steps=60)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize(
    "kwargs",
    [dict(learning_rate=0.5, inner_steps=4),
     dict(learning_rate=0.2, momentum=0.5, nesterov=False, gamma=0.3, scoping=0.01, inner_steps=3,
          inner_learning_rate=0.05, alpha=0.5, thermal_noise=0.01)],
)
def test_entropy_sgd(problem, kwargs):
  loss, init = PROBLEMS[problem]()
  full = dict(momentum=0.9, nesterov=True, gamma=0.03, scoping=1e-3, inner_learning_rate=0.1, alpha=0.75,
              thermal_noise=1e-4)
  full.update(kwargs)
  key = keys.as_key(11)
  like = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  inner = full["inner_steps"]
  draw = jax.jit(lambda k: (lambda new, use: (new, [normal_like(jax.random.fold_in(use, j), like)
                                                   for j in range(inner)]))(*keys.split(k)))
  table = []
  for _ in range(50):
    key, zs = draw(key)
    table.append([{k: np.asarray(v) for k, v in z.items()} for z in zs])
  grad = jax.jit(jax.grad(loss))
  reference = ref.EntropySgd(
      lambda x: {k: np.asarray(v) for k, v in grad(x).items()}, lambda t, j: table[t][j],
      full["learning_rate"], full["momentum"], full["gamma"], full["scoping"], full["inner_steps"],
      full["inner_learning_rate"], full["alpha"], full["thermal_noise"], full["nesterov"],
  )
  tx = entropy_sgd(key=11, **kwargs)
  compare_trajectories(tx, reference, loss, init, steps=50, extra_args=lambda p: {"grad_fn": jax.grad(loss)})


def test_collect_samples_matches_welford_reference():
  loss, init = PROBLEMS["least_squares"]()
  tx = optax.chain(sgld(0.05, key=1), gn.collect_samples(burn_in=7, thinning=3))
  reference = ref.Welford(7, 3)
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), init)
  state = tx.init(params)
  step = jax.jit(lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(*tx.update(jax.grad(loss)(p), s, p)))
  for _ in range(60):
    params, state = step(params, state)
    reference.observe(params)
  mean, var = gn.sample_moments(state)
  ref_mean, ref_var = reference.moments()
  assert int(state[1].num_samples) == len(reference.samples) == 18
  for k in ref_mean:
    np.testing.assert_allclose(mean[k], ref_mean[k], rtol=1e-10)
    np.testing.assert_allclose(var[k], ref_var[k], rtol=1e-10)
