r"""Regenerates the paper's Figure 3: MAE against K (a-c) and against the target rating r (d).

  python experiments/figure3.py --task=comedy2drama --num_seeds=3 --cache_dir=/tmp/pfcdr_stage_cache
  python experiments/figure3.py --quick                              # 1 seed, minutes

(a)-(c): per base model (MF, GMF, YouTube-DNN) and seed, one run's cached prototypes
are matched at every K of a log grid up to all trained target users (no inversion
re-run; pfcdr_jax/studies/k_sweep.py). (d): MF, the inversion re-run at each r
(studies/rating_sweep.py). Each (model, seed) is a cell <workdir>/cells/*.json;
finished cells are read back, so an interrupted run resumes. Pretraining and
prototypes share --cache_dir with table1.py / figure2.py.
Writes <workdir>/figure3.json, figure3.md and figure3.png.
"""

import json
import os
import time

from absl import flags

import cli
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.studies import k_sweep
from pfcdr_jax.studies import plots
from pfcdr_jax.studies import rating_sweep
from pfcdr_jax.harness import records
from pfcdr_jax.studies import reports

cli.define_data_flags()
cli.define_pretrain_flags(base_model=False)
cli.define_method_flags()
cli.define_sweep_flags(default_workdir="runs/figure3/<task>")
flags.DEFINE_float("beta", 0.2, "Cold-start fraction (the paper uses 0.2).")
flags.DEFINE_list("base_models", ["mf", "gmf", "dnn"], "Base models of panels (a)-(c).")
flags.DEFINE_list("ratings", ["1", "2", "3", "4", "5"], "Target ratings r of panel (d); "
                  "empty: no panel (d).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  task, quick = FLAGS.task, FLAGS.quick
  for m in FLAGS.base_models:
    if m not in plots.MODEL_NAMES:
      raise ValueError(f"--base_models: unknown base model {m!r}")
  ratings = tuple(float(r) for r in FLAGS.ratings)
  cfg = cli.pfcdr_config(overrides={"split.beta": FLAGS.beta})
  num_seeds = 1 if quick and not FLAGS["num_seeds"].present else FLAGS.num_seeds
  root = FLAGS.workdir or os.path.join("runs", "figure3", task + ("-quick" if quick else ""))
  t0 = time.perf_counter()
  cells = k_sweep.run_cells(cfg, FLAGS.base_models, num_seeds, root)
  result = {"task": task, "beta": FLAGS.beta, "num_seeds": num_seeds,
            "seeds": list(range(num_seeds)), "command": cli.command_line(),
            "device": records.device_info(),
            "k_sweep": {m: k_sweep.aggregate(recs) for m, recs in cells.items()},
            "k_sweep_cells": cells}
  if ratings:
    mf = cli.pfcdr_config(overrides={"split.beta": FLAGS.beta, "pretrain.base_model": "mf"})
    by_seed = rating_sweep.run_cells(mf, num_seeds, root, ratings)
    result["rating_sweep"] = rating_sweep.summarize(by_seed)
    result["rating_sweep_cells"] = by_seed
  if quick:
    result["notes"] = ["QUICK MODE: 1 seed, short training; a smoke test, not a result."]
  result["seconds"] = round(time.perf_counter() - t0, 1)
  cache_lib.atomic_write_text(os.path.join(root, "figure3.json"),
                              json.dumps(cache_lib.jsonable(result), indent=1))
  md = os.path.join(root, "figure3.md")
  cache_lib.atomic_write_text(md, reports.figure3_markdown(result))
  png = plots.figure3(result["k_sweep"], result.get("rating_sweep"),
                      os.path.join(root, "figure3.png"),
                      title=f"{task}, β = {FLAGS.beta:g}, {num_seeds} seed(s)")
  print(open(md).read())
  print(f"wrote {png}, {md} in {result['seconds']:.0f}s")


if __name__ == "__main__":
  cli.run(main)
