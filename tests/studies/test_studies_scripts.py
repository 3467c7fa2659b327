"""experiments/figure3.py, figure4.py and table3.py in --quick mode write their outputs."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--task=synthetic", "--scale=0.002", "--quick", "--epochs=2", "--lrs=0.02",
        "--inversion_steps=20", "--bridge_epochs=5")


def _run(script, *args):
  proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *TINY, *args],
                        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_quick_runs_write_json_markdown_png(tmp_path):
  cache = f"--cache_dir={tmp_path / 'cache'}"
  _run("figure3.py", f"--workdir={tmp_path / 'f3'}", cache, "--base_models=mf", "--ratings=5")
  _run("figure4.py", f"--workdir={tmp_path / 'f4'}", cache, "--n_sample=20")
  _run("table3.py", f"--workdir={tmp_path / 't3'}", cache, "--baselines=",
       "--notime_pretraining")
  for stem, d in (("figure3", "f3"), ("figure4", "f4"), ("table3", "t3")):
    for ext in ("json", "md", "png"):
      assert (tmp_path / d / f"{stem}.{ext}").stat().st_size > 0, (stem, ext)
  f3 = json.loads((tmp_path / "f3" / "figure3.json").read_text())
  assert set(f3["k_sweep"]) == {"mf"} and f3["rating_sweep"][0]["r"] == 5.0
  f4 = json.loads((tmp_path / "f4" / "figure4.json").read_text())
  assert {"EMCDR", "PFCDR"} <= set(f4["summary"])
  t3 = json.loads((tmp_path / "t3" / "table3.json").read_text())
  assert [m["method"] for m in t3["methods"]][:2] == ["PFCDR", "EMCDR"]
  assert t3["device"]["backend"] == "cpu"
