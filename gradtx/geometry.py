"""Sign, orthogonal and non-Euclidean updates: transformations, their states and optimizers."""

from gradtx._src.geometry.ema_momentum import EmaMomentumState as EmaMomentumState
from gradtx._src.geometry.ema_momentum import ema_momentum as ema_momentum
from gradtx._src.geometry.orthogonalize import orthogonalize_newton_schulz as orthogonalize_newton_schulz
from gradtx._src.geometry.orthogonalize import orthogonalize_polar as orthogonalize_polar
from gradtx._src.geometry.partition import default_muon_partition as default_muon_partition
from gradtx._src.geometry.scale_by_auon import ScaleByAuonState as ScaleByAuonState
from gradtx._src.geometry.scale_by_auon import scale_by_auon as scale_by_auon
from gradtx._src.geometry.scale_by_dualized_norm import ScaleByDualizedNormState as ScaleByDualizedNormState
from gradtx._src.geometry.scale_by_dualized_norm import dualize as dualize
from gradtx._src.geometry.scale_by_dualized_norm import scale_by_dualized_norm as scale_by_dualized_norm
from gradtx._src.geometry.scale_by_lion import ScaleByLionState as ScaleByLionState
from gradtx._src.geometry.scale_by_lion import scale_by_lion as scale_by_lion
from gradtx._src.geometry.scale_by_orthogonalized_momentum import (
    ScaleByOrthogonalizedMomentumState as ScaleByOrthogonalizedMomentumState,
)
from gradtx._src.geometry.scale_by_orthogonalized_momentum import (
    scale_by_orthogonalized_momentum as scale_by_orthogonalized_momentum,
)
from gradtx._src.geometry.scale_by_sign import ScaleBySignState as ScaleBySignState
from gradtx._src.geometry.scale_by_sign import scale_by_sign as scale_by_sign
from gradtx._src.optimizers.geometry import auon as auon
from gradtx._src.optimizers.geometry import default_norm as default_norm
from gradtx._src.optimizers.geometry import lion as lion
from gradtx._src.optimizers.geometry import muon as muon
from gradtx._src.optimizers.geometry import normalized_sgd as normalized_sgd
from gradtx._src.optimizers.geometry import sign_sgd as sign_sgd
from gradtx._src.optimizers.geometry import signum as signum
from gradtx._src.optimizers.geometry import steepest_descent as steepest_descent
