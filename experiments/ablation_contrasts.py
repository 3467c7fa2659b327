r"""Every step of a committed PFCDR+ ablation against one reference step, paired over seeds.

  python experiments/ablation_contrasts.py --file=docs/results/ablate_plus_comedy2drama.json

Reads the per-seed rows that ``experiments/ablate_plus.py`` wrote (``rows``: step, seed,
val_mae, test_mae, test_rmse) and prints, per step, the mean difference to --against
(test and validation MAE, test RMSE), on how many seeds the step is lower, and the
paired t-test p-value (two-sided; no multiplicity correction: these are descriptive).
"""

import sys

from absl import app
from absl import flags
import numpy as np
from scipy import stats

from pfcdr_jax.harness import cache as cache_lib

flags.DEFINE_string("file", None, "An ablate_plus JSON (committed under docs/results/).")
flags.DEFINE_string("against", "PFCDR+ default (+ neighbours if validation says so)",
                    "The reference step.")
FLAGS = flags.FLAGS


def _paired(x, y):
  d = np.asarray(x) - np.asarray(y)
  p = float(stats.ttest_rel(x, y).pvalue) if np.any(d != 0) and d.size > 1 else float("nan")
  return float(d.mean()), int(np.sum(d < 0)), p


def main(argv):
  del argv
  try:
    data = cache_lib.read_json(FLAGS.file, "--file=")
  except ValueError as e:
    sys.exit(f"error: {e}")
  rows = data.get("rows") if isinstance(data, dict) else None
  if not isinstance(rows, list):
    sys.exit(f"error: --file={FLAGS.file}: expected an ablate_plus JSON with 'rows'")
  by: dict[str, dict[int, dict]] = {}
  for r in rows:
    by.setdefault(r["step"], {})[r["seed"]] = r
  if FLAGS.against not in by:
    sys.exit(f"error: --against={FLAGS.against!r}: no such step in {FLAGS.file}")
  ref = by[FLAGS.against]
  print(f"{data.get('task')} beta={data.get('beta')}: each step minus '{FLAGS.against}', "
        "paired over seeds (negative: the step is lower)\n")
  print("| step | seeds | Δ test MAE | lower on | p | Δ val MAE | p | Δ test RMSE | p |")
  print("|---|---|---|---|---|---|---|---|---|")
  for step, seeds in by.items():
    if step == FLAGS.against:
      continue
    common = sorted(set(seeds) & set(ref))
    cells = []
    for key in ("test_mae", "val_mae", "test_rmse"):
      x = [seeds[s][key] for s in common]
      y = [ref[s][key] for s in common]
      cells.append(_paired(x, y))
    (dt, lt, pt), (dv, _, pv), (dr, _, pr) = cells
    print(f"| {step} | {len(common)} | {dt:+.4f} | {lt}/{len(common)} | {pt:.2g} | "
          f"{dv:+.4f} | {pv:.2g} | {dr:+.4f} | {pr:.2g} |")


if __name__ == "__main__":
  flags.mark_flag_as_required("file")
  app.run(main)
