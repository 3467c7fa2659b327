"""Chooses CopyAttack's training settings on validation items.

Runs CopyAttack under every setting of ``pfcdr_jax.copyattack.selection.GRID``
on the validation items (disjoint from Table 2's test items), at the query
budget, and writes ``selection.json`` (per-setting, per-item HR@20, the
choice) under ``--workdir``. The committed copy is
``docs/results/copyattack_selection.json``. ``--stage=stop`` then tries the
stopping rules of ``selection.STOP_RULES`` at the chosen setting (read from
``--stage1``) and writes ``selection_stop.json`` (committed as
``docs/results/copyattack_selection_stop.json``). The presets of
``experiments/configs/copyattack.py`` hold both choices.

  python experiments/copyattack_select.py --workdir=runs/ca_select
  python experiments/copyattack_select.py --stage=stop --workdir=runs/ca_select
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
flags.DEFINE_enum("stage", "grid", ["grid", "stop"],
                  "grid: the settings grid (stage 1); stop: the stopping "
                  "rules at stage 1's choice.")
flags.DEFINE_string("stage1", "docs/results/copyattack_selection.json",
                    "Stage 1's selection.json (--stage=stop).")

_PRESET_FLAGS = ("seed", "data_dir", "n_seeds", "query_budget",
                 "num_validation_items", "episodes", "synthetic")


def _read_stage1(path: str) -> dict:
  """Stage 1's selection.json, or a one-line error."""
  try:
    stage1 = json.loads(open(path, encoding="utf-8").read())
  except FileNotFoundError:
    raise ValueError(f"--stage1={path}: no such file (run --stage=grid "
                     f"first)") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"--stage1={path}: not JSON ({e.msg}, line "
                     f"{e.lineno})") from None
  if not isinstance(stage1, dict) or not {"chosen", "settings"} <= set(
      stage1):
    raise ValueError(f"--stage1={path}: expected a selection.json with "
                     f"'chosen' and 'settings'")
  return stage1


def main(argv):
  del argv
  progress.configure_output(FLAGS.verbosity)
  try:
    cfg = presets.get_config({n: FLAGS[n].value for n in _PRESET_FLAGS})
    if FLAGS.stage == "stop":
      stage1 = _read_stage1(FLAGS.stage1)
      res = selection.run_stop_selection(cfg, FLAGS.workdir, stage1)
    else:
      res = selection.run_selection(cfg, FLAGS.workdir)
  except (DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  if FLAGS.stage == "stop":
    for r in res["rules"]:
      print(f"{r['HR@20']:.4f}  queries/item {r['queries_total']:7.1f}  "
            f"updates {r['updates_train']:6.1f}  {r['rule']}")
    print(f"chosen: {res['chosen']}; budget rule reproduces stage 1: "
          f"{res['budget_reproduces_stage1']}")
    print(f"selection_stop.json in {FLAGS.workdir}")
    return
  for r in res["settings"]:
    print(f"{r['HR@20']:.4f}  {r['name']}")
  print(json.dumps({"chosen": res["chosen"],
                    "references": {k: v["HR@20"] for k, v in
                                   res["references"].items()}}, indent=2))
  print(f"selection.json in {FLAGS.workdir}")


if __name__ == "__main__":
  app.run(main)
