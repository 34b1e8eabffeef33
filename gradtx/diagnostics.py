"""Hessian diagnostics: trace and layer sensitivities, top eigenvalues, spectral density."""

from gradtx._src.diagnostics.eigenvalues import top_hessian_eigenvalues as top_hessian_eigenvalues
from gradtx._src.diagnostics.hessian_trace import HessianTrace as HessianTrace
from gradtx._src.diagnostics.hessian_trace import hessian_trace as hessian_trace
from gradtx._src.diagnostics.lanczos import lanczos as lanczos
from gradtx._src.diagnostics.spectral_density import SpectralDensity as SpectralDensity
from gradtx._src.diagnostics.spectral_density import hessian_spectral_density as hessian_spectral_density
