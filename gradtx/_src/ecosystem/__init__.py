"""Integrations with the JAX ecosystem: Flax (linen and nnx) and optax partitioning."""
