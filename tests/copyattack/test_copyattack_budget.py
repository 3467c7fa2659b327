"""The query budget is enforced and reported; validation and test items are
disjoint."""
import json

import numpy as np
import pytest

from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import synthetic
from pfcdr_jax.copyattack import training

from test_copyattack_pipeline import _tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


def test_budget_cuts_the_updates_it_cannot_pay_for():
  cfg = methods.AttackConfig(budget=30, query_every=3, batch_episodes=16,
                             episodes=8192, query_budget=1000)
  assert cfg.episode_queries == 11  # 10 groups + the untouched platform
  # Shared: 50 items x (1000 - 11) queries; an update costs at most 16 x 11.
  assert training.n_updates(cfg, 50) == 50 * 989 // 176
  # Per item: one item's 989 queries.
  per_item = methods.AttackConfig(**{**cfg.__dict__, "shared": False})
  assert training.n_updates(per_item, 50) == 989 // 176
  # No cap: the episodes asked.
  free = methods.AttackConfig(**{**cfg.__dict__, "query_budget": 0})
  assert training.n_updates(free, 50) == 8192 // 16
  with pytest.raises(ValueError, match="query_budget"):
    methods.AttackConfig(query_budget=5)  # less than one attack's 11 queries


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
  # 2 items, budget 3, 1 group: an episode makes at most 2 queries. The budget
  # of 12 per item leaves 2 x (12 - 2) = 20 training queries: 5 updates of
  # 2 episodes (4 queries at most) fit, of the 6 asked (12 episodes / 2).
  cfg = _tiny_config(**{"attack.query_budget": 12, "attack.episodes": 12,
                        "attack.checkpoints": 2,
                        "methods": ("RandomAttack", "TargetAttack100",
                                    "TargetAttack100-BestOf", "CopyAttack")})
  out = tmp_path_factory.mktemp("budget")
  return cfg, out, pipeline.run_copyattack(cfg, out)


def test_every_attack_stays_within_the_budget_and_says_what_it_spent(
    budget_run):
  cfg, _, res = budget_run
  for name, m in res["methods"].items():
    if name == "Without Attack":
      continue
    assert m["queries_total"] <= cfg.attack.query_budget, name
    assert m["queries_total"] == m["queries_train"] + m["queries_final"]
  ca = res["methods"]["CopyAttack"]
  assert ca["queries_train"] > 0 and ca["injections_train"] > 0
  assert res["methods"]["CopyAttack-untrained"]["queries_train"] == 0
  assert res["methods"]["TargetAttack100"]["queries_train"] == 0
  # The best-of baseline spends its trials: (12 - 2) // 2 = 5 per item.
  best = res["methods"]["TargetAttack100-BestOf"]
  assert res["query_budget"]["trials"]["TargetAttack100-BestOf"] == 5
  assert 0 < best["queries_train"] <= 10
  # Training stopped at what the budget pays for, and says so.
  assert res["query_budget"]["updates"]["CopyAttack"] == 5
  assert res["query_budget"]["updates_asked"]["CopyAttack"] == 6
  assert len(res["training_curves"]["CopyAttack"]) == 5
  assert ca["queries_train"] <= 10
  # The planned contrasts: CopyAttack against the rows the run has.
  assert [t["row"] for t in res["planned_contrasts"]] == [
      "TargetAttack100", "TargetAttack100-BestOf"]
  assert all(t["p_holm"] >= t["p"] for t in res["planned_contrasts"])
  table = (budget_run[1] / "table2.md").read_text()
  assert "queries / item (train + final)" in table


def test_spend_curves_have_a_point_per_checkpoint_and_trial_count(budget_run):
  _, out, res = budget_run
  on_disk = json.loads((out / "results.json").read_text())
  curves = on_disk["spend_curves"]
  assert len(curves["CopyAttack"]) == 3  # untrained + two checkpoints
  assert curves["CopyAttack"][0]["HR@20"] == pytest.approx(
      res["methods"]["CopyAttack-untrained"]["HR@20"])
  assert [round(p["queries"]) for p in curves["TargetAttack100-BestOf"]] == [
      2, 4, 8, 12]  # 0, 1, 3, 5 trials + the final attack
  for pts in curves.values():
    q = [p["queries"] for p in pts]
    assert q == sorted(q) and q[-1] <= 12
    for p in pts:
      lo, hi = p["HR@20_ci95"]
      assert lo <= p["HR@20"] <= hi
  assert (out / "queries.png").is_file()
  # The last checkpoint is the Table 2 row.
  assert curves["CopyAttack"][-1]["HR@20"] == pytest.approx(
      res["methods"]["CopyAttack"]["HR@20"])


