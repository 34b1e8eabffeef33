"""Clipped optimizers: clipping composed with adaptive step sizes."""

from typing import Any

import optax

from gradtx._src.clipping.clip_by_global_norm import clip_by_global_norm
from gradtx._src.core.registry import register
from gradtx._src.moments.scale_by_adagrad import scale_by_adagrad
from gradtx._src.moments.scale_by_adagrad_norm import scale_by_adagrad_norm
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate


@register(
    family="clipping",
    paper="Gradient Clipping Improves AdaGrad when the Noise Is Heavy-Tailed",
    arxiv="2406.04443",
    test_kwargs={"learning_rate": 1.0, "max_norm": 1.0},
    race_kwargs={"learning_rate": 1.0, "max_norm": 1.0},
)
def clipped_adagrad(
    learning_rate: Any,
    max_norm: Any = 1.0,
    initial_accumulator_value: float = 0.0,
    eps: Any = 0.0,
    *,
    delayed: bool = False,
    coordinatewise: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""Clip-AdaGrad(-Norm): clip the gradient's global norm, then take an AdaGrad step.

  .. math::
    \tilde g_t = g_t \min(1, \lambda / \lVert g_t \rVert),\quad
    b_t^2 = b_{t-1}^2 + \lVert \tilde g_t \rVert^2,\quad u_t = -\eta_t \tilde g_t / (b_t + \epsilon)

  (``delayed``: :math:`b_{t-1}` in the step; ``coordinatewise``: AdaGrad's per-coordinate
  accumulator instead of the scalar one).

  Args:
    learning_rate: :math:`\eta`, >= 0; a float or a schedule (the paper's :math:`\gamma` with
      ``initial_accumulator_value`` = :math:`b_0^2/\gamma^2`).
    max_norm: :math:`\lambda`, the clip level, > 0; ``inf`` gives plain AdaGrad(-Norm).
    initial_accumulator_value: :math:`b_0^2`, >= 0 (> 0 when ``delayed``).
    eps: added to the denominator, >= 0.
    delayed: the step uses :math:`b_{t-1}` (the paper's "D" variants).
    coordinatewise: per-coordinate accumulators (Clip-AdaGrad) instead of one scalar.

  Returns:
    ``chain(clip_by_global_norm(max_norm), scale_by_adagrad_norm | scale_by_adagrad, scale_by_learning_rate)``.

  Example:
    >>> opt = gradtx.clipped_adagrad(1.0, max_norm=1.0)

  References:
    Chezhegov, Klyukin, Semenov, Beznosikov, Gasnikov, Horvath, Takac & Gorbunov, "Gradient
    Clipping Improves AdaGrad when the Noise Is Heavy-Tailed", arXiv:2406.04443.

  Notes:
    The paper's reweighted variant (Clip-RAdaGradD) is not implemented: its reweighting is not
    confirmed against the paper. The clip state (``norm``, ``clipped``) is in ``state[0]``.
  """
  if coordinatewise and delayed:
    raise ValueError("clipped_adagrad: delayed=True is only available with coordinatewise=False.")
  second = (
      scale_by_adagrad(initial_accumulator_value, eps)
      if coordinatewise
      else scale_by_adagrad_norm(initial_accumulator_value, eps, delayed=delayed)
  )
  return optax.chain(clip_by_global_norm(max_norm), second, scale_by_learning_rate(learning_rate))
