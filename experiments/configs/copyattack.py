"""CopyAttack presets: the paper's defaults, the ``--synthetic`` smoke run, and
which config field each flag of ``experiments/copyattack.py`` sets.

Precedence: library defaults (the paper's values, ``DEFAULT``) < flags <
``SYNTHETIC`` (when ``--synthetic``), then the synthetic caps on the reward's
k and on the pretend accounts.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from configs import flag_paths
from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import config as ca_config

# The library's defaults (the paper's values where it gives them), plus the
# attacker's query budget: 1000 queries of the black box per target item,
# training included. Training asks for more episodes than the budget pays for
# on 50 items, so the budget is what stops it; the policies at 4 checkpoints
# give the HR@20-against-queries curve.
BUDGET = {
    "attack.query_budget": 1000,
    "attack.episodes": 8192,
    "attack.checkpoints": 4,
}
# The training settings chosen on the 20 validation items
# (docs/results/copyattack_selection.json, experiments/copyattack_select.py;
# the stopping rule: copyattack_selection_stop.json, --stage=stop; a test holds
# these equal to the files' choices). They serve every learned row.
SELECTED = {
    "attack.stop": "budget",
    "attack.shared": True,
    "attack.baseline": "ema",
    "attack.credit": "last",
    "attack.episodes_per_item": 1,
    "attack.lr": 0.03,
    "attack.final_greedy": False,
}
DEFAULT = config_util.override(ca_config.CopyAttackConfig(),
                               {**BUDGET, **SELECTED})

# --synthetic: tiny platforms (no download), a cheaper target model and
# evaluation; the reward's top-k is capped because the catalogue has 63 items,
# the pretend accounts because fewer than 50 of the 80 target users have the
# 5 training interactions an account is drawn from.
SYNTHETIC = {
    "data.synthetic": True,
    "target.n_neg": 20,
    "target.batch_size": 32,
    "evaluation.n_neg": 20,
}
SYNTHETIC_MAX_REWARD_K = 10
SYNTHETIC_MAX_PRETEND = 20

# Flag name -> the config path(s) it sets. The master seed also seeds the
# target model's and the source MF's configs.
FLAG_PATHS = {
    "seed": ("seed", "target.seed", "mf.seed"),
    "data_dir": ("data.data_dir",),
    "synthetic": ("data.synthetic",),
    "num_target_items": ("data.num_target_items",),
    "max_target_interactions": ("data.max_target_interactions",),
    "min_source_profiles": ("data.min_source_profiles",),
    "target_max_epochs": ("target.max_epochs",),
    "target_item_norm": ("target.item_norm",),
    "depth": ("tree.depth",),
    "n_pretend": ("pretend.n_pretend",),
    "budget": ("attack.budget",),
    "query_every": ("attack.query_every",),
    "reward_k": ("attack.reward_k",),
    "goal_hr": ("attack.goal_hr",),
    "gamma": ("attack.gamma",),
    "lr": ("attack.lr",),
    "episodes": ("attack.episodes",),
    "batch_episodes": ("attack.batch_episodes",),
    "methods": ("methods",),
    "n_seeds": ("n_seeds",),
    "attack_workers": ("attack_workers",),
    "reward": ("attack.reward",),
    "increments": ("attack.increments",),
    "shared": ("attack.shared",),
    "entropy": ("attack.entropy",),
    "pretend_source": ("pretend.source",),
    "target_item_id": ("target.item_id",),
    "target_lr": ("target.lr",),
    "analysis": ("analysis.kind",),
    "depths": ("analysis.depths",),
    "budgets": ("analysis.budgets",),
    "items_per_group": ("analysis.items_per_group",),
    "detection_train_items": ("analysis.train_items",),
    "query_budget": ("attack.query_budget",),
    "credit": ("attack.credit",),
    "baseline": ("attack.baseline",),
    "episodes_per_item": ("attack.episodes_per_item",),
    "checkpoints": ("attack.checkpoints",),
    "final_greedy": ("attack.final_greedy",),
    "stop": ("attack.stop",),
    "plateau_window": ("attack.plateau_window",),
    "plateau_patience": ("attack.plateau_patience",),
    "num_validation_items": ("data.num_validation_items",),
    "item_set": ("data.item_set",),
}

_INT_LISTS = ("depths", "budgets")


def _flag_value(name: str, value: Any) -> Any:
  """A flag's value as the config field holds it (lists -> tuples)."""
  if name in _INT_LISTS:
    try:
      return tuple(int(x) for x in value)
    except ValueError as e:
      raise ValueError(f"--{name} must be integers, got {value}") from e
  if name == "methods":
    return tuple(value) or None
  return value


