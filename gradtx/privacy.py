"""Differential privacy: DP aggregation, DP optimizers, Poisson batches and the privacy accountant."""

from gradtx._src.optimizers.privacy import dp_adam as dp_adam
from gradtx._src.optimizers.privacy import dp_bandmf as dp_bandmf
from gradtx._src.optimizers.privacy import dp_ftrl as dp_ftrl
from gradtx._src.optimizers.privacy import dp_sgd as dp_sgd
from gradtx._src.privacy.accountant import PrivacyAccountant as PrivacyAccountant
from gradtx._src.privacy.accountant import calibrate_noise_multiplier as calibrate_noise_multiplier
from gradtx._src.privacy.accountant import compute_epsilon as compute_epsilon
from gradtx._src.privacy.accountant import dp_steps as dp_steps
from gradtx._src.privacy.accountant import tree_aggregation_epsilon as tree_aggregation_epsilon
from gradtx._src.privacy.banded_accounting import banded_epsilon as banded_epsilon
from gradtx._src.privacy.banded_accounting import banded_event as banded_event
from gradtx._src.privacy.banded_coefficients import banded_sensitivity as banded_sensitivity
from gradtx._src.privacy.banded_coefficients import banded_sqrt_coefficients as banded_sqrt_coefficients
from gradtx._src.privacy.banded_coefficients import nu_dp_ftrl_coefficients as nu_dp_ftrl_coefficients
from gradtx._src.privacy.banded_coefficients import optimal_banded_coefficients as optimal_banded_coefficients
from gradtx._src.privacy.banded_coefficients import prefix_sum_loss as prefix_sum_loss
from gradtx._src.privacy.dp_aggregate import DpAggregateState as DpAggregateState
from gradtx._src.privacy.dp_aggregate import dp_aggregate as dp_aggregate
from gradtx._src.privacy.dp_banded_aggregate import DpBandedAggregateState as DpBandedAggregateState
from gradtx._src.privacy.dp_banded_aggregate import dp_banded_aggregate as dp_banded_aggregate
from gradtx._src.privacy.dp_tree_aggregate import DpTreeAggregateState as DpTreeAggregateState
from gradtx._src.privacy.dp_tree_aggregate import dp_tree_aggregate as dp_tree_aggregate
from gradtx._src.privacy.poisson_batches import poisson_batches as poisson_batches
