"""Sharding tests run in their own pytest process with 8 simulated CPU devices.

`make test-sharding` sets XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax is imported.
Run in a process without it, they are skipped rather than silently testing one device.
"""

import jax
import pytest


def pytest_collection_modifyitems(config, items):
  del config
  if jax.device_count() >= 8:
    return
  skip = pytest.mark.skip(reason="needs 8 devices: run `make test-sharding`")
  for item in items:
    if "sharding" in item.keywords:
      item.add_marker(skip)
