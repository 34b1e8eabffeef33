"""Sharpness-aware updates: SAM, ASAM and GAM transformations, their states and optimizers."""

from gradtx._src.optimizers.sharpness import asam_sgd as asam_sgd
from gradtx._src.optimizers.sharpness import gam_sgd as gam_sgd
from gradtx._src.optimizers.sharpness import sam_sgd as sam_sgd
from gradtx._src.sharpness.gam import GamState as GamState
from gradtx._src.sharpness.gam import gam as gam
from gradtx._src.sharpness.sam import SamState as SamState
from gradtx._src.sharpness.sam import sam as sam
