"""Attack settings are chosen on validation items, and the presets hold the
committed choice."""
import json
from pathlib import Path

import pytest

from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import selection

from test_copyattack_pipeline import _presets
from test_copyattack_pipeline import _tiny_config

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


def test_presets_hold_the_committed_validation_choice():
  committed = json.loads(
      (ROOT / "docs/results/copyattack_selection.json").read_text())
  base = _presets().DEFAULT.attack
  chosen = selection.apply_setting(base, committed["chosen"])
  assert chosen == base  # the presets already are the chosen setting
  assert committed["query_budget"] == base.query_budget
  # The choice is the best mean validation HR@20 of the grid.
  best = max(committed["settings"], key=lambda r: r["HR@20"])
  assert best["setting"] == committed["chosen"]
  assert len(committed["settings"]) == len(selection.grid_settings())
  # Stage 2: the stopping rule, tried at stage 1's choice, is the presets' too.
  stop = json.loads(
      (ROOT / "docs/results/copyattack_selection_stop.json").read_text())
  assert stop["stage1_setting"] == committed["chosen"]
  assert [r["rule"] for r in stop["rules"]][0] == stop["chosen"]
  assert max(r["HR@20"] for r in stop["rules"]) == stop["rules"][0]["HR@20"]
  assert {r["rule"] for r in stop["rules"]} == set(selection.STOP_RULES)
  assert stop["budget_reproduces_stage1"]
  for k, v in selection.STOP_RULES[stop["chosen"]].items():
    assert getattr(base, k) == v, k


def test_stop_selection_replays_stage1_and_scores_validation_items(
    tmp_path, monkeypatch):
  monkeypatch.setattr(selection, "GRID", {
      "shared": (True,), "estimator": ("ema-last",), "lr": (1e-2,),
      "final_greedy": (False,)})
  monkeypatch.setattr(selection, "STOP_RULES", {
      "budget": dict(stop="budget"),
      "plateau(window=2,patience=1)": dict(stop="plateau", plateau_window=2,
                                           plateau_patience=1)})
  cfg = _tiny_config(**{"attack.query_budget": 40, "attack.episodes": 40,
                        "attack.batch_episodes": 2,
                        "data.num_validation_items": 2})
  stage1 = selection.run_selection(cfg, tmp_path)
  out = selection.run_stop_selection(cfg, tmp_path, stage1)
  on_disk = json.loads((tmp_path / "selection_stop.json").read_text())
  assert on_disk == json.loads(json.dumps(out))
  assert out["budget_reproduces_stage1"]
  assert out["validation_items"] == stage1["validation_items"]
  rules = {r["rule"]: r for r in out["rules"]}
  assert rules["plateau(window=2,patience=1)"]["updates_train"] < rules[
      "budget"]["updates_train"]
  assert out["chosen"] == out["rules"][0]["rule"]


def test_selection_scores_only_validation_items(tmp_path, monkeypatch):
  monkeypatch.setattr(selection, "GRID", {
      "shared": (True,), "estimator": ("ema-last", "loo-spread"),
      "lr": (1e-2,), "final_greedy": (False,)})
  cfg = _tiny_config(**{"attack.query_budget": 20, "attack.episodes": 8,
                        "attack.batch_episodes": 4,
                        "data.num_validation_items": 2})
  out = selection.run_selection(cfg, tmp_path)
  on_disk = json.loads((tmp_path / "selection.json").read_text())
  assert on_disk == json.loads(json.dumps(out))
  assert len(out["settings"]) == 2
  assert out["settings"][0]["HR@20"] >= out["settings"][1]["HR@20"]
  assert out["chosen"] == out["settings"][0]["setting"]
  assert len(out["validation_items"]) == 2
  # The validation items are not the test items a Table 2 run scores.
  from pfcdr_jax.copyattack import data as data_lib
  from pfcdr_jax.copyattack import pipeline
  cd = data_lib.align_platforms(*pipeline.load_platforms(cfg.data, cfg.seed))
  val, test = pipeline.item_split(cd, cfg.data, cfg.seed)
  assert out["validation_items"] == [cd.item_ids[i] for i in val]
  assert not set(out["validation_items"]) & {cd.item_ids[i] for i in test}
  for r in out["settings"]:
    assert r["queries_total"] <= 20
