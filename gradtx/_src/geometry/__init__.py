"""Sign, orthogonal and non-Euclidean (dualized-norm) updates."""
