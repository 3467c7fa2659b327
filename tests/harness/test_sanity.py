"""The sanity gate's records and lines (pure functions), and the gate in a run."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import results as results_lib
from pfcdr_jax.harness import sanity

ROOT = Path(__file__).resolve().parents[2]
RATING = np.tile(np.array([3.0, 4.0, 5.0, 4.0], np.float32), 250)   # 1000 ratings
FLOORS = {"GlobalMean": np.full(RATING.shape, 4.0),   # MAE 0.5
          "ItemMean": RATING + np.tile([0.4, -0.4], 500)}   # MAE 0.4


def test_pretrain_record_compares_with_the_mean_predictor():
  assert sanity.pretrain_record({"heldout_mse": 0.7, "mean_mse": 0.9}) == {
      "ok": True, "value": 0.7, "floor": 0.9, "floor_name": "mean predictor"}
  assert not sanity.pretrain_record({"heldout_mse": 18.0, "mean_mse": 0.6})["ok"]
  assert not sanity.pretrain_record({"heldout_mse": float("nan"), "mean_mse": 0.6})["ok"]


def _off_by(mae):
  """Predictions with absolute error exactly ``mae`` on every rating."""
  return RATING + np.tile([mae, -mae], RATING.size // 2)


def test_method_record_must_clearly_beat_both_floors():
  ok = sanity.method_record("PFCDR", _off_by(0.3), RATING, FLOORS)
  assert ok["ok"] and ok["floor_name"] == "ItemMean"
  np.testing.assert_allclose([ok["value"], ok["floor"]], [0.3, 0.4], rtol=1e-6)
  # Below GlobalMean but not below ItemMean: fails, and the binding floor is named.
  bad = sanity.method_record("EMCDR", _off_by(0.45), RATING, FLOORS)
  assert not bad["ok"] and bad["floor_name"] == "ItemMean"
  assert not sanity.method_record("TGT", _off_by(3.8), RATING, FLOORS)["ok"]
  # A tie within the noise of the validation ratings is not a pass: errors 0.0 or 0.8
  # (mean 0.399, noisy) against ItemMean's constant 0.4.
  noisy = RATING + np.where(np.arange(RATING.size) % 2 == 0, 0.0, 0.798)
  tie = sanity.method_record("PTUPCDR", noisy, RATING, FLOORS)
  assert tie["value"] < tie["floor"] and not tie["ok"]
  assert "less than 2 standard errors" in sanity.failures({"PTUPCDR": tie})[0]
  # ItemMean is held to GlobalMean; GlobalMean is the reference.
  assert sanity.method_record("ItemMean", FLOORS["ItemMean"], RATING, FLOORS)["ok"]
  assert not sanity.method_record("ItemMean", _off_by(0.6), RATING, FLOORS)["ok"]
  assert sanity.method_record("GlobalMean", FLOORS["GlobalMean"], RATING, FLOORS)["ok"]
  assert not sanity.method_record("PFCDR", np.full(RATING.shape, np.nan), RATING, FLOORS)["ok"]


def test_failure_lines_name_stage_numbers_and_cause():
  recs = {"pretrain_target": sanity.pretrain_record({"heldout_mse": 18.07, "mean_mse": 0.6}),
          "PFCDR": sanity.method_record("PFCDR", _off_by(3.3), RATING, FLOORS),
          "EMCDR": sanity.method_record("EMCDR", _off_by(0.45), RATING, FLOORS),
          "GlobalMean": sanity.method_record("GlobalMean", FLOORS["GlobalMean"], RATING, FLOORS)}
  meta = {"pretrain_target": {"cap_reached": True, "epochs_run": 30, "lr_at_edge": "high",
                              "lr": 0.1, "lrs_tried": [0.01, 0.1]}}
  lines = sanity.failures(recs, meta)
  assert len(lines) == 3 and all("\n" not in line for line in lines)
  assert lines[0].startswith("sanity: pretrain_target held-out MSE 18.0700 is not below the "
                             "mean predictor's 0.6000")
  assert "epoch cap (30)" in lines[0] and "high edge" in lines[0]
  assert "PFCDR validation MAE 3.3000 is not clearly below" in lines[1] and "pretrain_target failed its own" in lines[1]
  assert "EMCDR" in lines[2]
  # A method's line read alone (as the run warns, stage by stage) keeps its cause.
  assert sanity.failures(recs, meta, only=("PFCDR",)) == [lines[1]]
  with pytest.raises(sanity.SanityError, match="pretrain_target"):
    sanity.enforce(lines, strict=True)
  sanity.enforce(lines, strict=False)   # warns only


def _sparse_cfg(tmp_path, **kw):
  upd = {"data.task": "synthetic", "data.like": "sparse", "data.scale": 0.25, "seed": 0,
         "pretrain.lrs": (0.005, 0.02), "pretrain.epochs": 30, "inversion.steps": 50,
         "bridge.epochs": 30, "cache.dir": str(tmp_path / "cache")}
  upd.update(kw)
  return config_lib.override(config_lib.PFCDRConfig(), upd)


@pytest.fixture(scope="module")
def broken_and_fixed(tmp_path_factory):
  """The reported failure on a small sparse shape: the paper's bare product (offsets
  none) stays at its zero start; the default biased form trains."""
  tmp = tmp_path_factory.mktemp("sparse")
  broken = pipeline.run_pfcdr(_sparse_cfg(tmp, **{"pretrain.offsets": "none"}), tmp / "none")
  fixed = pipeline.run_pfcdr(_sparse_cfg(tmp), tmp / "bias")
  return broken, fixed, tmp


def test_zero_start_is_flagged_and_every_method_above_globalmean_fails(broken_and_fixed):
  broken, _, _ = broken_and_fixed
  s = broken["sanity"]
  assert not s["pretrain_target"]["ok"]
  assert s["pretrain_target"]["value"] > 5 * s["pretrain_target"]["floor"]
  gm = broken["methods"]["GlobalMean"]["mae"]
  assert broken["methods"]["PFCDR"]["mae"] > 2.0      # what the user saw: MAE near 4
  for name, m in broken["methods"].items():
    if m["mae"] > gm:
      assert not s[name]["ok"], name
  assert set(s) == {"pretrain_source", "pretrain_target", *broken["methods"]}
  for rec in s.values():
    assert set(rec) == {"ok", "value", "floor", "floor_name"}
  text = results_lib.format_table(broken)
  assert "FAILED SANITY GATE" in text and "sanity: pretrain_target held-out MSE" in text


def test_biased_scorer_trains_on_the_sparse_shape(broken_and_fixed):
  _, fixed, _ = broken_and_fixed
  s, m = fixed["sanity"], fixed["methods"]
  assert s["pretrain_source"]["ok"] and s["pretrain_target"]["ok"]
  assert m["PFCDR"]["mae"] < m["GlobalMean"]["mae"]
  for name, rec in m.items():   # the acceptance rule, here on our own sparse shape
    if rec["mae"] > m["GlobalMean"]["mae"]:
      assert not s[name]["ok"], name
  prof = fixed["data_profile"]
  assert prof["target"]["ratings_per_item"]["median"] <= 2
  assert 0.2 < prof["test_cold_item_share"] < 0.8
  json.dumps(fixed, allow_nan=False)


def test_strict_makes_a_failed_gate_an_error(tmp_path):
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=synthetic",
         "--like=sparse", "--scale=0.25", "--offsets=none", "--lrs=0.005", "--epochs=5",
         "--inversion_steps=20", "--bridge_epochs=5", "--strict", f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: sanity: pretrain_") and last.endswith("(--strict)")
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "w" / "results.json").exists()   # nothing half-written


def test_a_tampered_pretraining_cache_entry_is_retrained(broken_and_fixed):
  _, fixed, tmp = broken_and_fixed
  cfg = _sparse_cfg(tmp)
  entries = sorted((tmp / "cache").glob("pretrain-target-*.npz"))
  assert entries
  store = cache_lib.StageCache(tmp / "cache")
  for path in entries:
    key = path.stem[len("pretrain-target-"):]
    arrays, meta = store.load("pretrain-target", key)
    store.save("pretrain-target", key, arrays, dict(meta, lr=12345.0, epoch=-7,
                                                     heldout_mse=-1.0))
  again = pipeline.run_pfcdr(cfg, tmp / "bias2")
  sel = again["selected"]["pretrain"]["pretrain_target"]
  assert not sel.get("cached") and sel["lr"] in cfg.pretrain.lrs and sel["heldout_mse"] > 0
  assert again["methods"] == fixed["methods"]
