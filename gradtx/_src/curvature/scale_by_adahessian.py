"""AdaHessian: Adam with the squared Hutchinson Hessian diagonal in place of squared gradients."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import keys, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype
from gradtx._src.curvature.diag_source import hessian_diag_source
from gradtx._src.curvature.probes import PROBES


class ScaleByAdahessianState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment of the gradients, in mu_dtype
  nu: optax.Updates  # EMA of the squared (averaged) Hessian diagonal, in the params' dtype
  key: jax.Array  # raw PRNG key, split every step


def spatial_average(d: jax.Array) -> jax.Array:
  """AdaHessian's official spatial averaging, mapped to JAX layouts.

  1-D and scalars: unchanged. Dense ``(in, out)``: mean over axis 0 (every output unit shares
  one value, torch's row mean of ``(out, in)``). Conv1d ``(W, I, O)``: mean over axis 0.
  Conv2d ``(H, W, I, O)``: mean over axes 0 and 1 (the kernel window). Higher ranks: mean over
  every axis but the last two.
  """
  if d.ndim <= 1:
    return d
  if d.ndim <= 3:
    axes: tuple[int, ...] = (0,)
  else:
    axes = tuple(range(d.ndim - 2))
  return jnp.broadcast_to(jnp.mean(d, axis=axes, keepdims=True), d.shape)


def scale_by_adahessian(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-4,
    hessian_power: Any = 1.0,
    *,
    spatial_averaging: str | None = None,
    probe: str = "rademacher",
    num_probes: int = 1,
    key: Any = 0,
    mu_dtype: Any = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by AdaHessian's bias-corrected momentum over the RMS Hessian diagonal.

  .. math::
    D_t = |z \odot (H_t z)|\ \text{(optionally spatially averaged)},\quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) D_t^2,\\
    u_t = \frac{m_t / (1-\beta_1^t)}{\left(\sqrt{v_t} / \sqrt{1-\beta_2^t}\right)^{k} + \epsilon}.

  ``update`` takes ``obj_fn=`` (the loss of params on the current batch) or ``hessian_diag=``
  (an estimate the training loop computed itself) as keyword extra inputs, every step.

  Args:
    b1: gradient EMA decay, in [0, 1).
    b2: Hessian EMA decay, in [0, 1).
    eps: added to the denominator, >= 0 (official default 1e-4).
    hessian_power: :math:`k`, in [0, 1]; 1 is AdaHessian, 0 turns it into momentum SGD.
    spatial_averaging: None (pure per-coordinate Hutchinson) or "official" (mean of
      :math:`|D|` per output unit of dense and convolution kernels, see :func:`spatial_average`).
    probe: "rademacher" or "gaussian".
    num_probes: Hutchinson probes per step (Python int >= 1).
    key: int seed or PRNG key; split every step, probe ``j`` is drawn from ``fold_in(subkey, j)``.
    mu_dtype: dtype of the first moment.
    axis_name: average the estimate over this mapped axis (data parallelism).

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.curvature.scale_by_adahessian(), gradtx.scale_by_learning_rate(0.15))
    >>> updates, state = tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))

  References:
    Yao, Gholami, Shen, Mustafa, Keutzer & Mahoney, "ADAHESSIAN: An Adaptive Second Order
    Optimizer for Machine Learning", arXiv:2006.00719.

  Notes:
    Spatial averaging is off by default (the official code always averages conv kernels and
    dense rows); "official" maps its torch-layout rules to JAX layouts. The absolute value is
    taken before averaging, as in the official code (without averaging it has no effect).
    davda54/ada-hessian uses eps 1e-8 and averages only 4-D kernels.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("eps", eps)
  validate.in_range("hessian_power", hessian_power, 0.0, 1.0)
  validate.one_of("spatial_averaging", spatial_averaging, (None, "official"))
  validate.one_of("probe", probe, tuple(PROBES))
  validate.positive_int("num_probes", num_probes)
  seed = keys.as_key(key)

  def init_fn(params):
    return ScaleByAdahessianState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
        key=keys.fresh(seed),
    )

  def update_fn(updates, state, params=None, *, obj_fn=None, hessian_diag=None, **extra_args):
    del extra_args
    check_matching("scale_by_adahessian", updates, state.nu, ("updates", "state"))
    estimate = hessian_diag_source(
        "scale_by_adahessian", params, state.nu, obj_fn=obj_fn, hessian_diag=hessian_diag,
        num_probes=num_probes, probe=probe, axis_name=axis_name,
    )
    new_key, use = keys.split(state.key)
    diag = jax.tree.map(lambda d: jnp.abs(d.astype(compute_dtype(d.dtype))), estimate(use))
    if spatial_averaging == "official":
      diag = jax.tree.map(spatial_average, diag)
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    mu = ema(updates, state.mu, beta1, 1)
    nu = ema(diag, state.nu, beta2, 2)
    t = state.count + 1
    c1 = 1.0 / (1.0 - power(beta1, t))
    c2 = 1.0 / (1.0 - power(beta2, t))
    e = resolve(eps, state.count)
    k = resolve(hessian_power, state.count)
    unit_power = isinstance(k, (int, float)) and k == 1

    def step(g, m, v):
      dt = compute_dtype(g.dtype)
      root = jnp.sqrt(v.astype(dt) * c2)
      den = (root if unit_power else jnp.power(root, k)) + e
      return (c1 * m.astype(dt) / den).astype(g.dtype)

    out = jax.tree.map(step, updates, mu, nu)
    return out, ScaleByAdahessianState(count=optax.safe_int32_increment(state.count), mu=mu, nu=nu, key=new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
