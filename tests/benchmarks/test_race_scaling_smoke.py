"""Smoke runs of the race's problems, its full mode, and the scaling benchmark in quick mode.

Timings are never asserted; only that each run completes and writes its files with every candidate.
"""

import json
import math
import os
import types

import numpy as np
import pytest
from tqdm import tqdm

import gradtx
from benchmarks import race, race_full, race_problems, scaling
from benchmarks.common import tree_size


def test_race_quick_cnn_and_transformer(tmp_path):
  race.main(["--problem", "cnn", "--optimizers", "adam,sgd", "--steps", "20", "--out", str(tmp_path), "--no-progress"])
  race.main(["--problem", "transformer", "--optimizers", "adam", "--steps", "25", "--out", str(tmp_path),
             "--no-progress"])
  cnn = (tmp_path / "race_demo_cnn.md").read_text()
  assert "| adam | moments |" in cnn and "| sgd | moments |" in cnn and "failed" not in cnn
  assert "| adam | moments |" in (tmp_path / "race_demo_transformer.md").read_text()
  for name in ("race_demo_cnn.png", "race_demo_transformer.png"):
    assert os.path.getsize(tmp_path / name) > 0


def test_race_full_mode(tmp_path):
  race.main(["--full", "--optimizers", "adam,mezo", "--steps", "20", "--seeds", "0", "1", "--out", str(tmp_path),
             "--no-progress"])
  text = (tmp_path / "race_mlp.md").read_text()
  assert "| adam | moments |" in text and "| mezo | estimators (ZO, 2 evals/step) |" in text and "failed" not in text
  assert "command `python -m benchmarks.race --full" in text and "jax" in text
  rows = json.loads((tmp_path / "race_mlp.json").read_text())["rows"]
  assert {r["name"] for r in rows} == {"adam", "mezo"}
  assert all(3 <= len(r["sweep"]) <= 3 + race_full.MAX_EXTENSION and r["seeds"] == 2 for r in rows)
  for name in ("race_mlp.png", "race_scatter.png"):
    assert os.path.getsize(tmp_path / name) > 0


class _FakeRunner:
  """A race runner whose final loss is |log3(lr / best_lr)|: the sweep alone decides the row."""

  best_lr = 1.0

  def __init__(self, spec, problem, steps, eval_every):
    self.kwargs, self.family = {"learning_rate": 1.0}, spec.family

  def run(self, seed, lr):
    loss = abs(math.log(lr / self.best_lr, 3)) + (math.inf if lr > 100 else 0.0)
    return types.SimpleNamespace(losses=np.full(4, loss), step_s=1e-3, metric=0.0, compile_s=0.0)


@pytest.mark.parametrize("best_lr, factor, tried", [
    (1.0, 1.0, 3), (1 / 9, 1 / 9, 5), (1 / 3, 1 / 3, 4), (100.0, 27.0, 5), (9.0, 9.0, 5),
])
def test_full_race_sweep_extends_past_an_edge_while_it_improves(monkeypatch, best_lr, factor, tried):
  monkeypatch.setattr(race, "Runner", type("Runner", (_FakeRunner,), {"best_lr": best_lr}))
  problem = types.SimpleNamespace(target=-1.0, eval_every=1)
  row = race_full.race_one(gradtx.get_spec("adam"), problem, steps=4, seeds=[0, 1], bar=tqdm(disable=True), run="")
  assert math.isclose(row["factor"], factor) and math.isclose(row["learning_rate"], factor)
  assert len(row["sweep"]) == tried


def test_problems_ship_offline():
  sizes = {name: tree_size(race_problems.get(name).init(0)) for name in race_problems.PROBLEMS}
  assert all(5_000 < n < 100_000 for n in sizes.values()), sizes
  assert os.path.getsize(race_problems.TEXT_PATH) <= 200_000


def test_scaling_quick(tmp_path):
  scaling.main(["--quick", "--optimizers", "adam,mezo", "--rounds", "1", "--steps-per-round", "2",
                "--out", str(tmp_path), "--no-progress"])
  text = (tmp_path / "scaling.md").read_text()
  assert "| adam | moments |" in text and "| mezo | estimators (ZO, 2 evals/step) |" in text
  assert "Not timed or failed" not in text
  assert os.path.getsize(tmp_path / "scaling.png") > 0
