"""Clipping: bound gradient norms globally, per leaf, per unit, per example or at a tracked quantile."""
