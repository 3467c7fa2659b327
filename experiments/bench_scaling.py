r"""The main job at several sizes, stage by stage: ``bench.json``-style ``scaling``.

  python experiments/bench_scaling.py --like=music2movie --scales=0.3,1,3 \
      --also=book2movie:1 --out=runs/bench_scaling.json

Runs ``experiments/pfcdr.py --task=synthetic --like=<like> --scale=<s> --no_cache`` (the
full protocol) once per scale, each in its own process with XLA's persistent cache off
(``benchmarks.pipeline.run_main_job``: stage seconds from its ``results.json``, peak
memory its own ``VmHWM``), and fits each stage's growth exponent against the work it
must touch over all scales and between each consecutive pair (the pair 1 -> 3 is where
start-up no longer dominates). ``--repeats=R`` runs each scale R times, interleaved, and
fits the exponents on the medians (the sub-second stages move by tens of percent
between single runs). ``--also=<like>:<scale>`` adds single runs of other templates
(e.g. the paper's largest task). Writes ``{"scaling": ..., "also": [...]}``.
"""
from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import pipeline as benchmarks_pipeline  # pylint: disable=g-import-not-at-top
from pfcdr_jax.data import synthetic  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("like", "music2movie", "Template of the scaled runs.")
flags.DEFINE_list("scales", ["0.3", "1", "3"], "Scales of the template.")
flags.DEFINE_list("also", [], "Extra single runs, <like>:<scale> each.")
flags.DEFINE_integer("repeats", 1, "Runs of each scale (interleaved); the rows hold the "
                     "medians.", lower_bound=1)
flags.DEFINE_string("out", None, "Output JSON.", required=True)


def _parse() -> tuple[list[float], list[tuple[str, float]]]:
  try:
    scales = [float(s) for s in FLAGS.scales]
  except ValueError:
    raise ValueError(f"--scales must be numbers, got {FLAGS.scales}") from None
  if any(s <= 0 for s in scales):
    raise ValueError("every scale must be > 0")
  if FLAGS.like not in synthetic.TEMPLATES:
    raise ValueError(f"unknown template {FLAGS.like!r}; expected one of "
                     f"{sorted(synthetic.TEMPLATES)}")
  also = benchmarks_pipeline.parse_also(FLAGS.also)
  if not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.out))):
    raise ValueError(f"--out={FLAGS.out}: its directory does not exist")
  return scales, also


def main(argv):
  del argv
  try:
    scales, also = _parse()
  except ValueError as e:
    sys.exit(f"error: {e}")
  res = benchmarks_pipeline.scaling(FLAGS.like, scales, log=print, repeats=FLAGS.repeats,
                                    also=also)
  runs = res["runs"]
  extra = res.pop("also", [])
  for r in runs + extra:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items() if v >= 0.5)
    print(f"{r.get('like', FLAGS.like)} x{r['scale']:g}: {r['ratings']:,} ratings, wall "
          f"{r['wall_s']:.1f} s, peak {r['peak_rss_gb']} GB; {stages}")
  for pair, exps in res["pairwise_exponents"].items():
    print(f"exponents {pair}: " + ", ".join(
        f"{k} {v['vs_work']:.2f} (vs {v['work']})" for k, v in exps.items()
        if k in benchmarks_pipeline.STAGE_WORK))
  with open(FLAGS.out, "w", encoding="utf-8") as f:
    json.dump({"scaling": res, "also": extra,
               "command": " ".join(["python experiments/bench_scaling.py"] + sys.argv[1:])},
              f, indent=2)


if __name__ == "__main__":
  app.run(main)
