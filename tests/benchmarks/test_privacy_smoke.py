"""Smoke run of benchmarks/privacy.py in quick mode: it runs end to end and reports every candidate.

Timings are never asserted.
"""

from benchmarks import privacy


def test_privacy_benchmark_quick(tmp_path):
  privacy.main(["--quick", "--out", str(tmp_path)])
  text = (tmp_path / "privacy.md").read_text()
  for name in ("jax.grad (batched mean)", "per-example grads + clip_per_example",
               "dp_aggregate (threefry noise)", "dp_aggregate (rng='fast')", "dp_sgd step"):
    assert name in text
  assert "nan" not in text
