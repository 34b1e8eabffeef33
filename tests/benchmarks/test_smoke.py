"""Smoke runs of the benchmarks in quick mode: they run end to end and write their files.

Timings are never asserted; only that each benchmark completes and reports every candidate.
"""

import json
import os
import subprocess

import jax.numpy as jnp
import optax
import pytest

from benchmarks import common, cpu_allocator, race, step_cost, step_overhead


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


def test_step_cost_families_keeps_only_those_families(tmp_path):
  step_cost.main(["--quick", "--optimizers", "sign_sgd,sgd", "--families", "geometry",
                  "--out", str(tmp_path), "--no-progress"])
  text = (tmp_path / "step_cost.md").read_text()
  assert "| sign_sgd |" in text and "| sgd |" not in text
  with pytest.raises(SystemExit):
    step_cost.main(["--quick", "--families", "no_such_family", "--out", str(tmp_path)])


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


def test_gpu_script_runs_the_named_stages(tmp_path):
  # A stand-in interpreter echoes each command, so the stage dispatch is checked without a GPU.
  fake = tmp_path / "python"
  fake.write_text('#!/bin/sh\necho "ran $*"\n')
  fake.chmod(0o755)
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = tmp_path / "gpu"
  env = {**os.environ, "PYTHON": str(fake)}
  done = subprocess.run(["bash", os.path.join(root, "benchmarks", "gpu.sh"), str(out), "step_cost_curvature",
                         "clip_noise=200", "no_such_stage"], env=env, capture_output=True, text=True)
  assert done.returncode == 1
  ran = [line for line in done.stdout.splitlines() if line.startswith("ran -m")]
  assert ran == [
      "ran -m benchmarks.step_cost --rounds 3 --no-progress --merge --families curvature --trees transformer",
      "ran -m benchmarks.clip_noise --params 2000000",
  ]
  assert "(limit 200s)" in done.stdout and "failed or cut off: no_such_stage" in done.stdout
  default = subprocess.run(["bash", os.path.join(root, "benchmarks", "gpu.sh"), str(out)], env=env,
                           capture_output=True, text=True)
  assert default.returncode == 0
  assert [line.split()[2] for line in default.stdout.splitlines() if line.startswith("ran -m")] == [
      "benchmarks.step_overhead", "benchmarks.curvature", "benchmarks.geometry", "benchmarks.kronecker",
      "benchmarks.clip_noise", "benchmarks.step_cost"]


def test_cpu_allocator_quick(tmp_path):
  # Three child processes, one per malloc setting, each timing its candidates beside gradtx.adam.
  cpu_allocator.main(["--quick", "--optimizers", "lion,add_annealed_noise+adam", "--out", str(tmp_path),
                      "--no-progress"])
  text = (tmp_path / "cpu_allocator.md").read_text()
  assert "| gradtx.adam | moments | 1.00 |" in text
  assert all(f"{s}: x adam" in text for s in cpu_allocator.SETTINGS)
  results = json.loads((tmp_path / "cpu_allocator.json").read_text())["results"]
  for setting in cpu_allocator.SETTINGS:
    assert set(results[setting]) == {"gradtx.adam", "lion", "add_annealed_noise+adam"}
    assert all(r["faults"] >= 0.0 for r in results[setting].values())
  assert os.path.getsize(tmp_path / "cpu_allocator.png") > 0


def test_cpu_allocator_table_keeps_failures_and_lists_quiet_entries():
  ok = {"ms": 10.0, "vs_adam": 1.0, "faults": 0.0}
  rows = {"gradtx.adam": ok, "sgd": {**ok, "faults": 3.0}, "lion": {**ok, "faults": 14_000.0},
          "mars": {"error": "RuntimeError: boom"}}
  text = cpu_allocator.table({s: rows for s in cpu_allocator.SETTINGS}, 1000, "test run")
  assert "| lion | geometry | 1.00 | 14,000 |" in text and "| mars | moments | failed | - |" in text
  assert "| sgd |" not in text and "nothing but noise): sgd." in text


def test_time_interleaved_counts_page_faults_per_round():
  tree = {"w": jnp.ones((64, 64))}
  t = common.time_interleaved({"adam": optax.adam(1e-3)}, tree, tree, rounds=3, steps_per_round=2)["adam"]
  assert len(t.faults) == len(t.seconds) == 3 and t.faults_per_step >= 0.0
