"""Test session set-up: float64 is enabled so reference tests can compare to 1e-10.

Tests that check float32/bfloat16 behaviour build their arrays with explicit dtypes.
"""

import jax

jax.config.update("jax_enable_x64", True)
