"""Gradient estimators without backpropagation: forward gradients and zeroth-order estimates."""
