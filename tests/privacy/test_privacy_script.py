"""experiments/privacy.py: the --quick smoke run on tiny synthetic data, and bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def _run(*args):
  return subprocess.run([sys.executable, str(ROOT / "experiments" / "privacy.py"), *args],
                        capture_output=True, text=True, timeout=600, env=ENV)


@pytest.mark.slow   # a whole (tiny) run in a subprocess: ~1 min on 2 loaded cores
def test_quick_run_writes_the_table(tmp_path):
  proc = _run("--task=synthetic", "--scale=0.002", "--epochs=1", "--quick",
              f"--workdir={tmp_path / 'p'}", f"--cache_dir={tmp_path / 'c'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads((tmp_path / "p" / "privacy.json").read_text())
  names = [r["method"] for r in out["rows"]]
  assert names[:4] == ["control: random user's U_i", "control: noise like U_i",
                       "control: random user's prototype", "control: noise like prototype"]
  assert names[4:6] == ["control: random user's PFCDR+ scalars",
                        "control: noise like PFCDR+ scalars"]
  assert {"PFCDR", "EMCDR", "DP-EMCDR(eps=1)", "PriCDR-S", "PFCDR-DP(eps=10)", "PFCDR+",
          "PFCDR+ scalars (o_u, a_u)"} <= set(names)
  plus = out["rows"][names.index("PFCDR+")]
  n_kappa = len(plus["settings"]["kappas"])    # (o_u, a_u) at every kappa of the grid
  assert plus["dim"] == out["rows"][names.index("PFCDR")]["dim"] + 2 * n_kappa
  assert plus["mae"] > 0
  assert "B" in plus["preference"] and "A_direct" not in plus["embedding"]
  plus_dp = out["rows"][names.index("PFCDR+(eps=1)")]   # the same two scalars, noised
  assert plus_dp["dim"] == plus["dim"] and plus_dp["mae"] > 0
  assert plus_dp["settings"]["laplace_scale"] == 4.0
  assert "PFCDR+(eps=1) scalars (o_u, a_u)" in names
  emcdr = out["rows"][names.index("EMCDR")]
  assert emcdr["embedding"]["A_direct"]["r2"] == 1.0 and emcdr["mae"] > 0
  assert (tmp_path / "p" / "privacy.png").stat().st_size > 0
  assert "| PFCDR-DP(eps=1) |" in (tmp_path / "p" / "privacy.md").read_text()


def test_bad_epsilons_end_in_one_error_line(tmp_path):
  proc = _run("--epsilons=abc", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == "error: --epsilons=abc: expected numbers"
