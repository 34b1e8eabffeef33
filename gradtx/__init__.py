"""gradtx: composable, pure-function gradient transformations for JAX and optax."""

from gradtx import moments as moments
from gradtx import sharding as sharding
from gradtx._src.core.extra_inputs import EXTRA_INPUTS as EXTRA_INPUTS
from gradtx._src.core.extra_inputs import build_extra_args as build_extra_args
from gradtx._src.core.fuse import FuseLeavesState as FuseLeavesState
from gradtx._src.core.fuse import fuse_leaves as fuse_leaves
from gradtx._src.core.registry import OptimizerSpec as OptimizerSpec
from gradtx._src.core.registry import Paper as Paper
from gradtx._src.core.registry import get_spec as get_spec
from gradtx._src.core.registry import list_optimizers as list_optimizers
from gradtx._src.core.registry import registry as registry
from gradtx.moments import AddDecayedWeightsState as AddDecayedWeightsState
from gradtx.moments import ScaleByAdagradNormState as ScaleByAdagradNormState
from gradtx.moments import ScaleByAdagradState as ScaleByAdagradState
from gradtx.moments import ScaleByAdamState as ScaleByAdamState
from gradtx.moments import ScaleByAmsgradState as ScaleByAmsgradState
from gradtx.moments import ScaleByLearningRateState as ScaleByLearningRateState
from gradtx.moments import ScaleByRmsState as ScaleByRmsState
from gradtx.moments import TraceState as TraceState
from gradtx.moments import adagrad as adagrad
from gradtx.moments import adagrad_norm as adagrad_norm
from gradtx.moments import adam as adam
from gradtx.moments import adamw as adamw
from gradtx.moments import add_decayed_weights as add_decayed_weights
from gradtx.moments import amsgrad as amsgrad
from gradtx.moments import rmsprop as rmsprop
from gradtx.moments import scale_by_adagrad as scale_by_adagrad
from gradtx.moments import scale_by_adagrad_norm as scale_by_adagrad_norm
from gradtx.moments import scale_by_adam as scale_by_adam
from gradtx.moments import scale_by_amsgrad as scale_by_amsgrad
from gradtx.moments import scale_by_learning_rate as scale_by_learning_rate
from gradtx.moments import scale_by_rms as scale_by_rms
from gradtx.moments import sgd as sgd
from gradtx.moments import trace as trace

__version__ = "0.1.0"
