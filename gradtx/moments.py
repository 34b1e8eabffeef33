"""Moment estimation and adaptive step sizes: transformations, their states and optimizers."""

from gradtx._src.moments.add_decayed_weights import AddDecayedWeightsState as AddDecayedWeightsState
from gradtx._src.moments.add_decayed_weights import add_decayed_weights as add_decayed_weights
from gradtx._src.moments.scale_by_adagrad import ScaleByAdagradState as ScaleByAdagradState
from gradtx._src.moments.scale_by_adagrad import scale_by_adagrad as scale_by_adagrad
from gradtx._src.moments.scale_by_adagrad_norm import ScaleByAdagradNormState as ScaleByAdagradNormState
from gradtx._src.moments.scale_by_adagrad_norm import scale_by_adagrad_norm as scale_by_adagrad_norm
from gradtx._src.moments.scale_by_adam import ScaleByAdamState as ScaleByAdamState
from gradtx._src.moments.scale_by_adam import scale_by_adam as scale_by_adam
from gradtx._src.moments.scale_by_amsgrad import ScaleByAmsgradState as ScaleByAmsgradState
from gradtx._src.moments.scale_by_amsgrad import scale_by_amsgrad as scale_by_amsgrad
from gradtx._src.moments.scale_by_learning_rate import ScaleByLearningRateState as ScaleByLearningRateState
from gradtx._src.moments.scale_by_learning_rate import scale_by_learning_rate as scale_by_learning_rate
from gradtx._src.moments.scale_by_rms import ScaleByRmsState as ScaleByRmsState
from gradtx._src.moments.scale_by_rms import scale_by_rms as scale_by_rms
from gradtx._src.moments.trace import TraceState as TraceState
from gradtx._src.moments.trace import trace as trace
from gradtx._src.optimizers.moments import adagrad as adagrad
from gradtx._src.optimizers.moments import adagrad_norm as adagrad_norm
from gradtx._src.optimizers.moments import adam as adam
from gradtx._src.optimizers.moments import adamw as adamw
from gradtx._src.optimizers.moments import amsgrad as amsgrad
from gradtx._src.optimizers.moments import rmsprop as rmsprop
from gradtx._src.optimizers.moments import sgd as sgd
