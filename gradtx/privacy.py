"""Differential privacy: DP aggregation, DP optimizers, Poisson batches and the privacy accountant."""

from gradtx._src.optimizers.privacy import dp_adam as dp_adam
from gradtx._src.optimizers.privacy import dp_ftrl as dp_ftrl
from gradtx._src.optimizers.privacy import dp_sgd as dp_sgd
from gradtx._src.privacy.accountant import PrivacyAccountant as PrivacyAccountant
from gradtx._src.privacy.accountant import calibrate_noise_multiplier as calibrate_noise_multiplier
from gradtx._src.privacy.accountant import compute_epsilon as compute_epsilon
from gradtx._src.privacy.accountant import dp_steps as dp_steps
from gradtx._src.privacy.accountant import tree_aggregation_epsilon as tree_aggregation_epsilon
from gradtx._src.privacy.dp_aggregate import DpAggregateState as DpAggregateState
from gradtx._src.privacy.dp_aggregate import dp_aggregate as dp_aggregate
from gradtx._src.privacy.dp_tree_aggregate import DpTreeAggregateState as DpTreeAggregateState
from gradtx._src.privacy.dp_tree_aggregate import dp_tree_aggregate as dp_tree_aggregate
from gradtx._src.privacy.poisson_batches import poisson_batches as poisson_batches
