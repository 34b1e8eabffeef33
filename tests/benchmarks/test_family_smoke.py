"""Smoke runs of the family benchmarks on tiny sizes: each runs end to end and writes its table.

The results directory is redirected to a temporary folder. Timings are never asserted.
"""

import pytest

from benchmarks import clip_noise, common, curvature, estimators, geometry, kronecker


@pytest.fixture
def results(tmp_path, monkeypatch):
  monkeypatch.setattr(common, "RESULTS_DIR", str(tmp_path))
  return tmp_path


def test_clip_noise_tiny(results):
  clip_noise.main(["--params", "20000", "--rounds", "1", "--batch", "4"])
  text = (results / "clip_noise.md").read_text()
  assert "chain(gradtx.add_annealed_noise, gradtx.adam)" in text and "per_example_clip" in text


def test_curvature_tiny(results):
  curvature.main(["--rounds", "1", "--width", "16", "--batch", "4"])
  text = (results / "curvature.md").read_text()
  assert "value_grad_and_hessian_diagonal" in text and "skip, static" in text


def test_kronecker_tiny(results):
  kronecker.main(["--total-params", "20000", "--rounds", "1", "--block-size", "16", "--race-steps", "5"])
  text = (results / "kronecker.md").read_text()
  for name in ("shampoo", "soap", "psgd_kron"):
    assert f"| {name} |" in text


def test_estimators_tiny(results):
  estimators.main(["--rounds", "1", "--width", "16", "--batch", "4", "--widths", "8,16", "--memory-batches", "4"])
  assert "mezo" in (results / "estimators.md").read_text() and (results / "estimators.png").exists()


def test_geometry_default(results):
  geometry.main([])
  text = (results / "geometry.md").read_text()
  assert "Newton-Schulz" in text and "| muon |" in text
