"""End-to-end tests of ``copyattack.pipeline.run_copyattack`` on tiny platforms,
the run config, the presets and the script's error path.

Compiling (target model, source MF, evaluation, the attacks' train and attack
programs) is nearly all of this file's time: the module compiles with XLA's
cheapest settings (``jax_disable_most_optimizations``: same computation, less
optimised code), and the budget study reuses the tiny run's budget (3) so its
black box has the same capacity and its programs for that budget come from
the persistent compilation cache of the earlier runs (``conftest.py``).
"""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import config as ca_config
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import source_mf
from pfcdr_jax.copyattack import target_model

REPO = Path(__file__).resolve().parents[2]
RESULT_KEYS = {"methods", "target_model", "table1", "target_items", "tree",
               "timings_s", "n_seeds", "seed_means_HR@20",
               "wilcoxon_vs_CopyAttack", "training_curves",
               "window_distribution", "pretend_reward_vs_HR@20",
               "n_eval_users", "item_split", "query_budget",
               "training_curves_per_seed", "spend_curves",
               "planned_contrasts", "sanity"}
METHODS = ("RandomAttack", "CopyAttack")


def _tiny_config(**changes) -> ca_config.CopyAttackConfig:
  """Seconds-sized run: 40 target / 60 source users, 2 REINFORCE updates."""
  cfg = ca_config.CopyAttackConfig(
      data=ca_config.DataConfig(
          synthetic=True, synthetic_target_users=40, synthetic_source_users=60,
          synthetic_items=60, num_target_items=2, max_target_interactions=100,
          min_source_profiles=3),
      target=target_model.TargetConfig(max_epochs=2, n_neg=10, batch_size=32),
      mf=source_mf.SourceMFConfig(epochs=2, lrs=(0.01,), batch_size=256),
      tree=ca_config.TreeConfig(depth=2),
      pretend=ca_config.PretendConfig(n_pretend=5, pretend_len=5),
      attack=methods.AttackConfig(budget=3, query_every=3, reward_k=5,
                                  episodes=4, batch_episodes=2),
      evaluation=ca_config.EvalConfig(n_neg=10),
      methods=METHODS, n_seeds=1)
  return config_util.override(cfg, changes)


def _numbers(results: dict) -> dict:
  """Method metrics without the wall-clock fields."""
  return {name: {k: v for k, v in m.items() if k != "attack_s"}
          for name, m in results["methods"].items()}


pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  cfg = _tiny_config()
  dirs = [tmp_path_factory.mktemp(f"run{i}") for i in range(2)]
  return cfg, dirs, [pipeline.run_copyattack(cfg, d) for d in dirs]