# Flags checked before any work: name -> (lowest allowed value, what is expected).
BOUNDS = {
    "seed": (0, "an integer >= 0"), "num_target_items": (1, "an integer >= 1"),
    "max_target_interactions": (1, "an integer >= 1"),
    "min_source_profiles": (1, "an integer >= 1"), "target_max_epochs": (1, "an integer >= 1"),
    "depth": (1, "an integer >= 1"), "n_pretend": (1, "an integer >= 1"),
    "budget": (1, "an integer >= 1"), "query_every": (1, "an integer >= 1"),
    "reward_k": (0, "an integer >= 0 (0: the whole catalogue)"),
    "episodes": (0, "an integer >= 0"), "batch_episodes": (1, "an integer >= 1"),
    "n_seeds": (1, "an integer >= 1"),
    "attack_workers": (0, "an integer >= 0 (0: one per core)"),
    "items_per_group": (1, "an integer >= 1"),
    "detection_train_items": (1, "an integer >= 1"),
    "query_budget": (0, "an integer >= 0 (0: no cap)"),
    "episodes_per_item": (1, "an integer >= 1"),
    "checkpoints": (1, "an integer >= 1"),
    "plateau_window": (2, "an integer >= 2"),
    "plateau_patience": (1, "an integer >= 1"),
    "num_validation_items": (0, "an integer >= 0"),
    "gamma": (0.0, "a number in [0, 1]"), "lr": (0.0, "a number > 0"),
    "target_lr": (0.0, "a number > 0"), "goal_hr": (0.0, "a number in (0, 1]"),
}


def _check_bounds(flag_values: Mapping[str, Any]) -> None:
  for name, value in flag_values.items():
    if name not in BOUNDS or value is None:
      continue
    low, expected = BOUNDS[name]
    bad = not math.isfinite(float(value)) or value < low
    bad |= name in ("lr", "target_lr", "goal_hr") and value <= 0
    bad |= name in ("gamma", "goal_hr") and value > 1
    if bad:
      raise ValueError(f"--{name}={value}: expected {expected}")


def get_config(flag_values: Optional[Mapping[str, Any]] = None
               ) -> ca_config.CopyAttackConfig:
  """Builds the run's config from flag values (names of ``FLAG_PATHS``).

  Args:
    flag_values: flag name -> value; a missing name keeps the default.

  Returns:
    The CopyAttackConfig.

  Raises:
    ValueError: an unknown flag name or a malformed value.
  """
  flag_values = dict(flag_values or {})
  overrides = flag_paths.overrides(flag_values, FLAG_PATHS, _flag_value)
  _check_bounds(flag_values)
  cfg = config_util.override(DEFAULT, overrides)
  if cfg.data.synthetic:
    cfg = config_util.override(cfg, SYNTHETIC)
    cfg = config_util.override(cfg, {
        "attack.reward_k": min(cfg.attack.reward_k, SYNTHETIC_MAX_REWARD_K),
        "pretend.n_pretend": min(cfg.pretend.n_pretend,
                                 SYNTHETIC_MAX_PRETEND)})
  return cfg
