"""experiments/ablation_contrasts.py on the committed PFCDR+ ablation, and bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "docs" / "results" / "ablate_plus_comedy2drama.json"


def _run(*args):
  return subprocess.run([sys.executable, str(ROOT / "experiments" / "ablation_contrasts.py"),
                         *args], capture_output=True, text=True, timeout=120)


def test_prints_the_paired_difference_of_every_step():
  proc = _run(f"--file={FILE}")
  assert proc.returncode == 0, proc.stderr
  rows = json.loads(FILE.read_text())["rows"]
  step = "default without prototypes (2 scalars only)"
  ref = "PFCDR+ default (+ neighbours if validation says so)"
  get = lambda name: {r["seed"]: r["test_mae"] for r in rows if r["step"] == name}
  a, b = get(step), get(ref)
  want = np.mean([a[s] - b[s] for s in a])
  line = next(l for l in proc.stdout.splitlines() if l.startswith(f"| {step} |"))
  assert line.split("|")[3].strip() == f"{want:+.4f}"
  assert line.split("|")[2].strip() == str(len(a))


def test_bad_input_is_one_error_line(tmp_path):
  proc = _run(f"--file={tmp_path / 'missing.json'}")
  assert proc.returncode == 1 and proc.stderr.strip().startswith("error: --file=")
  proc = _run(f"--file={FILE}", "--against=no such step")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: --against=")
