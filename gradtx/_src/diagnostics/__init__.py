"""Hessian diagnostics: traces, extreme eigenvalues and spectral densities of a loss."""
