"""Smoke runs of the study scripts on tiny synthetic data (what they print and write)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _run(script, *args):
  proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args],
                        capture_output=True, text=True, timeout=600, env=ENV)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_bench_seeds_stack_matches_sequential(tmp_path):
  out = tmp_path / "b.json"
  stdout = _run("bench_seeds.py", "--task=synthetic", "--scale=0.002", "--num_seeds=2",
                "--epochs=1", f"--out={out}")
  res = json.loads(out.read_text())
  assert "speedup:" in stdout
  assert res["num_seeds"] == 2 and res["same_selection"] is True
  assert res["max_param_abs_diff"] < 1e-4
  assert res["sequential_s"] > 0 and res["stacked_s"] > 0


def test_bridge_epochs_study_rows(tmp_path):
  out = tmp_path / "e.json"
  stdout = _run("bridge_epochs.py", "--task=synthetic", "--scale=0.002", "--betas=0.5",
                "--epochs_grid=2", "--epochs=1", "--topk_grid=0.05,0.5",
                f"--cache_dir={tmp_path / 'cache'}", f"--out={out}")
  rows = json.loads(out.read_text())["rows"]
  assert [r["bridge"] for r in rows] == ["2", "least_squares"]
  # Least squares minimises the bridge's training MSE.
  assert rows[-1]["train_mse"] <= min(r["train_mse"] for r in rows) + 1e-6
  assert all(0 < r["test_mae"] < 4 for r in rows)
  assert stdout.count("beta=0.5") == 2
