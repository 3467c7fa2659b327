r"""Regenerates the paper's Figure 2: bridge-based methods on MF, GMF and YouTube-DNN.

  python experiments/figure2.py --task=comedy2drama --num_seeds=3
  python experiments/figure2.py --task=comedy2drama --quick

PFCDR, EMCDR, PTUPCDR and PriCDR-S at beta = 0.2 on the three base models (all
three scorers are linear in the inversion weights b, so PFCDR uses the closed-form
inversion on each). Cells resume like table1.py and share its stage cache. Writes
<workdir>/figure2.png, figure2.md and figure2.csv.
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
BASE_MODELS = ("mf", "gmf", "dnn")
EXTRA = ("PTUPCDR", "PriCDR-S")
QUICK = dict(epochs=10, lrs=(0.005, 0.01), bridge_epochs=50)

_TASK = flags.DEFINE_enum("task", "comedy2drama", list(tasks.TASK_NAMES), "CDR task.")
_BETA = flags.DEFINE_float("beta", 0.2, "Cold-start fraction (the paper uses 0.2).")
_NUM_SEEDS = flags.DEFINE_integer("num_seeds", 10, "Independent runs, seeds 0..N-1.")
_QUICK = flags.DEFINE_bool("quick", False, "1 seed, few epochs, one setting per baseline.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root (default runs/figure2/<task>, "
                               "'-quick' appended with --quick).")
_SEED_STACK = comparison.define_seed_stack_flag()
_CACHE_DIR = flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache shared by all cells.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data directory.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Max pretraining epochs (preset if unset).")
_SCALE = flags.DEFINE_float("scale", 0.01, "Size of --task=synthetic relative to the paper.")


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  task, quick = _TASK.value, _QUICK.value
  preset = dict(TASKS[task])
  kw = dict(lrs=QUICK["lrs"], bridge_epochs=QUICK["bridge_epochs"]) if quick else {}
  epochs = _EPOCHS.value or (QUICK["epochs"] if quick else preset["epochs"])
  extra = registry.quick_names(EXTRA) if quick else EXTRA
  cfg = pipeline.PFCDRConfig(task=task, data_dir=_DATA_DIR.value, scale=_SCALE.value,
                             epochs=epochs, batch_size=preset["batch_size"],
                             extra_baselines=extra, cache_dir=_CACHE_DIR.value, **kw)
  num_seeds = 1 if quick and not flags.FLAGS["num_seeds"].present else _NUM_SEEDS.value
  root = _WORKDIR.value or os.path.join("runs", "figure2", task + ("-quick" if quick else ""))
  t0 = time.perf_counter()
  cells = comparison.make_cells((task,), (_BETA.value,), BASE_MODELS, num_seeds)
  try:
    dirs = comparison.run_cells(cfg, cells, os.path.join(root, "cells"),
                                seed_stack=comparison.use_seed_stack(_SEED_STACK.value))
  except DataError as e:
    sys.exit(f"error: {e}")
  rows = comparison.summarize(dirs)
  command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
  notes = ["All three scorers predict user_repr(u) . V[j], linear in the inversion weights "
           "b; PTUPCDR and PriCDR-S use the scorer's user representation "
           "(GMF: h * U, YouTube-DNN: tower output), EMCDR maps the raw user embedding and "
           "applies the target tower (see pfcdr_jax/baselines/registry.py)."]
  if quick:
    notes.append("QUICK MODE: 1 seed, short training; a smoke test, not a result.")
  md, csv = comparison.write_table(
      rows, root, stem="figure2", command=command, row_label="base_model",
      title=f"Figure 2 (reproduction): base models at beta = {_BETA.value:g}",
      selected=comparison.selected_settings(dirs), notes=notes)
  png = comparison.plot_base_models(
      rows, os.path.join(root, "figure2.png"),
      methods=tuple(m for m in ("PriCDR-S", "EMCDR", "PTUPCDR", "PFCDR")),
      title=f"{task}, beta = {_BETA.value:g}, {num_seeds} seed(s)")
  print(md.read_text())
  print(f"wrote {png}, {md}, {csv} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
  app.run(main)
