r"""Regenerates the paper's Figure 2: PFCDR and baselines on MF / GMF / YouTube-DNN.

  python experiments/figure2.py --task=comedy2drama --num_seeds=3
  python experiments/figure2.py --quick                             # 1 seed, minutes

One cell per base model x seed at --beta (cells and stage cache shared with
table1.py). Writes <workdir>/figure2.md, figure2.csv and figure2.png; the planned
contrasts come from --contrasts, as in table1.py.
"""

import os
import time

from absl import flags

import cli
from pfcdr_jax.harness import cells as cells_lib
from pfcdr_jax.harness import comparison
from pfcdr_jax.harness import plots
from pfcdr_jax.harness import summary
from pfcdr_jax.harness import tables

BASE_MODELS = ("mf", "gmf", "dnn")
EXTRA = ("PTUPCDR", "PriCDR-S")

cli.define_data_flags()
cli.define_pretrain_flags(base_model=False)
cli.define_method_flags()
cli.define_sweep_flags(default_workdir="runs/figure2/<task>")
cli.define_contrast_flags()
flags.DEFINE_float("beta", 0.2, "Cold-start fraction (the paper uses 0.2).")
flags.DEFINE_list("base_models", list(BASE_MODELS), "Base models to run (a subset of "
                  "mf,gmf,dnn; e.g. dnn alone to refresh its cells).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  planned = cli.planned_contrasts()   # a bad file fails here, before any run
  task, quick, beta = FLAGS.task, FLAGS.quick, FLAGS.beta
  cfg = cli.pfcdr_config(baselines=EXTRA)
  num_seeds = 1 if quick and not FLAGS["num_seeds"].present else FLAGS.num_seeds
  root = FLAGS.workdir or os.path.join("runs", "figure2", task + ("-quick" if quick else ""))
  t0 = time.perf_counter()
  models = tuple(FLAGS.base_models)
  if not models or set(models) - set(BASE_MODELS):
    raise ValueError(f"--base_models={','.join(models)}: choose from {','.join(BASE_MODELS)}")
  cells = cells_lib.make_cells((task,), (beta,), models, num_seeds)
  dirs = comparison.run_cells(cfg, cells, os.path.join(root, "cells"),
                              seed_stack=comparison.use_seed_stack(FLAGS.seed_stack))
  rows = summary.summarize(dirs, contrasts=planned.pairs)
  notes = ["All three scorers predict user_repr(u) . V[j], linear in the inversion weights "
           "b; PTUPCDR and PriCDR-S use the scorer's user representation "
           "(GMF: h * U, YouTube-DNN: tower output). EMCDR maps the YouTube-DNN "
           "user-tower output and the raw embedding for MF / GMF, as the authors' public "
           "code does (pfcdr_jax/baselines/emcdr.py). YouTube-DNN's user tower: "
           f"{cfg.pretrain.dnn_tower} (--dnn_tower; 'linear' = one Linear d->d, the "
           "public code's)."]
  if quick:
    notes.append("QUICK MODE: 1 seed, short training; a smoke test, not a result.")
  md, csv = tables.write_table(
      rows, root, stem="figure2", command=cli.command_line(), row_label="base_model",
      title=f"Figure 2 (reproduction): base models at beta = {beta:g}",
      selected=summary.selected_settings(dirs), notes=notes, planned=planned)
  png = plots.plot_base_models(
      rows, os.path.join(root, "figure2.png"),
      methods=("PriCDR-S", "EMCDR", "PTUPCDR", "PFCDR")
      + (("PFCDR+",) if "PFCDR+" in cfg.baselines.names else ()),
      floors=("GlobalMean", "ItemMean", "BiasFloor"), base_models=models,
      title=f"{task}, beta = {beta:g}, {num_seeds} seed(s)")
  print(md.read_text())
  print(f"wrote {png}, {md}, {csv} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
  cli.run(main)
