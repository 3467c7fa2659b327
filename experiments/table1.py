r"""Regenerates the paper's Table 1: every method x beta, mean ± std over seeds.

  python experiments/table1.py --task=comedy2drama --num_seeds=3
  python experiments/table1.py --task=comedy2drama --quick          # 1 seed, beta 0.2, minutes
  python experiments/table1.py --all --data_dir=D                   # paper's tasks + comedy2drama

Each cell (task x beta x seed) runs `run_pfcdr` in its own workdir
<workdir>/cells/<task>-b<beta>-<model>-s<seed>; finished cells are skipped, so an
interrupted sweep resumes. Pretraining is cached in --cache_dir (shared with figure2.py).
Writes <workdir>/table1.md and table1.csv.
"""

import logging
import os
import shlex
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pfcdr_jax import comparison  # noqa: E402
from pfcdr_jax import pipeline  # noqa: E402
from pfcdr_jax.baselines import registry  # noqa: E402
from pfcdr_jax.data import tasks  # noqa: E402
from pfcdr_jax.data.errors import DataError  # noqa: E402

TASKS = pipeline.TASK_PRESETS   # per-task presets; flags override them
ALL_TASKS = ("book2movie", "book2music", "music2movie", "comedy2drama")
# --quick: one seed, one beta, short pretraining, two learning rates, cheap baselines.
QUICK = dict(epochs=10, lrs=(0.005, 0.01), bridge_epochs=50)

_TASK = flags.DEFINE_enum("task", "comedy2drama", list(tasks.TASK_NAMES), "CDR task.")
_ALL = flags.DEFINE_bool("all", False, f"Run every task of {ALL_TASKS} (ignores --task).")
_BETAS = flags.DEFINE_list("betas", ["0.2", "0.5", "0.8"], "Cold-start fractions beta.")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 10, "Independent runs, seeds 0..N-1.")
_BASE = flags.DEFINE_enum("base_model", "mf", ["mf", "gmf", "dnn"], "Base scorer.")
_QUICK = flags.DEFINE_bool("quick", False, "1 seed, beta 0.2, few epochs, one setting per "
                           "baseline (CI smoke run; still every method).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root (default runs/table1/<task>, "
                               "or runs/table1/all with --all; '-quick' appended with --quick).")
_SEED_STACK = comparison.define_seed_stack_flag()
_CACHE_DIR = flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache shared by all cells.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data directory.")
_BASELINES = flags.DEFINE_list("baselines", list(registry.NAMES),
                               "Extra baselines (pfcdr_jax.baselines.registry names).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Max pretraining epochs (preset if unset).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Pretraining batch size (preset if unset).")
_LRS = flags.DEFINE_list("lrs", None, "Pretraining lr grid (default: the paper's grid).")
_BRIDGE_EPOCHS = flags.DEFINE_integer("bridge_epochs", None, "Bridge/EMCDR map epochs.")
_SCALE = flags.DEFINE_float("scale", 0.01, "Size of --task=synthetic relative to the paper.")
_LIKE = flags.DEFINE_enum("like", "music2movie", ["music2movie", "book2movie", "book2music"],
                          "Paper task whose sizes --task=synthetic mimics.")
_SOURCE_FILE = flags.DEFINE_string("source_file", None, "Source interactions (--task=custom).")
_TARGET_FILE = flags.DEFINE_string("target_file", None, "Target interactions (--task=custom).")


def build_config(task: str) -> pipeline.PFCDRConfig:
  preset = dict(TASKS[task])
  kw = {}
  if _QUICK.value:
    preset.update(epochs=QUICK["epochs"])
    kw.update(lrs=QUICK["lrs"], bridge_epochs=QUICK["bridge_epochs"])
  if _LRS.value:
    kw["lrs"] = tuple(float(x) for x in _LRS.value)
  if _BRIDGE_EPOCHS.value:
    kw["bridge_epochs"] = _BRIDGE_EPOCHS.value
  names = tuple(_BASELINES.value)
  for name in names:
    registry.parse_name(name)  # fail on a bad name before any cell runs
  if _QUICK.value:
    names = registry.quick_names(names)
  return pipeline.PFCDRConfig(
      task=task, base_model=_BASE.value, data_dir=_DATA_DIR.value, scale=_SCALE.value,
      like=_LIKE.value, source_file=_SOURCE_FILE.value, target_file=_TARGET_FILE.value,
      epochs=_EPOCHS.value or preset["epochs"], batch_size=_BATCH.value or preset["batch_size"],
      extra_baselines=names, cache_dir=_CACHE_DIR.value, **kw)


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  task_list = ALL_TASKS if _ALL.value else (_TASK.value,)
  betas = (0.2,) if _QUICK.value else tuple(float(b) for b in _BETAS.value)
  num_seeds = 1 if _QUICK.value and not flags.FLAGS["num_seeds"].present else _NUM_SEEDS.value
  root = _WORKDIR.value or os.path.join(
      "runs", "table1", ("all" if _ALL.value else _TASK.value) + ("-quick" if _QUICK.value else ""))
  command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
  t0 = time.perf_counter()
  dirs = []
  try:
    for task in task_list:
      cells = comparison.make_cells((task,), betas, (_BASE.value,), num_seeds)
      dirs += comparison.run_cells(build_config(task), cells, os.path.join(root, "cells"),
                                   seed_stack=comparison.use_seed_stack(_SEED_STACK.value))
  except DataError as e:
    sys.exit(f"error: {e}")
  rows = comparison.summarize(dirs)
  notes = [f"Extra baselines as run: {', '.join(build_config(task_list[0]).extra_baselines)}."]
  if _QUICK.value:
    notes.append("QUICK MODE: 1 seed, short training, one setting per baseline; a smoke "
                 "test, not a result.")
  md, csv = comparison.write_table(
      rows, root, stem="table1", command=command,
      title=f"Table 1 (reproduction): cold-start MAE / RMSE, base model {_BASE.value}",
      selected=comparison.selected_settings(dirs), notes=notes)
  print(md.read_text())
  print(f"wrote {md} and {csv} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
  app.run(main)
