"""Optimistic AMSGrad: AMSGrad plus an extra step along a predicted next momentum."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import validate
from gradtx._src.core.hyperparams import resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype, full_like

PREDICTORS = ("last", "zero")


class ScaleByOptimisticAmsgradState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment theta, in mu_dtype
  nu: optax.Updates  # second moment v (raw, uncorrected)
  nu_max: optax.Updates  # vhat = max(vhat, v), initialised to eps
  offset: optax.Updates  # q_t = h_t / sqrt(vhat_{t-1}): params = lazy point - lr * q_t


def scale_by_optimistic_amsgrad(
    b1: Any = 0.9,
    b2: Any = 0.999,
    eps: Any = 1e-8,
    *,
    predictor: str = "last",
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by Optimistic AMSGrad: a lazy AMSGrad step plus an optimistic offset.

  .. math::
    \theta_t = \beta_1 \theta_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
    \hat v_t = \max(\hat v_{t-1}, v_t),\ \hat v_0 = \epsilon,\\
    h_{t+1} = \beta_1 \theta_t + (1-\beta_1) \tilde g_{t+1},\quad
    q_{t+1} = h_{t+1} / \sqrt{\hat v_t},\quad
    u_t = \theta_t / \sqrt{\hat v_t} + q_{t+1} - q_t,

  where :math:`\tilde g_{t+1}` is the predictor's guess of the next gradient. After
  ``scale_by_learning_rate(lr)`` the parameters are :math:`w_{t+1} = w_{t+1/2} - \eta q_{t+1}`:
  the lazy AMSGrad iterate :math:`w_{t+1/2} = w_{t-1/2} - \eta \theta_t/\sqrt{\hat v_t}` moved one
  optimistic step along the predicted momentum, which is where the next gradient is taken.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: initial value of :math:`\hat v` (so the denominator is at least :math:`\sqrt\epsilon`),
      > 0.
    predictor: the guess of the next gradient: ``"last"`` (:math:`\tilde g_{t+1} = g_t`) or
      ``"zero"``.
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply ``scale_by_learning_rate`` after it.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_optimistic_amsgrad(), gradtx.scale_by_learning_rate(1e-3))

  References:
    Wang, Li, Karimi & Li, "An Optimistic Acceleration of AMSGrad for Nonconvex Optimization",
    arXiv:1903.01435.

  Notes:
    No bias correction, as in the paper. ``eps`` is the initial :math:`\hat v`, not an outer eps.
    The paper predicts the next gradient by regularised approximate minimal polynomial
    extrapolation over the last r gradients; gradtx ships the two simplest predictors (``"last"``
    is the paper's r = 1 case up to the regulariser) and keeps the predictor pluggable. We read
    :math:`h_{t+1}` as built from :math:`\theta_t` (the paper's indexing is ambiguous). The offset
    is kept in units of the learning rate (:math:`o_t = -\eta q_t`): under a learning-rate
    schedule the offset removed at step t is rescaled by :math:`\eta_t` rather than
    :math:`\eta_{t-1}`; with a constant rate this is exact.
  """
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.positive("eps", eps)
  validate.one_of("predictor", predictor, PREDICTORS)

  def init_fn(params):
    return ScaleByOptimisticAmsgradState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
        nu_max=full_like(params, eps) if not callable(eps) else full_like(params, eps(0)),
        offset=init_moment(params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    check_matching("scale_by_optimistic_amsgrad", updates, state.nu, ("updates", "state"))
    beta1, beta2 = resolve(b1, state.count), resolve(b2, state.count)
    mu = ema(updates, state.mu, beta1, 1)
    nu = ema(updates, state.nu, beta2, 2)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)

    def step(g, m, vmax, q):
      out_dtype, dt = g.dtype, compute_dtype(g.dtype)
      g, m, q = g.astype(dt), m.astype(dt), q.astype(dt)
      root = jnp.sqrt(vmax.astype(dt))  # divides: XLA's CPU rsqrt is several times slower
      h = beta1 * m + (1.0 - beta1) * g if predictor == "last" else beta1 * m
      q_next = h / root
      return ((m + h) / root - q).astype(out_dtype), q_next

    pairs = jax.tree.map(step, updates, mu, nu_max, state.offset)
    treedef = jax.tree.structure(updates)
    leaves = treedef.flatten_up_to(pairs)
    out = treedef.unflatten([p[0] for p in leaves])
    offset = jax.tree.map(
        lambda q, o: q.astype(o.dtype), treedef.unflatten([p[1] for p in leaves]), state.offset
    )
    new_state = ScaleByOptimisticAmsgradState(
        optax.safe_int32_increment(state.count), mu, nu, nu_max, offset
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
