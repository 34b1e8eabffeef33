"""Clipping: global, per-value, per-block, adaptive (AGC), quantile and per-example clipping."""

from gradtx._src.clipping.adaptive_grad_clip import AdaptiveGradClipState as AdaptiveGradClipState
from gradtx._src.clipping.adaptive_grad_clip import adaptive_grad_clip as adaptive_grad_clip
from gradtx._src.clipping.clip_by_block_norm import ClipByBlockNormState as ClipByBlockNormState
from gradtx._src.clipping.clip_by_block_norm import clip_by_block_norm as clip_by_block_norm
from gradtx._src.clipping.clip_by_global_norm import ClipByGlobalNormState as ClipByGlobalNormState
from gradtx._src.clipping.clip_by_global_norm import clip_by_global_norm as clip_by_global_norm
from gradtx._src.clipping.clip_by_quantile import ClipByQuantileState as ClipByQuantileState
from gradtx._src.clipping.clip_by_quantile import clip_by_quantile as clip_by_quantile
from gradtx._src.clipping.clip_by_value import ClipByValueState as ClipByValueState
from gradtx._src.clipping.clip_by_value import clip_by_value as clip_by_value
from gradtx._src.clipping.per_example_clip import PerExampleClipState as PerExampleClipState
from gradtx._src.clipping.per_example_clip import clip_per_example as clip_per_example
from gradtx._src.clipping.per_example_clip import per_example_clip as per_example_clip
from gradtx._src.clipping.per_example_clip import per_example_gradients as per_example_gradients
from gradtx._src.clipping.per_example_clip import per_example_norms as per_example_norms
from gradtx._src.optimizers.clipping import clipped_adagrad as clipped_adagrad
