"""How many loss evaluations a step of a backprop-free optimizer costs: its budget in function evaluations."""

from typing import Any

import jax
import numpy as np

from gradtx._src.estimators.coordinate_gradient import CoordinateGradientState
from gradtx._src.estimators.forward_gradient import ForwardGradientState
from gradtx._src.estimators.two_point_gradient import TwoPointGradientState

_STATES = (TwoPointGradientState, CoordinateGradientState, ForwardGradientState)


def function_evals_per_step(opt_state: Any) -> int | None:
  r"""Loss evaluations one ``update`` costs, summed over every estimator in ``opt_state``.

  Each estimator records its cost in its state when it is initialised:

  - :func:`two_point_gradient` (MeZO, SPSA): :math:`2K` with central differences, :math:`K + 1`
    with forward differences (:math:`K` probes);
  - :func:`coordinate_gradient` (DeepZero): :math:`1 + \sum_\ell |S_\ell|`, one evaluation at
    :math:`\theta` plus one per estimated coordinate;
  - :func:`forward_gradient`: :math:`K`, one forward-mode pass per tangent, each returning the
    loss and one directional derivative (about 1.5 to 3 times a plain forward pass).

  Evaluations the training loop makes itself (for example a gradient it passes as ``updates``,
  or the loss it logs) are not counted. The count is the same every step, so the budget after
  :math:`t` steps is ``t * function_evals_per_step(state)``.

  Args:
    opt_state: a concrete state (outside jit) of any transformation or chain, e.g.
      ``tx.init(params)``; states wrapped by ``optax.inject_hyperparams`` work too.

  Returns:
    The number of evaluations per step as a Python int, or ``None`` if ``opt_state`` holds no
    gradient estimator (the optimizer uses the gradient it is given).

  Example:
    >>> opt = gradtx.mezo(1e-3, key=0, num_probes=4)
    >>> gradtx.estimators.function_evals_per_step(opt.init(params))
    8
  """
  found = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, _STATES))
  counts = [int(np.asarray(s.evals_per_step)) for s in found if isinstance(s, _STATES)]
  return sum(counts) if counts else None
