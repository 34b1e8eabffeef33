"""Flax integration (needs the `flax` extra): linen TrainState, nnx extra inputs, partitioning.

Import it explicitly: ``import gradtx.flax``.
"""

from gradtx._src.ecosystem.flax_utils import TrainState as TrainState
from gradtx._src.ecosystem.flax_utils import nnx_extra_args as nnx_extra_args
from gradtx._src.ecosystem.partition import partition as partition
from gradtx._src.ecosystem.partition import path_name as path_name
