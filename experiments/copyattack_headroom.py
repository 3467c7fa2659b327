"""Headroom of the CopyAttack environment: how much choosing the copied profiles can gain.

For each target item: TargetAttack100 (random whole v*-profiles) over many
seeds vs a greedy oracle that at each step injects the (v*-profile, window)
that most raises v*'s mean reciprocal rank over the evaluation users. Writes
``results.json`` (``oracle_gain``: oracle MRR minus the mean TargetAttack100
MRR, averaged over items) under ``--workdir``.

  python experiments/copyattack_headroom.py --num_target_items=5
"""
from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from configs import copyattack as presets
from pfcdr_jax.infra import progress
from pfcdr_jax.copyattack import headroom
from pfcdr_jax.data.errors import DataError

D = presets.DEFAULT
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "./runs/copyattack_headroom", "Output directory.")
flags.DEFINE_string("data_dir", None, "Data cache (as copyattack.py).")
flags.DEFINE_integer("seed", D.seed, "Master seed.")
flags.DEFINE_integer("num_target_items", 5, "Target items studied.")
flags.DEFINE_integer("budget", D.attack.budget, "Copied profiles per attack.")
flags.DEFINE_integer("n_seeds", 32, "TargetAttack100 draws per item.", lower_bound=1)
flags.DEFINE_integer("n_candidates", 40, "v*-profiles the oracle may pick.", lower_bound=1)
flags.DEFINE_list("levels", ["2", "4", "7", "10"], "Windows the oracle tries.")
flags.DEFINE_bool("synthetic", False, "Tiny synthetic platforms (smoke).")
flags.DEFINE_integer("min_source_profiles", D.data.min_source_profiles,
                     "v* must be in at least this many source profiles.")
flags.DEFINE_integer("max_target_interactions", D.data.max_target_interactions,
                     "v* has fewer target interactions than this.")

_PRESET_FLAGS = ("seed", "data_dir", "synthetic", "num_target_items",
                 "budget", "min_source_profiles", "max_target_interactions")


def main(argv):
  del argv
  progress.configure_output(FLAGS.verbosity)
  try:
    levels = tuple(int(x) for x in FLAGS.levels)
    if not all(1 <= x <= 10 for x in levels):
      raise ValueError(f"--levels must be in 1..10, got {FLAGS.levels}")
    cfg = presets.get_config({n: FLAGS[n].value for n in _PRESET_FLAGS})
    res = headroom.run_headroom(cfg, FLAGS.workdir, n_seeds=FLAGS.n_seeds,
                                n_candidates=FLAGS.n_candidates, levels=levels)
  except (DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps({k: res[k] for k in ("oracle_gain", "mean")}, indent=2))
  print(f"results.json in {FLAGS.workdir}")


if __name__ == "__main__":
  app.run(main)
