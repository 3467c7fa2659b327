r"""Paired comparison over seeds of two Table 1 runs that differ only in pretraining.

  python experiments/table1.py --task=comedy2drama --betas=0.2 --num_seeds=10 \
      --baselines= --optimizer=adam --shuffle=device --patience=0 --workdir=runs/pt_old
  python experiments/table1.py --task=comedy2drama --betas=0.2 --num_seeds=10 \
      --baselines= --workdir=runs/pt_new
  python experiments/compare_pretrain.py --a=runs/pt_old --b=runs/pt_new

Prints, per quantity (PFCDR's test MAE / RMSE, each domain's selected held-out MSE and
epoch, pretraining seconds), each arm's mean, the mean difference b - a and a paired
t-test over the cells (``benchmarks.pipeline.compare_cell_dirs``).
"""
import json
import sys

from absl import app
from absl import flags

import os  # pylint: disable=g-import-not-at-top
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import pipeline as benchmarks_pipeline  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("a", None, "The reference table1.py workdir.", required=True)
flags.DEFINE_string("b", None, "The other table1.py workdir.", required=True)
flags.DEFINE_string("method", "PFCDR", "The method whose test metrics are compared.")
flags.DEFINE_string("out", None, "Also write the comparison as JSON here.")


def main(argv):
  del argv
  try:
    res = benchmarks_pipeline.compare_cell_dirs(FLAGS.a, FLAGS.b, FLAGS.method)
  except (ValueError, OSError, KeyError) as e:   # not a table1 workdir, unreadable, no method
    sys.exit(f"error: {e if not isinstance(e, KeyError) else f'no {e} in a results.json'}")
  print(f"a = {res['a']}, b = {res['b']}, {res['n']} paired cells")
  print(f"{'quantity':<22} {'a mean':>9} {'b mean':>9} {'b - a':>9} {'std':>8} {'p':>7}")
  for key, r in res["rows"].items():
    print(f"{key:<22} {r['a_mean']:>9.4f} {r['b_mean']:>9.4f} {r['diff_mean']:>9.4f} "
          f"{r['diff_std']:>8.4f} {r['t_test_p']:>7.3f}")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(res, f, indent=2)


if __name__ == "__main__":
  app.run(main)
