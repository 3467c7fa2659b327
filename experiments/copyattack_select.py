"""Chooses CopyAttack's training settings on validation items.

Runs CopyAttack under every setting of ``pfcdr_jax.copyattack.selection.GRID``
on the validation items (disjoint from Table 2's test items), at the query
budget, and writes ``selection.json`` (per-setting, per-item HR@20, the
choice) under ``--workdir``. The committed copy is
``docs/results/copyattack_selection.json``; the presets of
``experiments/configs/copyattack.py`` hold its choice.

  python experiments/copyattack_select.py --workdir=runs/ca_select
"""
from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from configs import copyattack as presets
from pfcdr_jax.copyattack import selection
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.infra import progress

D = presets.DEFAULT
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "./runs/copyattack_select", "Output directory.")
flags.DEFINE_string("data_dir", None, "Data cache (as copyattack.py).")
flags.DEFINE_integer("seed", D.seed, "Master seed.")
flags.DEFINE_integer("n_seeds", 2, "Attack seeds per setting.")
flags.DEFINE_integer("query_budget", D.attack.query_budget,
                     "Queries per target item (as copyattack.py).")
flags.DEFINE_integer("num_validation_items", D.data.num_validation_items,
                     "Validation items.")
flags.DEFINE_integer("episodes", D.attack.episodes,
                     "Training episodes asked (the budget may cut them).")
flags.DEFINE_bool("synthetic", False, "Tiny synthetic platforms (smoke).")

_PRESET_FLAGS = ("seed", "data_dir", "n_seeds", "query_budget",
                 "num_validation_items", "episodes", "synthetic")


def main(argv):
  del argv
  progress.configure_output(FLAGS.verbosity)
  try:
    cfg = presets.get_config({n: FLAGS[n].value for n in _PRESET_FLAGS})
    res = selection.run_selection(cfg, FLAGS.workdir)
  except (DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  for r in res["settings"]:
    print(f"{r['HR@20']:.4f}  {r['name']}")
  print(json.dumps({"chosen": res["chosen"],
                    "references": {k: v["HR@20"] for k, v in
                                   res["references"].items()}}, indent=2))
  print(f"selection.json in {FLAGS.workdir}")


if __name__ == "__main__":
  app.run(main)
