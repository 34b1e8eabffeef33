"""Sharding helpers: create optimizer state already sharded like the parameters."""

from gradtx._src.core.sharding import state_shardings as state_shardings
