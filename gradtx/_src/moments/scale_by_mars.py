"""MARS: Adam on a variance-reduced, per-leaf norm-clipped gradient (MARS-AdamW)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtx._src.core import errors, validate
from gradtx._src.core.hyperparams import power, resolve
from gradtx._src.core.moments import ema, init_moment
from gradtx._src.core.tree import check_matching, compute_dtype


class ScaleByMarsState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, like optax states; int32 step counter
  mu: optax.Updates  # first moment of c_t, in mu_dtype
  nu: optax.Updates  # second moment of c_t
  prev_grad: optax.Updates | None  # approximate: the previous step's gradient; exact: None
  prev_params: optax.Params | None  # exact: the previous step's params; approximate: None


def is_mars_leaf(x: Any, optimize_1d: bool = False) -> bool:
  """Whether MARS (rather than plain AdamW) handles a leaf: 2-D leaves, or all with ``optimize_1d``."""
  return optimize_1d or jnp.ndim(x) == 2


def scale_by_mars(
    b1: Any = 0.95,
    b2: Any = 0.99,
    gamma: Any = 0.025,
    eps: Any = 1e-8,
    *,
    variant: str = "adamw",
    approximate: bool = True,
    optimize_1d: bool = False,
    b1_1d: Any = 0.9,
    b2_1d: Any = 0.95,
    mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scale updates by MARS-AdamW: Adam moments of a variance-reduced, clipped gradient.

  .. math::
    c_t = g_t + \gamma \frac{\beta_1}{1-\beta_1} (g_t - \tilde g_{t-1})\ (t > 1),\quad c_1 = g_1,\quad
    c_t \leftarrow c_t \min(1, 1/\lVert c_t \rVert_2),\\
    m_t = \beta_1 m_{t-1} + (1-\beta_1) c_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) c_t^2,\quad
    u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}.

  Approximate MARS (default) uses :math:`\tilde g_{t-1} = \nabla f(x_{t-1}; \xi_{t-1})`, the
  previous step's gradient. Exact MARS uses :math:`\tilde g_{t-1} = \nabla f(x_{t-1}; \xi_t)`,
  the gradient of the *current* batch at the *previous* parameters: pass ``grad_fn=`` (the
  gradient on the current batch as a function of params) to ``update``; the transformation keeps
  :math:`x_{t-1}` in its state and evaluates ``grad_fn`` there (a second gradient per step).

  ``variant="lion"`` (MARS-Lion) returns :math:`\mathrm{sign}(m_t)` instead of the Adam ratio on
  the MARS leaves (the second moment is then kept but unused, as in the official code).

  Leaves that are not 2-D get plain Adam moments of :math:`g_t` with ``b1_1d``/``b2_1d`` (no
  correction, no clipping), unless ``optimize_1d=True``, as in the official code.

  Args:
    b1: first-moment decay, in [0, 1); also sets the correction weight
      :math:`\beta_1/(1-\beta_1)`.
    b2: second-moment decay, in [0, 1).
    gamma: scale of the variance-reduction term, >= 0; 0 gives Adam on clipped gradients.
    eps: added outside the square root, >= 0.
    variant: ``"adamw"`` (MARS-AdamW) or ``"lion"`` (MARS-Lion).
    approximate: use the previous gradient (one gradient per step); False needs ``grad_fn=``.
    optimize_1d: apply MARS to leaves that are not 2-D too.
    b1_1d: first-moment decay for the leaves MARS does not handle.
    b2_1d: second-moment decay for those leaves.
    mu_dtype: dtype of the first moment; None keeps the gradients' dtype.

  Returns:
    A gradient transformation; apply weight decay and ``scale_by_learning_rate`` after it.
    With ``approximate=False`` it needs ``params`` and ``grad_fn`` in ``update``.

  Example:
    >>> tx = optax.chain(gradtx.scale_by_mars(), gradtx.scale_by_learning_rate(3e-3))
    >>> # exact: tx.update(grads, state, params, grad_fn=lambda p: jax.grad(loss)(p, batch))

  References:
    Yuan, Liu, Wu, Zhou & Gu, "MARS: Unleashing the Power of Variance Reduction for Training
    Large Models", arXiv:2411.10438.

  Notes:
    Step 1 uses :math:`c_1 = g_1` (as timm) and clips it like every other step; the official
    code starts from :math:`\tilde g_0 = 0`, i.e. :math:`c_1 = (1 + \gamma\beta_1/(1-\beta_1)) g_1`
    before clipping. The clip norm is per leaf (per tensor), as in the official code and timm.
    MARS-Shampoo is not implemented.
  """
  validate.one_of("variant", variant, ("adamw", "lion"))
  validate.beta("b1", b1)
  validate.beta("b2", b2)
  validate.non_negative("gamma", gamma)
  validate.non_negative("eps", eps)
  validate.beta("b1_1d", b1_1d)
  validate.beta("b2_1d", b2_1d)

  def init_fn(params):
    return ScaleByMarsState(
        count=jnp.zeros([], jnp.int32),
        mu=init_moment(params, mu_dtype),
        nu=init_moment(params),
        prev_grad=init_moment(params) if approximate else None,
        prev_params=None if approximate else jax.tree.map(jnp.asarray, params),
    )

  def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
    del extra_args
    check_matching("scale_by_mars", updates, state.nu, ("updates", "state"))
    count = state.count
    first = count == 0
    if approximate:
      prev_grad, prev_params = state.prev_grad, None
    else:
      grad_fn = errors.require(
          "scale_by_mars",
          "grad_fn",
          grad_fn,
          "the gradient of the loss on the current batch as a function of params (exact MARS "
          "evaluates it at the previous params)",
          "tx.update(grads, state, params, grad_fn=lambda p: jax.grad(loss)(p, batch))",
      )
      params = errors.require(
          "scale_by_mars", "params", params, "the current parameters (exact MARS keeps them)",
          "tx.update(grads, state, params, grad_fn=...)",
      )
      check_matching("scale_by_mars", updates, params, ("updates", "params"))
      prev_grad, prev_params = grad_fn(state.prev_params), jax.tree.map(jnp.asarray, params)
      check_matching("scale_by_mars", updates, prev_grad, ("updates", "grad_fn(params)"))

    beta1, beta2 = resolve(b1, count), resolve(b2, count)
    beta1_1d, beta2_1d = resolve(b1_1d, count), resolve(b2_1d, count)
    coef = resolve(gamma, count) * beta1 / (1.0 - beta1)

    def corrected(g, gp):
      if not is_mars_leaf(g, optimize_1d):
        return g
      dt = compute_dtype(g.dtype)
      gg = g.astype(dt)
      c = jnp.where(first, gg, gg + coef * (gg - gp.astype(dt)))
      norm = jnp.sqrt(jnp.sum(jnp.square(c)))
      return c * jnp.minimum(1.0, 1.0 / norm)

    c = jax.tree.map(corrected, updates, prev_grad)
    is_mars = jax.tree.map(lambda g: is_mars_leaf(g, optimize_1d), updates)
    mu = jax.tree.map(lambda m, ci, mm: ema(ci, mm, beta1 if m else beta1_1d, 1), is_mars, c, state.mu)
    nu = jax.tree.map(lambda m, ci, vv: ema(ci, vv, beta2 if m else beta2_1d, 2), is_mars, c, state.nu)
    t = count + 1
    e = resolve(eps, count)

    def step(g, m, mm, vv):
      dt = compute_dtype(g.dtype)
      if m and variant == "lion":
        return jnp.sign(mm.astype(dt)).astype(g.dtype)
      c1 = 1.0 / (1.0 - power(beta1 if m else beta1_1d, t))
      c2 = 1.0 / (1.0 - power(beta2 if m else beta2_1d, t))
      return (c1 * mm.astype(dt) / (jnp.sqrt(vv.astype(dt) * c2) + e)).astype(g.dtype)

    out = jax.tree.map(step, updates, is_mars, mu, nu)
    new_state = ScaleByMarsState(
        count=optax.safe_int32_increment(count),
        mu=mu,
        nu=nu,
        prev_grad=jax.tree.map(lambda g, gp: g.astype(gp.dtype), updates, state.prev_grad)
        if approximate
        else None,
        prev_params=prev_params,
    )
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
