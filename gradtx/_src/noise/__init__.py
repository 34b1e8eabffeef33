"""Noise injection and Langevin dynamics: annealed gradient noise, SGLD, SGHMC, Adam-LMC, Entropy-SGD."""
