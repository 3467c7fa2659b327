"""The pipeline's CopyAttack promotes its item on a small long-tailed platform
pair where copying random profiles does not."""
import json

import pytest

from pfcdr_jax.copyattack import config as ca_config
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import source_mf
from pfcdr_jax.copyattack import target_model

pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


def test_copyattack_beats_random_attack_on_a_long_tailed_fixture(tmp_path):
  # Shaped like the real pair, only smaller: item popularity falls as
  # (rank)^-1, the targets are rare on the target platform (< 10
  # interactions) and in >= 8 source profiles; 150 target / 400 source users.
  cfg = ca_config.CopyAttackConfig(
      data=ca_config.DataConfig(
          synthetic=True, synthetic_target_users=150,
          synthetic_source_users=400, synthetic_items=120,
          synthetic_per_user=15, synthetic_popularity_exponent=1.0,
          num_target_items=3, num_validation_items=0,
          max_target_interactions=10, min_source_profiles=8),
      target=target_model.TargetConfig(max_epochs=20, n_neg=20,
                                       batch_size=64),
      mf=source_mf.SourceMFConfig(epochs=5, lrs=(0.01,), batch_size=256),
      tree=ca_config.TreeConfig(depth=2),
      pretend=ca_config.PretendConfig(n_pretend=10, pretend_len=5),
      attack=methods.AttackConfig(budget=8, query_every=2, episodes=128,
                                  batch_episodes=8),
      evaluation=ca_config.EvalConfig(n_neg=50),
      methods=("RandomAttack", "CopyAttack"), n_seeds=1)
  res = pipeline.run_copyattack(cfg, tmp_path)
  m = res["methods"]
  assert m["Without Attack"]["HR@20"] < 0.3
  # Random profiles barely move the item; copied v*-profiles do.
  assert m["CopyAttack"]["HR@20"] > m["RandomAttack"]["HR@20"] + 0.2
  assert m["CopyAttack"]["percentile"] > m["RandomAttack"]["percentile"] + 0.1
  per_item = [json.loads(line)["methods"] for line in
              (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert len(per_item) == 3
  assert all(r["CopyAttack"]["HR@20"] >= r["RandomAttack"]["HR@20"]
             for r in per_item)
