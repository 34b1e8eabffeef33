"""Gradient estimators without backpropagation: forward gradients and zeroth-order estimates, and optimizers."""

from gradtx._src.estimators.coordinate_gradient import CoordinateGradientState as CoordinateGradientState
from gradtx._src.estimators.coordinate_gradient import coordinate_gradient as coordinate_gradient
from gradtx._src.estimators.forward_gradient import ForwardGradientState as ForwardGradientState
from gradtx._src.estimators.forward_gradient import forward_gradient as forward_gradient
from gradtx._src.estimators.forward_gradient import forward_gradient_estimate as forward_gradient_estimate
from gradtx._src.estimators.function_evals import function_evals_per_step as function_evals_per_step
from gradtx._src.estimators.two_point_gradient import TwoPointGradientState as TwoPointGradientState
from gradtx._src.estimators.two_point_gradient import two_point_gradient as two_point_gradient
from gradtx._src.optimizers.estimators import deepzero as deepzero
from gradtx._src.optimizers.estimators import forward_gradient_sgd as forward_gradient_sgd
from gradtx._src.optimizers.estimators import mezo as mezo
from gradtx._src.optimizers.estimators import spsa as spsa
