"""Differential privacy: per-example clipped, noised aggregation, Poisson batches and privacy accounting."""
