r"""Runs PFCDR and its baselines on one task, beta and seed.

  python experiments/pfcdr.py                         # comedy2drama, beta=0.2
  python experiments/pfcdr.py --task=music2movie --data_dir=D
  python experiments/pfcdr.py --task=custom --source_file=a.tsv --target_file=b.tsv
  python experiments/pfcdr.py --task=synthetic --like=music2movie --scale=0.05

Writes config.json, metrics.jsonl, results.json and split_manifest.json in
--workdir and prints a MAE/RMSE table with the settings chosen on validation data.
--verbosity=1 shows every pretraining epoch.
"""

import os

from absl import flags

import cli
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import results as results_lib

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
flags.DEFINE_float("beta", 0.2, "Fraction of overlap users made cold-start (test).")
flags.DEFINE_integer("seed", 0, "Seed of every random choice of the run.", lower_bound=0)
flags.DEFINE_string("workdir", None, "Output directory (default runs/<task>-b<beta>-"
                    "<model>-s<seed>).")
flags.DEFINE_bool("no_cache", False, "Recompute every stage.")
flags.DEFINE_string("cache_dir", None, "Stage cache (default <workdir>/cache).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cfg = cli.pfcdr_config()
  workdir = FLAGS.workdir or os.path.join(
      "runs", f"{cfg.data.task}-b{cfg.split.beta}-{cfg.pretrain.base_model}-s{cfg.seed}")
  results = pipeline.run_pfcdr(cfg, workdir)
  print(results_lib.format_table(results))
  print()
  print("chosen on held-out / validation data:")
  print(results_lib.format_selection(results))
  print("timings (s): " + ", ".join(f"{k}={v}" for k, v in results["timings_s"].items()))
  print(f"outputs: {workdir}/ (results.json, metrics.jsonl, config.json, "
        "split_manifest.json)")


if __name__ == "__main__":
  cli.run(main)
