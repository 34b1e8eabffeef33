"""Noise family: illegal hyperparameters and missing inputs give errors that name the argument."""

import jax.numpy as jnp
import pytest

import gradtx.noise as gn
from gradtx._src.optimizers.noise import adam_langevin, entropy_sgd, sghmc, sgld


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: gn.add_annealed_noise(-0.1, key=0), "eta"),
        (lambda: gn.add_annealed_noise(0.1, -1.0, key=0), "gamma"),
        (lambda: gn.add_annealed_noise(0.1, key=0, rng="mt19937"), "rng"),
        (lambda: sgld(-1.0, key=0), "learning_rate"),
        (lambda: sgld(0.1, key=0, temperature=-1.0), "temperature"),
        (lambda: sgld(0.1, key=0, preconditioner="adam"), "preconditioner"),
        (lambda: sghmc(0.1, friction=0.0, key=0), "friction"),
        (lambda: sghmc(0.1, friction=0.1, beta_hat=0.2, key=0), "beta_hat"),
        (lambda: adam_langevin(0.1, eps_root=0.0, key=0), "eps_root"),
        (lambda: adam_langevin(0.1, b1=1.0, key=0), "b1"),
        (lambda: entropy_sgd(0.1, inner_steps=-1, key=0), "inner_steps"),
        (lambda: entropy_sgd(0.1, alpha=0.0, key=0), "alpha"),
        (lambda: entropy_sgd(0.1, inner_learning_rate=0.0, key=0), "inner_learning_rate"),
        (lambda: gn.collect_samples(burn_in=-1), "burn_in"),
        (lambda: gn.collect_samples(thinning=0), "thinning"),
    ],
)
def test_illegal_hyperparameters(make, name):
  with pytest.raises(ValueError, match=name):
    make()


@pytest.mark.parametrize("make", [sgld, sghmc, adam_langevin, entropy_sgd])
def test_missing_key(make):
  with pytest.raises(TypeError, match="key"):
    make(0.1)
  with pytest.raises(TypeError, match="key"):
    make(0.1, key="seed")


def test_missing_inputs_are_named():
  p = {"w": jnp.ones((2, 2))}
  tx = entropy_sgd(0.1, key=0)
  with pytest.raises(TypeError, match="grad_fn="):
    tx.update(p, tx.init(p), p)
  with pytest.raises(TypeError, match="params="):
    tx.update(p, tx.init(p), grad_fn=lambda x: x)
  tx = gn.collect_samples()
  with pytest.raises(TypeError, match="params="):
    tx.update(p, tx.init(p))
