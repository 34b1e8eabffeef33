"""Curvature: Hessian-vector products, Hutchinson estimators and Hessian-diagonal optimizers."""

from gradtx._src.curvature.gauss_newton import estimate_gauss_newton_diagonal as estimate_gauss_newton_diagonal
from gradtx._src.curvature.hessian_diagonal import estimate_hessian_diagonal as estimate_hessian_diagonal
from gradtx._src.curvature.hessian_diagonal import value_grad_and_hessian_diagonal as value_grad_and_hessian_diagonal
from gradtx._src.curvature.hessian_trace import estimate_hessian_trace as estimate_hessian_trace
from gradtx._src.curvature.hvp import grad_and_hvp as grad_and_hvp
from gradtx._src.curvature.hvp import hvp as hvp
from gradtx._src.curvature.probes import gaussian_like as gaussian_like
from gradtx._src.curvature.probes import probe_key as probe_key
from gradtx._src.curvature.probes import probe_like as probe_like
from gradtx._src.curvature.probes import rademacher_like as rademacher_like
from gradtx._src.curvature.scale_by_adahessian import ScaleByAdahessianState as ScaleByAdahessianState
from gradtx._src.curvature.scale_by_adahessian import scale_by_adahessian as scale_by_adahessian
from gradtx._src.curvature.scale_by_adahessian import spatial_average as spatial_average
from gradtx._src.curvature.scale_by_oasis import ScaleByOasisState as ScaleByOasisState
from gradtx._src.curvature.scale_by_oasis import scale_by_oasis as scale_by_oasis
from gradtx._src.curvature.scale_by_sophia import ScaleBySophiaState as ScaleBySophiaState
from gradtx._src.curvature.scale_by_sophia import scale_by_sophia as scale_by_sophia
from gradtx._src.optimizers.curvature import adahessian as adahessian
from gradtx._src.optimizers.curvature import oasis as oasis
from gradtx._src.optimizers.curvature import sophia_g as sophia_g
from gradtx._src.optimizers.curvature import sophia_h as sophia_h