def test_run_writes_every_file_and_key(two_runs):
  cfg, dirs, (res, _) = two_runs
  for name in ("config.json", "metrics.jsonl", "results.json", "table1.md",
               "table2.md"):
    assert (dirs[0] / name).is_file(), name
  on_disk = json.loads((dirs[0] / "results.json").read_text())
  assert set(on_disk) == RESULT_KEYS
  assert on_disk == json.loads(json.dumps(res))
  assert list(res["methods"]) == ["Without Attack", "RandomAttack",
                                   "CopyAttack", "CopyAttack-untrained"]
  for m in res["methods"].values():
    assert {"HR@20", "HR@10", "HR@5", "NDCG@20", "NDCG@10", "NDCG@5",
            "avg_items_per_profile", "percentile", "percentile_p10",
            "percentile_p90", "full_HR@20"} <= set(m)
  # Learning shows: one shared policy, 2 updates of 2 episodes.
  assert list(res["training_curves"]) == ["CopyAttack"]
  assert len(res["training_curves"]["CopyAttack"]) == 2
  assert {"CopyAttack", "CopyAttack-untrained"} <= set(
      res["window_distribution"])
  assert set(res["wilcoxon_vs_CopyAttack"]) == {
      "Without Attack", "RandomAttack", "CopyAttack-untrained"}
  tm = res["target_model"]
  assert {"test_HR@10", "popularity_HR@10", "untrained_HR@10"} <= set(tm)
  # Pretend accounts are real target users held out of the evaluation.
  assert res["n_eval_users"] == cfg.data.synthetic_target_users - 5
  assert (dirs[0] / "training_curves.png").is_file()
  assert len(res["target_items"]) == cfg.data.num_target_items
  lines = (dirs[0] / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == cfg.data.num_target_items
  first = json.loads(lines[0])
  assert set(first["methods"]) == set(res["methods"])
  assert first["n_eligible"] > 0  # the metrics average over real users
  # No temporary file of the atomic writes is left behind.
  assert not [p for p in os.listdir(dirs[0]) if p.endswith(".tmp")]
  saved = json.loads((dirs[0] / "config.json").read_text())
  assert config_util.from_dict(ca_config.CopyAttackConfig, saved) == cfg


def test_rerun_with_the_same_seed_gives_identical_numbers(two_runs):
  _, dirs, (a, b) = two_runs
  assert _numbers(a) == _numbers(b)
  assert a["target_items"] == b["target_items"]
  assert a["target_model"] == b["target_model"]
  table = [(d / "table2.md").read_text() for d in dirs]
  assert table[0] == table[1]


def test_attacks_on_threads_give_the_numbers_of_one_after_another(tmp_path):
  runs = [pipeline.run_copyattack(_tiny_config(n_seeds=2, attack_workers=w),
                                  tmp_path / f"w{w}") for w in (1, 3)]
  assert _numbers(runs[0]) == _numbers(runs[1])
  assert runs[0]["seed_means_HR@20"] == runs[1]["seed_means_HR@20"]
  assert runs[0]["training_curves"] == runs[1]["training_curves"]
  with pytest.raises(ValueError, match="attack_workers"):
    _tiny_config(attack_workers=-1)


def test_attacks_spend_the_budget(two_runs):
  cfg, _, (res, _) = two_runs
  for name in METHODS:
    assert 0 < res["methods"][name]["n_injected"] <= cfg.attack.budget
    # One query of the untouched platform, one after the 3 injections.
    assert res["methods"][name]["attack_queries"] == 2
  assert "RandomAttack" not in res["training_curves"]


def test_budget_analysis_writes_rows_and_figure(tmp_path):
  # Baselines only: they compile in a second (the learning methods are above).
  # The largest budget is the tiny run's (3): same black-box capacity.
  cfg = _tiny_config(**{"analysis.kind": "budget", "analysis.budgets": (2, 3),
                        "data.num_target_items": 1,
                        "methods": ("RandomAttack", "TargetAttack40")})
  assert pipeline.largest_budget(cfg) == _tiny_config().attack.budget
  out = pipeline.run_copyattack(cfg, tmp_path)
  assert out["analysis"] == "budget"
  assert [(r["budget"], r["method"]) for r in out["rows"]] == [
      (2, "RandomAttack"), (2, "TargetAttack40"), (3, "RandomAttack"),
      (3, "TargetAttack40")]
  assert all(r["n_injected"] <= r["budget"] for r in out["rows"])
  assert json.loads((tmp_path / "budget.json").read_text()) == out["rows"]
  assert (tmp_path / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not (tmp_path / "results.json").exists()
  # Per-item values ride along; no CopyAttack row, so nothing to test.
  assert all(len(r["per_item_HR20"]) == 1 for r in out["rows"])
  tests = json.loads((tmp_path / "budget_tests.json").read_text())
  assert tests["tests"] == []


def test_bad_methods_raise_before_any_work(tmp_path):
  with pytest.raises(ValueError, match="unknown methods"):
    pipeline.run_copyattack(_tiny_config(methods=("Nope",)), tmp_path / "a")
  assert not (tmp_path / "a").exists()
  with pytest.raises(ValueError, match="CopyAttack"):
    pipeline.select_methods(_tiny_config(**{"analysis.kind": "depth",
                                            "methods": ("RandomAttack",)}))
  with pytest.raises(ValueError, match="unknown analysis"):
    _tiny_config(**{"analysis.kind": "nope"})
  with pytest.raises(ValueError, match="no field"):
    _tiny_config(**{"attack.nope": 1})


def test_too_few_target_items_fail_before_any_training(tmp_path, monkeypatch):
  def no_training(*args, **kwargs):
    raise AssertionError("trained the target model")
  monkeypatch.setattr(target_model, "train_target_model", no_training)
  with pytest.raises(ValueError, match="qualify as targets"):
    pipeline.run_copyattack(_tiny_config(**{"data.num_target_items": 999}),
                            tmp_path)
  assert (tmp_path / "table1.md").is_file()
  assert not (tmp_path / "results.json").exists()


def test_largest_budget_covers_the_budget_study():
  cfg = _tiny_config()
  assert pipeline.largest_budget(cfg) == 3
  study = dataclasses.replace(cfg, analysis=ca_config.AnalysisConfig(
      kind="budget", budgets=(2, 7)))
  assert pipeline.largest_budget(study) == 7


def _presets():
  from configs import copyattack  # pylint: disable=g-import-not-at-top
  return copyattack


def test_presets_apply_flags_then_the_synthetic_preset():
  presets = _presets()
  assert presets.get_config() == config_util.override(
      ca_config.CopyAttackConfig(), {**presets.BUDGET, **presets.SELECTED})
  cfg = presets.get_config({"seed": 4, "synthetic": True, "methods": [],
                            "depths": ["2", "3"], "reward_k": 200})
  assert (cfg.seed, cfg.target.seed, cfg.mf.seed) == (4, 4, 4)
  assert cfg.methods is None and cfg.analysis.depths == (2, 3)
  assert cfg.attack.reward_k == presets.SYNTHETIC_MAX_REWARD_K
  assert (cfg.target.n_neg, cfg.target.batch_size, cfg.evaluation.n_neg) == (
      20, 32, 20)
  with pytest.raises(ValueError, match="integers"):
    presets.get_config({"budgets": ["five"]})
  with pytest.raises(ValueError, match="no config field"):
    presets.get_config({"nope": 1})


def test_script_reports_bad_input_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / "experiments" / "copyattack.py"),
       "--synthetic", "--methods=Nope", f"--workdir={tmp_path / 'w'}"],
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: unknown methods ['Nope']")
