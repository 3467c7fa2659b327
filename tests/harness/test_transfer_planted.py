"""A planted cross-domain signal survives the whole run, and shuffling the user alignment
removes it: the test that fails if the data path between the domains broke.

The task plants shared user factors and user biases (``--task=synthetic --density=8
--signal=1.5 --bias_std=0.5``). EMCDR maps the source user factors and BiasFloor carries
the user's source offset; both must beat ItemMean (which knows nothing of the user) when
the overlapping users' source profiles are their own, and lose that gain under
``--misalign`` (each overlapping user gets another's source profile). PFCDR's numbers on
the same task are printed, not asserted: its prototype carries about one scalar per user,
not the planted factors (BUILD_NOTES §3, "what a prototype carries"; measured here at
seed 0: PFCDR 1.0510 aligned, 1.0513 misaligned, ItemMean 1.0706).
"""
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline

pytestmark = pytest.mark.slow


def _run(tmp_path, misalign):
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "synthetic", "data.like": "music2movie", "data.scale": 0.01,
      "data.density": 8.0, "data.signal": 1.5, "data.bias_std": 0.5,
      "data.misalign": misalign, "data.data_dir": str(tmp_path / "data"),
      "pretrain.epochs": 20, "pretrain.batch_size": 1024, "pretrain.lrs": (0.01, 0.02),
      "pretrain.grid_extend": 0, "bridge.epochs": 50, "cache.enabled": False})
  res = pipeline.run_pfcdr(cfg, tmp_path / f"misalign-{misalign}")
  return {m: v["mae"] for m, v in res["methods"].items()}, res


def test_planted_transfer_needs_the_user_alignment(tmp_path):
  aligned, res = _run(tmp_path, False)
  shuffled, res_m = _run(tmp_path, True)
  print({"aligned": aligned, "misaligned": shuffled})
  assert res["misaligned"] is None and res_m["misaligned"]["n_users_moved"] > 0
  # Same target data and split: the methods that ignore the source are unchanged.
  for floor in ("GlobalMean", "ItemMean", "TGT"):
    assert shuffled[floor] == pytest.approx(aligned[floor], abs=1e-6), floor
  item = aligned["ItemMean"]
  assert aligned["EMCDR"] < item - 0.2 and aligned["BiasFloor"] < item - 0.02
  assert aligned["EMCDR"] < aligned["BiasFloor"] - 0.1   # more than the user's offset
  assert shuffled["EMCDR"] > item and shuffled["BiasFloor"] > item
  assert res["sanity"]["EMCDR"]["ok"] and not res_m["sanity"]["EMCDR"]["ok"]