def test_validation_and_test_items_are_disjoint_and_nested():
  cd = data_lib.align_platforms(*synthetic.make_synthetic_platforms(
      0, n_target_users=60, n_source_users=120, n_items=40))
  val, test = data_lib.split_target_items(cd, 10, 8, seed=3,
                                          max_target_interactions=100)
  assert len(val) == 8 and len(test) == 10
  assert not set(val.tolist()) & set(test.tolist())
  val2, test5 = data_lib.split_target_items(cd, 5, 8, seed=3,
                                            max_target_interactions=100)
  np.testing.assert_array_equal(val, val2)  # validation ignores n_test
  assert set(test5.tolist()) <= set(test.tolist())
  with pytest.raises(ValueError, match="validation"):
    data_lib.split_target_items(cd, 40, 8, seed=3,
                                max_target_interactions=100)


def test_results_name_the_split_and_score_the_test_side(budget_run):
  cfg, _, res = budget_run
  split = res["item_split"]
  assert split["scored"] == "test"
  assert res["target_items"] == split["test"]
  assert not set(split["validation"]) & set(split["test"])
  assert len(split["validation"]) == cfg.data.num_validation_items


def test_holm_adjusts_step_down_and_keeps_order():
  from pfcdr_jax.copyattack import analysis_stats
  tests = analysis_stats.holm([{"p": 0.01}, {"p": 0.04}, {"p": 0.03}])
  # Sorted p 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(.., 0.04).
  assert [t["p_holm"] for t in tests] == pytest.approx([0.03, 0.06, 0.06])
  d = analysis_stats.paired([0.5, 0.4, 0.3, 0.9], [0.1, 0.1, 0.1, 0.1])
  assert (d["wins"], d["losses"], d["n_items"]) == (4, 0, 4)
  assert d["mean_diff"] == pytest.approx((0.4 + 0.3 + 0.2 + 0.8) / 4)


def test_best_of_is_only_for_baselines_and_depth_tests_need_the_reference():
  with pytest.raises(ValueError, match="best_of"):
    methods.AttackConfig(best_of=True, query_budget=100)  # a learning method
  from pfcdr_jax.copyattack import analysis_stats
  rows = [{"depth": 2, "method": "CopyAttack", "per_item_HR20": [0.1, 0.2]}]
  out = analysis_stats.depth_tests(rows, _tiny_config())  # tree.depth = 2
  assert out["tests"] == []
  out = analysis_stats.depth_tests(
      rows, config_util.override(_tiny_config(), {"tree.depth": 3}))
  assert out["tests"] == [] and "reference depth 3" in out["note"]


def test_sanity_gate_flags_rows_that_do_not_learn_or_do_not_promote():
  from pfcdr_jax.copyattack import analysis_stats
  from pfcdr_jax.copyattack import report

  def item(good, bad, untrained, without):
    return {"methods": {
        "Without Attack": {"HR@20": without},
        "Good": {"HR@20": good}, "Good-untrained": {"HR@20": untrained},
        "Bad": {"HR@20": bad}, "Bad-untrained": {"HR@20": untrained}}}
  per_item = [item(0.5 + 0.01 * i, 0.05, 0.3 - 0.01 * i, 0.1)
              for i in range(6)]
  rec = analysis_stats.sanity(per_item)
  assert rec["Good"]["ok"] and rec["Good"]["learns"]
  assert not rec["Bad"]["ok"]
  assert not rec["Bad"]["learns"] and not rec["Bad"]["beats_floor"]
  row = {"HR@20": 0.1, "avg_items_per_profile": 1.0}
  from pfcdr_jax.copyattack import evaluate
  row.update({c: 0.1 for c in evaluate.metric_names()})
  table = report.table2_markdown({"CopyAttack": row, "CopyAttack-untrained": row},
                                 sanity={"CopyAttack": {"ok": False}})
  assert "| CopyAttack ⚠ |" in table and "failed the sanity gate" in table
