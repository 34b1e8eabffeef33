"""Noise injection and Langevin dynamics: transformations, their states, optimizers and a sample collector."""

from gradtx._src.noise.add_annealed_noise import AddAnnealedNoiseState as AddAnnealedNoiseState
from gradtx._src.noise.add_annealed_noise import add_annealed_noise as add_annealed_noise
from gradtx._src.noise.collect_samples import CollectSamplesState as CollectSamplesState
from gradtx._src.noise.collect_samples import collect_samples as collect_samples
from gradtx._src.noise.collect_samples import sample_moments as sample_moments
from gradtx._src.noise.scale_by_adam_langevin import ScaleByAdamLangevinState as ScaleByAdamLangevinState
from gradtx._src.noise.scale_by_adam_langevin import scale_by_adam_langevin as scale_by_adam_langevin
from gradtx._src.noise.scale_by_entropy_sgd import ScaleByEntropySgdState as ScaleByEntropySgdState
from gradtx._src.noise.scale_by_entropy_sgd import scale_by_entropy_sgd as scale_by_entropy_sgd
from gradtx._src.noise.scale_by_sghmc import ScaleBySghmcState as ScaleBySghmcState
from gradtx._src.noise.scale_by_sghmc import scale_by_sghmc as scale_by_sghmc
from gradtx._src.noise.scale_by_sgld import ScaleBySgldState as ScaleBySgldState
from gradtx._src.noise.scale_by_sgld import scale_by_sgld as scale_by_sgld
from gradtx._src.optimizers.noise import adam_langevin as adam_langevin
from gradtx._src.optimizers.noise import entropy_sgd as entropy_sgd
from gradtx._src.optimizers.noise import sghmc as sghmc
from gradtx._src.optimizers.noise import sgld as sgld
