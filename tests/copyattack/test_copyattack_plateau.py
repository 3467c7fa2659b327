"""The plateau stopping rule: a numpy reference of the rule, and a training
run that stops where the reference says, spending nothing after it."""
import json

import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import training

from test_copyattack_pipeline import _tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


def reference_stop(curve, window: int, patience: int) -> int:
  """Updates the rule lets run on ``curve`` (the returns it would see)."""
  best, best_se, wait = -np.inf, 0.0, 0
  for end in range(window, len(curve) + 1, window):
    w = np.asarray(curve[end - window:end], float)
    se = w.std(ddof=1) / np.sqrt(window)
    if w.mean() > best + np.hypot(se, best_se):
      best, best_se, wait = w.mean(), se, 0
    else:
      wait += 1
    if wait >= patience:
      return end
  return len(curve)


def _run_rule(curve, window, patience):
  state = training.Plateau.init()
  for u, r in enumerate(curve):
    if state.stopped:
      return u
    state = training._plateau_step(state, jnp.asarray(u), jnp.float32(r),
                                   window=window, patience=patience)
  return len(curve)


def test_rule_stops_on_a_plateau_and_not_on_a_rise():
  rng = np.random.default_rng(0)
  noise = rng.normal(0, 0.01, 200)
  rising = np.linspace(0.0, 1.0, 200) + noise
  plateau = np.minimum(np.linspace(0.0, 2.0, 200), 0.5) + noise
  # A steady rise never stops; a rise to 0.5 at update 50 then flat does,
  # at least ``patience`` windows into the plateau (a noise window that
  # beats the best by two standard errors resets the wait).
  assert _run_rule(rising, 10, 3) == reference_stop(rising, 10, 3) == 200
  stop = _run_rule(plateau, 10, 3)
  assert stop == reference_stop(plateau, 10, 3)
  assert 80 <= stop <= 150
  # A flat curve stops after the first window and ``patience`` more.
  flat = np.full(100, 0.3) + noise[:100]
  assert _run_rule(flat, 10, 2) == reference_stop(flat, 10, 2) == 30


def test_stop_and_window_are_checked():
  with pytest.raises(ValueError, match="stop must be"):
    methods.AttackConfig(stop="early")
  with pytest.raises(ValueError, match="plateau_window"):
    methods.AttackConfig(plateau_window=1)


@pytest.fixture(scope="module")
def plateau_run(tmp_path_factory):
  # 40 updates asked of 2 episodes; windows of 2 updates, patience 1: the
  # rule fires on the first window that does not beat the best.
  cfg = _tiny_config(**{"attack.episodes": 80, "attack.stop": "plateau",
                        "attack.plateau_window": 2,
                        "attack.plateau_patience": 1,
                        "attack.checkpoints": 2,
                        "methods": ("RandomAttack", "CopyAttack")})
  out = tmp_path_factory.mktemp("plateau")
  return cfg, out, pipeline.run_copyattack(cfg, out)


def test_training_stops_where_the_rule_says_and_spends_nothing_after(
    plateau_run):
  cfg, out, res = plateau_run
  curve = res["training_curves"]["CopyAttack"]
  asked = training.n_updates(cfg.attack, 2)
  assert asked == 40
  ca = res["methods"]["CopyAttack"]
  assert ca["updates_train"] == len(curve) < asked
  # The rule, run on the returns it saw, stops at the same update.
  assert reference_stop(curve + [0.0] * (asked - len(curve)), 2, 1) == len(
      curve)
  # Spend: at most 2 episodes x 2 queries per update made, over 2 items.
  assert 0 < ca["queries_train"] <= len(curve) * 2 * 2 / 2
  on_disk = json.loads((out / "results.json").read_text())
  assert on_disk["training_curves_per_seed"]["CopyAttack"] == [curve]
  # The last checkpoint is the stopped policy: same spend as the row.
  last = on_disk["spend_curves"]["CopyAttack"][-1]
  assert last["queries"] == pytest.approx(ca["queries_total"])
