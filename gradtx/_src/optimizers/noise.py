"""Noise-injection and Langevin optimizers: SGLD, SGHMC, Adam-LMC and Entropy-SGD."""

from typing import Any

import optax

from gradtx._src.core.registry import register
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate
from gradtx._src.moments.trace import trace
from gradtx._src.noise.scale_by_adam_langevin import scale_by_adam_langevin
from gradtx._src.noise.scale_by_entropy_sgd import scale_by_entropy_sgd
from gradtx._src.noise.scale_by_sghmc import scale_by_sghmc
from gradtx._src.noise.scale_by_sgld import scale_by_sgld


@register(
    family="noise",
    paper="Bayesian Learning via Stochastic Gradient Langevin Dynamics",
    needs_key=True,
    test_kwargs={"learning_rate": 0.004, "temperature": 1e-9, "key": 0},
    race_kwargs={"learning_rate": 0.2, "temperature": 1e-6, "key": 0},
    static_args=("key", "preconditioner", "rng"),
)
def sgld(
    learning_rate: Any,
    *,
    key: Any = None,
    temperature: Any = 1.0,
    preconditioner: str | None = None,
    decay: Any = 0.99,
    eps: Any = 1e-5,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""Stochastic gradient Langevin dynamics, optionally RMSProp-preconditioned (pSGLD).

  .. math::
    u_t = -\tfrac{\eta_t}{2} G_t \nabla U(\theta_t) + \sqrt{\eta_t T}\, G_t^{1/2} \xi_t
    \quad\text{(see :func:`scale_by_sgld`)}.

  Args:
    learning_rate: :math:`\eta`, >= 0; a float or a schedule (e.g. :math:`a(b+t)^{-0.55}`).
    key: an int seed or PRNG key (required).
    temperature: :math:`T`, >= 0; 1 samples :math:`\propto e^{-U}`.
    preconditioner: None or ``"rmsprop"`` (pSGLD).
    decay: decay of the pSGLD second moment, in [0, 1).
    eps: pSGLD's :math:`\lambda`, >= 0.
    rng: ``"fast"`` or ``"threefry"``.

  Returns:
    ``chain(scale_by_sgld(...))``; the loss should be the full-data negative log posterior.

  Example:
    >>> opt = gradtx.sgld(1e-4, key=0)
    >>> # sample: after burn-in, the params are (approximate) posterior draws

  References:
    Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics", ICML 2011.
    Li, Chen, Carlson & Carin, "Preconditioned Stochastic Gradient Langevin Dynamics for Deep
    Neural Networks", arXiv:1512.07666.

  Notes:
    A mean (not sum) loss samples a posterior tempered by the data size N; multiply the loss by
    N or set ``temperature = 1/N``.
  """
  return optax.chain(
      scale_by_sgld(
          learning_rate, temperature, key=key, preconditioner=preconditioner, decay=decay, eps=eps, rng=rng
      )
  )


@register(
    family="noise",
    paper="Stochastic Gradient Hamiltonian Monte Carlo",
    arxiv="1402.4102",
    needs_key=True,
    test_kwargs={"learning_rate": 0.0005, "friction": 0.1, "temperature": 1e-9, "key": 0},
    race_kwargs={"learning_rate": 0.01, "friction": 0.1, "temperature": 1e-6, "key": 0},
    static_args=("key", "rng"),
)
def sghmc(
    learning_rate: Any,
    friction: Any = 0.1,
    *,
    key: Any = None,
    temperature: Any = 1.0,
    beta_hat: Any = 0.0,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""Stochastic gradient Hamiltonian Monte Carlo.

  .. math::
    v_t = (1-\alpha) v_{t-1} - \eta \nabla U(\theta_t) + \sqrt{2(\alpha-\hat\beta)\eta T}\,\xi_t,
    \qquad u_t = v_t \quad\text{(see :func:`scale_by_sghmc`)}.

  Args:
    learning_rate: :math:`\eta`, >= 0; a float or a schedule.
    friction: :math:`\alpha`, in (0, 1].
    key: an int seed or PRNG key (required).
    temperature: :math:`T`, >= 0.
    beta_hat: :math:`\hat\beta`, in [0, friction].
    rng: ``"fast"`` or ``"threefry"``.

  Returns:
    ``chain(scale_by_sghmc(...))``.

  Example:
    >>> opt = gradtx.sghmc(1e-3, friction=0.1, key=0)

  References:
    Chen, Fox & Guestrin, "Stochastic Gradient Hamiltonian Monte Carlo", arXiv:1402.4102.
  """
  return optax.chain(
      scale_by_sghmc(learning_rate, friction, temperature, beta_hat=beta_hat, key=key, rng=rng)
  )


@register(
    family="noise",
    paper="Provable and Practical: Efficient Exploration in Reinforcement Learning via Langevin Monte Carlo",
    arxiv="2305.18246",
    needs_key=True,
    test_kwargs={"learning_rate": 0.002, "temperature": 1e-9, "key": 0},
    race_kwargs={"learning_rate": 0.01, "temperature": 1e-6, "key": 0},
    static_args=("key", "rng"),
)
def adam_langevin(
    learning_rate: Any,
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps_root: Any = 1e-8,
    *,
    key: Any = None,
    bias_factor: Any = 1.0,
    temperature: Any = 1.0,
    mu_dtype: Any = None,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""Adam Langevin Monte Carlo: Langevin dynamics with an Adam-style adaptive drift.

  .. math::
    u_t = -\eta\big(g_t + a\, m_{t-1} / \sqrt{v_{t-1} + \lambda_1}\big) + \sqrt{2\eta T}\,\xi_t
    \quad\text{(see :func:`scale_by_adam_langevin`)}.

  Args:
    learning_rate: :math:`\eta`, >= 0; a float or a schedule.
    b1: first-moment decay, in [0, 1).
    b2: second-moment decay, in [0, 1).
    eps_root: :math:`\lambda_1`, inside the square root, > 0.
    key: an int seed or PRNG key (required).
    bias_factor: :math:`a`, >= 0.
    temperature: :math:`T = 1/\beta`, >= 0.
    mu_dtype: dtype of the first moment.
    rng: ``"fast"`` or ``"threefry"``.

  Returns:
    ``chain(scale_by_adam_langevin(...))``.

  Example:
    >>> opt = gradtx.adam_langevin(1e-3, temperature=1e-4, key=0)

  References:
    Ishfaq et al., "Provable and Practical: Efficient Exploration in Reinforcement Learning via
    Langevin Monte Carlo", arXiv:2305.18246.
  """
  return optax.chain(
      scale_by_adam_langevin(
          learning_rate, b1, b2, eps_root, bias_factor=bias_factor, temperature=temperature, key=key,
          mu_dtype=mu_dtype, rng=rng,
      )
  )


@register(
    family="noise",
    paper="Entropy-SGD: Biasing Gradient Descent Into Wide Valleys",
    arxiv="1611.01838",
    extra_inputs=("grad_fn",),
    needs_key=True,
    test_kwargs={
        "learning_rate": 0.05, "gamma": 1.0, "inner_steps": 5, "inner_learning_rate": 0.002, "key": 0,
    },
    race_kwargs={"learning_rate": 0.5, "inner_steps": 5, "inner_learning_rate": 0.05, "key": 0},
    static_args=("key", "inner_steps", "nesterov", "rng"),
)
def entropy_sgd(
    learning_rate: Any,
    momentum: Any = 0.9,
    *,
    key: Any = None,
    nesterov: bool = True,
    gamma: Any = 0.03,
    scoping: Any = 1e-3,
    inner_steps: int = 20,
    inner_learning_rate: Any = 0.1,
    alpha: Any = 0.75,
    thermal_noise: Any = 1e-4,
    rng: str = "fast",
) -> optax.GradientTransformationExtraArgs:
  r"""Entropy-SGD: descend the local entropy, estimated by an inner Langevin loop.

  .. math::
    u_t = -\eta_t\, \mathrm{NAG}\big(\gamma_k (x - \mu_L)\big)
    \quad\text{(inner loop: see :func:`scale_by_entropy_sgd`)}.

  Args:
    learning_rate: :math:`\eta`, the outer learning rate, >= 0; a float or a schedule.
    momentum: outer momentum, in [0, 1) (the official code uses Nesterov 0.9).
    key: an int seed or PRNG key (required).
    nesterov: Nesterov look-ahead on the outer momentum.
    gamma: :math:`\gamma_0`, the initial scope, >= 0.
    scoping: :math:`\gamma_1`: the scope grows by :math:`(1 + \gamma_1)` per step.
    inner_steps: :math:`L` (static).
    inner_learning_rate: :math:`\eta'`, > 0.
    alpha: averaging weight of the inner mean, in (0, 1].
    thermal_noise: :math:`\varepsilon`, the inner noise scale, >= 0.
    rng: ``"fast"`` or ``"threefry"``.

  Returns:
    ``chain(scale_by_entropy_sgd(...), trace(momentum, nesterov), scale_by_learning_rate)``;
    ``update`` needs ``params`` and ``grad_fn=``.

  Example:
    >>> opt = gradtx.entropy_sgd(1.0, key=0)
    >>> u, s = opt.update(g, s, params, grad_fn=jax.grad(lambda p: loss(p, batch)))

  References:
    Chaudhari et al., "Entropy-SGD: Biasing Gradient Descent Into Wide Valleys", arXiv:1611.01838.

  Notes:
    See :func:`scale_by_entropy_sgd` for the inner loop's batch and first-step conventions.
  """
  return optax.chain(
      scale_by_entropy_sgd(
          gamma, scoping, inner_steps=inner_steps, inner_learning_rate=inner_learning_rate,
          alpha=alpha, thermal_noise=thermal_noise, key=key, rng=rng,
      ),
      trace(momentum, nesterov=nesterov),
      scale_by_learning_rate(learning_rate),
  )
