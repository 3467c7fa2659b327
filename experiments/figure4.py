r"""Regenerates the paper's Figure 4: t-SNE of true vs transferred target embeddings.

  python experiments/figure4.py --task=comedy2drama --num_seeds=3 --cache_dir=/tmp/pfcdr_stage_cache
  python experiments/figure4.py --quick                              # 1 seed, minutes

Samples --n_sample test users per seed; their ground-truth target representation is
fitted to their own target ratings (item matrix fixed), and compared with EMCDR's
mapped embedding and PFCDR's mean of the top-K users' embeddings
(pfcdr_jax/studies/embedding_map.py): mean distance to the own truth and MMD² of the
two clouds, mean ± std over seeds; the t-SNE panels (studies/tsne.py) are seed 0's.
Per-seed cells in <workdir>/cells/ are read back when finished (resumable).
Writes <workdir>/figure4.json, figure4.md and figure4.png.
"""

import json
import os
import time

import numpy as np
from absl import flags

import cli
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.studies import embedding_map
from pfcdr_jax.harness import records
from pfcdr_jax.studies import reports
from pfcdr_jax.studies import tsne

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
cli.define_sweep_flags(default_workdir="runs/figure4/<task>")
flags.DEFINE_float("beta", 0.2, "Cold-start fraction (the paper uses 0.2).")
flags.DEFINE_integer("n_sample", 1000, "Test users sampled per seed.", lower_bound=3)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  task, quick = FLAGS.task, FLAGS.quick
  cfg = cli.pfcdr_config(overrides={"split.beta": FLAGS.beta})
  num_seeds = 1 if quick and not FLAGS["num_seeds"].present else FLAGS.num_seeds
  root = FLAGS.workdir or os.path.join("runs", "figure4", task + ("-quick" if quick else ""))
  t0 = time.perf_counter()
  cells = []
  for seed in range(num_seeds):
    c = config_lib.override(cfg, {"seed": seed})
    cells.append(records.cached(records.cell_path(root, "emb", c, f"-n{FLAGS.n_sample}"), c,
                                lambda c=c: embedding_map.run_cell(c, root, FLAGS.n_sample)))
    records.release_compiled()
  first = cells[0]
  result = {"task": task, "beta": FLAGS.beta, "base_model": cfg.pretrain.base_model,
            "num_seeds": num_seeds, "seeds": list(range(num_seeds)),
            "n_sample": len(first["users"]), "dim": len(first["truth"][0]),
            "command": cli.command_line(), "device": records.device_info(),
            "k_by_seed": [c["k"] for c in cells],
            "lambda_by_seed": [c["truth_fit"]["lambda"] for c in cells],
            "summary": embedding_map.summarize(cells),
            "per_seed": [{k: c[k] for k in ("seed", "k", "truth_fit", "stats")} for c in cells]}
  if quick:
    result["notes"] = ["QUICK MODE: 1 seed, short training; a smoke test, not a result."]
  truth = np.asarray(first["truth"])
  panels = {m: (truth, np.asarray(first["transferred"][m])) for m in ("EMCDR", "PFCDR")}
  png = tsne.figure4(panels, first["stats"], os.path.join(root, "figure4.png"), seed=0,
                     title=f"{task}, β = {FLAGS.beta:g}, {cfg.pretrain.base_model}, seed 0, "
                           f"{result['n_sample']} test users")
  result["seconds"] = round(time.perf_counter() - t0, 1)
  cache_lib.atomic_write_text(os.path.join(root, "figure4.json"),
                              json.dumps(cache_lib.jsonable(result), indent=1))
  md = os.path.join(root, "figure4.md")
  cache_lib.atomic_write_text(md, reports.figure4_markdown(result))
  print(open(md).read())
  print(f"wrote {png}, {md} in {result['seconds']:.0f}s")


if __name__ == "__main__":
  cli.run(main)
