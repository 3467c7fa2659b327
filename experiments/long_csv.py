r"""Converts a committed Table 1 ``*_seeds.json`` into the long per-seed CSV.

  python experiments/long_csv.py --seeds=docs/results/table1_comedy2drama_b0.2_seeds.json \
      --out=docs/results/table1_comedy2drama_b0.2_long.csv

Writes one row per task x beta x method x seed x metric (mae, rmse) with the columns
``task,beta,method,seed,metric,value``, sorted, the same format as the
``table1_long.csv`` that table1.py writes (``pfcdr_jax.harness.long_format``).
--out defaults to --seeds with ``_seeds.json`` replaced by ``_long.csv``.
"""

from absl import flags

import cli
from pfcdr_jax.harness import long_format

flags.DEFINE_string("seeds", None, "A Table 1 *_seeds.json (cells of per-seed MAE / RMSE).")
flags.DEFINE_string("out", None, "Output CSV (default: --seeds with _seeds.json -> "
                    "_long.csv).")
FLAGS = flags.FLAGS

SUFFIX = "_seeds.json"


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments {argv[1:]}; use --seeds= and --out=")
  if not FLAGS.seeds:
    raise ValueError("--seeds is required (a Table 1 *_seeds.json)")
  out = FLAGS.out
  if not out:
    if not FLAGS.seeds.endswith(SUFFIX):
      raise ValueError(f"--seeds={FLAGS.seeds} does not end in {SUFFIX}: give --out")
    out = FLAGS.seeds[:-len(SUFFIX)] + "_long.csv"
  records = long_format.read_seeds(FLAGS.seeds)
  path = long_format.write_csv(records, out)
  print(f"wrote {path}: {len(records)} rows")


if __name__ == "__main__":
  cli.run(main)
