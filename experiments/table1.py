r"""Regenerates the paper's Table 1: every method x beta, mean ± std over seeds.

  python experiments/table1.py --task=comedy2drama --num_seeds=3
  python experiments/table1.py --task=comedy2drama --quick          # 1 seed, beta 0.2, minutes
  python experiments/table1.py --all --data_dir=D                   # paper's tasks + comedy2drama

Each cell (task x beta x seed) runs `run_pfcdr` in its own workdir
<workdir>/cells/<task>-b<beta>-<model>-s<seed>; finished cells are skipped, so an
interrupted sweep resumes. Pretraining is cached in --cache_dir (shared with figure2.py).
Writes <workdir>/table1.md, table1.csv and table1_long.csv (every per-seed value:
task,beta,method,seed,metric,value). The planned contrasts come from --contrasts
(default experiments/configs/planned_contrasts.json), with Holm-corrected p-values.
"""

import os
import time

from absl import flags

import cli
from configs import pfcdr as presets
from pfcdr_jax.harness import cells as cells_lib
from pfcdr_jax.harness import comparison
from pfcdr_jax.harness import long_format
from pfcdr_jax.harness import summary
from pfcdr_jax.harness import tables
from pfcdr_jax.baselines import registry

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
cli.define_sweep_flags(default_workdir="runs/table1/<task>, or runs/table1/all with --all")
cli.define_contrast_flags()
flags.DEFINE_bool("all", False, f"Run every task of {presets.ALL_TASKS} (ignores --task).")
flags.DEFINE_list("betas", ["0.2", "0.5", "0.8"], "Cold-start fractions beta.")
flags.DEFINE_list("baselines", list(registry.NAMES),
                  "Baselines beyond TGT / EMCDR / the floors (registry names).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  planned = cli.planned_contrasts()   # a bad file fails here, before any run
  task_list = presets.ALL_TASKS if FLAGS.all else (FLAGS.task,)
  betas = (0.2,) if FLAGS.quick else tuple(float(b) for b in FLAGS.betas)
  num_seeds = 1 if FLAGS.quick and not FLAGS["num_seeds"].present else FLAGS.num_seeds
  root = FLAGS.workdir or os.path.join(
      "runs", "table1", ("all" if FLAGS.all else FLAGS.task) + ("-quick" if FLAGS.quick else ""))
  t0 = time.perf_counter()
  dirs = []
  for task in task_list:
    cfg = cli.pfcdr_config(task, baselines=tuple(FLAGS.baselines))
    cells = cells_lib.make_cells((task,), betas, (FLAGS.base_model,), num_seeds)
    dirs += comparison.run_cells(cfg, cells, os.path.join(root, "cells"),
                                 seed_stack=comparison.use_seed_stack(FLAGS.seed_stack))
  rows = summary.summarize(dirs, contrasts=planned.pairs)
  names = cli.pfcdr_config(task_list[0], baselines=tuple(FLAGS.baselines)).baselines.names
  notes = [f"Baselines as run: {', '.join(names)}."]
  if FLAGS.quick:
    notes.append("QUICK MODE: 1 seed, short training, one setting per baseline; a smoke "
                 "test, not a result.")
  md, csv = tables.write_table(
      rows, root, stem="table1", command=cli.command_line(),
      title=f"Table 1 (reproduction): cold-start MAE / RMSE, base model {FLAGS.base_model}",
      selected=summary.selected_settings(dirs), notes=notes, planned=planned)
  long_csv = long_format.write_csv(long_format.from_rows(rows),
                                   os.path.join(root, "table1_long.csv"))
  print(md.read_text())
  print(f"wrote {md}, {csv} and {long_csv} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
  cli.run(main)
