"""CopyAttack's flags are checked before any work (one ValueError naming the flag)."""

import pytest

from configs import copyattack as presets


@pytest.mark.parametrize("flag,value", [
    ("reward_k", -1), ("num_target_items", 0), ("budget", 0), ("seed", -1),
    ("batch_episodes", 0), ("gamma", 1.5), ("gamma", -0.1), ("lr", 0.0),
    ("goal_hr", 0.0), ("goal_hr", 2.0), ("lr", float("nan")), ("n_seeds", 0)])
def test_bad_value_is_refused_naming_the_flag(flag, value):
  with pytest.raises(ValueError, match=rf"^--{flag}={value}: expected "):
    presets.get_config({flag: value})


def test_good_values_pass():
  cfg = presets.get_config({"reward_k": 0, "num_target_items": 1, "gamma": 1.0,
                            "episodes": 0, "goal_hr": 1.0})
  assert cfg.attack.reward_k == 0 and cfg.data.num_target_items == 1
