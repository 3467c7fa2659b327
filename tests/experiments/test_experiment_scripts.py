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


def test_long_csv_converts_a_committed_seeds_file(tmp_path):
  seeds = ROOT / "docs" / "results" / "table1_synthetic_sparse_seeds.json"
  out = tmp_path / "long.csv"
  stdout = _run("long_csv.py", f"--seeds={seeds}", f"--out={out}")
  assert out.read_text() == seeds.with_name("table1_synthetic_sparse_long.csv").read_text()
  lines = out.read_text().splitlines()
  assert lines[0] == "task,beta,method,seed,metric,value"
  cells = json.loads(seeds.read_text())["cells"]
  n_methods = len(next(iter(cells.values()))["mae"])
  assert len(lines) - 1 == len(cells) * n_methods * 2 == 90   # 5 seeds x 9 methods x 2
  assert f"{len(lines) - 1} rows" in stdout
  # --out defaults to the seeds file's name with _long.csv.
  copy = tmp_path / "x_seeds.json"
  copy.write_text(seeds.read_text())
  _run("long_csv.py", f"--seeds={copy}")
  assert (tmp_path / "x_long.csv").read_text() == out.read_text()


def test_long_csv_bad_input_is_one_error_line(tmp_path):
  bad = tmp_path / "bad_seeds.json"
  bad.write_text(json.dumps({"cells": {"t-b0.2-mf-s0": {"seed": 0, "mae": {"PFCDR": 0.7}}}}))
  for args, says in (((f"--seeds={bad}",), f"{bad}: cell 't-b0.2-mf-s0': no 'rmse'"),
                     ((f"--seeds={tmp_path / 'no_seeds.json'}",), "No such file"),
                     ((), "--seeds is required"),
                     ((f"--seeds={tmp_path / 'x.json'}",), "give --out")):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "long_csv.py"), *args],
                          capture_output=True, text=True, timeout=120, env=ENV)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), \
        proc.stderr
    assert says in lines[0]
  assert not (tmp_path / "bad_long.csv").exists()


def test_multi_host_flags_bad_input_is_one_error_line(tmp_path):
  for args, says in (
      (("--coordinator_address=127.0.0.1:1",), "go together"),
      (("--coordinator_address=127.0.0.1:1", "--num_processes=2", "--process_id=2"),
       "--process_id=2: expected 0..1"),
      (("--only_seeds=x",), "--only_seeds=x: expected integers"),
      (("--reuse_leakage=/no/such/dir",), "--reuse_leakage=/no/such/dir: no such directory")):
    script = "frontier.py" if "seeds" in args[0] or "reuse" in args[0] else "pfcdr.py"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script),
                           "--task=synthetic", "--scale=0.002", f"--workdir={tmp_path}",
                           *args], capture_output=True, text=True, timeout=120, env=ENV)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), \
        proc.stderr
    assert says in lines[0]
