"""Smoke runs of the benchmarks in quick mode: they run end to end and write their files.

Timings are never asserted; only that each benchmark completes and reports every candidate.
"""

import json
import os

from benchmarks import race, step_cost, step_overhead


def test_step_overhead_quick(tmp_path):
  step_overhead.main(["--quick", "--out", str(tmp_path)])
  text = (tmp_path / "step_overhead.md").read_text()
  for name in ("optax.adam", "gradtx.adam", "gradtx.fuse_leaves(gradtx.adam)"):
    assert name in text
  assert os.path.getsize(tmp_path / "step_overhead.png") > 0


def test_step_cost_quick(tmp_path):
  step_cost.main(["--quick", "--optimizers", "adam,sgd", "--out", str(tmp_path), "--no-progress"])
  text = (tmp_path / "step_cost.md").read_text()
  assert text.count("| adam |") == 2 and "failed" not in text
  # --merge re-measures sgd and keeps adam's rows, naming the run each row came from.
  step_cost.main(["--quick", "--optimizers", "sgd", "--out", str(tmp_path), "--no-progress", "--merge"])
  merged = (tmp_path / "step_cost.md").read_text()
  assert merged.count("| adam |") == 2 and merged.count("| sgd |") == 2
  assert "Run 1 (the other rows)" in merged and "Run 2 (sgd)" in merged
  rows = json.loads((tmp_path / "step_cost.json").read_text())["rows"]
  assert [(r["case"], r["name"]) for r in rows] == [(c, n) for c in ("transformer-like", "50 small leaves")
                                                    for n in ("adam", "sgd")]


def test_step_cost_labels_each_estimator_with_its_own_evaluations():
  # Two entries of one family: each row's label must come from its own spec and kwargs.
  rows = step_cost.measure(["mezo", "forward_gradient_sgd"], {"tiny": step_cost.many_small_leaves(5)}, rounds=1,
                           progress=False)
  labels = {row["name"]: row["family"] for row in rows}
  assert labels == {"mezo": "estimators (ZO, 2 evals/step)",
                    "forward_gradient_sgd": "estimators (ZO, 1 evals/step)"}


def test_race_quick(tmp_path):
  race.main(["--optimizers", "adam,sgd", "--steps", "20", "--out", str(tmp_path), "--no-progress"])
  text = (tmp_path / "race.md").read_text()
  assert "| adam | moments |" in text and "| sgd | moments |" in text
  assert os.path.getsize(tmp_path / "race.png") > 0
