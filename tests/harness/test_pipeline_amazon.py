"""The paper's Amazon tasks end to end on fixture files in the published formats."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pfcdr_jax.data import amazon, tasks
from pfcdr_jax.data.errors import DownloadError

ROOT = Path(__file__).resolve().parents[2]


def _write_fixtures(amazon_dir: Path, seed: int = 0):
  """CDs_and_Vinyl as reviews_*_5.json.gz, Movies_and_TV as ratings_*.csv."""
  rng = np.random.default_rng(seed)
  amazon_dir.mkdir(parents=True)
  users = [f"A{n:05d}XYZ" for n in range(90)]
  taste = rng.normal(size=(90, 3))
  music, movies = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
  with gzip.open(amazon_dir / "reviews_CDs_and_Vinyl_5.json.gz", "wt") as f:
    for u, name in enumerate(users[:75]):
      for j in rng.choice(40, size=7, replace=False):
        r = float(np.clip(np.round(3.5 + taste[u] @ music[j]), 1, 5))
        f.write(json.dumps({"reviewerID": name, "asin": f"B00MUS{j:04d}",
                            "reviewerName": "x", "helpful": [0, 0], "reviewText": "ok",
                            "overall": r, "summary": "s", "unixReviewTime": 1400000000 + int(j),
                            "reviewTime": "05 13, 2014"}) + "\n")
  with open(amazon_dir / "ratings_Movies_and_TV.csv", "w") as f:
    for u, name in enumerate(users[15:], start=15):
      for j in rng.choice(40, size=7, replace=False):
        r = float(np.clip(np.round(3.5 + taste[u] @ movies[j]), 1, 5))
        f.write(f"{name},B00MOV{j:04d},{r},{1300000000 + j}\n")


def test_music2movie_script_on_fixture_files(tmp_path):
  _write_fixtures(tmp_path / "data" / "amazon")
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=music2movie",
         f"--data_dir={tmp_path / 'data'}", f"--workdir={tmp_path / 'run'}", "--epochs=5",
         "--lrs=0.02", "--inversion_steps=30", "--topk=10"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads((tmp_path / "run" / "results.json").read_text())
  assert res["task"] == "music2movie" and res["synthetic"] is False
  assert res["dataset"]["overlap"] == 60          # users 15..74 are in both files
  assert res["dataset"]["test_users"] == 12       # round(0.2 * 60)
  assert "PFCDR" in out.stdout and "EMCDR" in out.stdout


def test_music2movie_without_files_or_network_names_each_file(tmp_path, monkeypatch):
  # Point the download at a closed local port so the test never touches the internet.
  monkeypatch.setattr(amazon, "AMAZON_URL", "http://127.0.0.1:9/{category}.json.gz")
  with pytest.raises(DownloadError) as err:
    tasks.load_task("music2movie", data_dir=tmp_path)
  msg = str(err.value)
  for category in ("CDs_and_Vinyl", "Movies_and_TV"):
    assert f"reviews_{category}_5.json.gz" in msg
    assert str(tmp_path / "amazon" / f"reviews_{category}_5.json.gz") in msg
  assert "127.0.0.1:9" in msg
  assert not list((tmp_path / "amazon").glob("*.part"))
