r"""Benchmark: the main job with and without glibc's heap reuse in the data stage.

  python experiments/bench_heap.py --like=book2movie --scales=1 --repeats=3 \
      --out=docs/results/bench_heap_book2movie.json

``pfcdr_jax/infra/heap.py`` can keep the data stage's freed large arrays in the process
(``$PFCDR_HEAP_REUSE=1``) instead of glibc's fresh mapping of every array above 32 MB.
``bench_data_stage.py`` times the stage alone both ways; this bench runs whole main jobs
(``experiments/pfcdr.py --task=synthetic --no_cache``, XLA compile cache off), each in
its own process, to weigh what the setting gains in the data stage against what it
costs elsewhere: wall seconds, the data stage's seconds, peak memory
(``benchmarks.pipeline.run_job``) and PFCDR's MAE (equal both ways: only where memory
comes from changes). Settings:

* ``default``: the variable unset, the project's default (glibc's own thresholds);
* ``reuse``: ``PFCDR_HEAP_REUSE=1``.

Rounds are interleaved over scales and settings, the order of the settings alternating
from round to round; per scale, each setting's medians and, paired by round, the
``reuse / default`` ratios of wall seconds, data-stage seconds and peak memory.
"""
from __future__ import annotations

import os
import sys

from absl import flags
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from benchmarks import pipeline as benchmarks_pipeline
from pfcdr_jax.infra import heap
# pylint: enable=g-import-not-at-top

flags.DEFINE_string("like", "book2movie", "Table 2 template of the synthetic data.")
flags.DEFINE_list("scales", ["1"], "Scales of the main jobs.")
flags.DEFINE_integer("repeats", 3, "Rounds of every job and setting.", lower_bound=1)
flags.DEFINE_string("out", "bench_heap.json", "Output JSON path.")
FLAGS = flags.FLAGS

SETTINGS = {"default": None, "reuse": "1"}   # $PFCDR_HEAP_REUSE


def _summary(rows: list[dict]) -> dict:
  """:func:`benchmarks.common.job_summary` with the medians this bench compares."""
  med = lambda xs: round(float(np.median(xs)), 3)
  return {**common.job_summary(rows),
          "wall_median_s": med([r["wall_s"] for r in rows]),
          "data_s": [r["stages"]["data"] for r in rows],
          "data_median_s": med([r["stages"]["data"] for r in rows]),
          "peak_median_gb": med([r["peak_rss_gb"] for r in rows])}


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  common.check_like(FLAGS.like)
  scales = common.parse_scales(FLAGS.scales)
  if not scales or len(set(scales)) < len(scales):
    raise ValueError(f"--scales={','.join(FLAGS.scales)}: expected distinct scales")
  settings = list(SETTINGS)
  runs = {(s, setting): [] for s in scales for setting in settings}
  for r in range(FLAGS.repeats):
    for s in scales:
      for setting in (settings if r % 2 == 0 else settings[::-1]):
        row = benchmarks_pipeline.run_main_job(FLAGS.like, s,
                                               env={heap.ENV: SETTINGS[setting]})
        runs[(s, setting)].append(row)
        print(f"round {r + 1}: scale {s}, {setting}: {row['wall_s']:.1f} s wall, data "
              f"{row['stages']['data']:.2f} s, peak {row['peak_rss_gb']} GB, PFCDR MAE "
              f"{row['pfcdr_mae']:.6f}", flush=True)
  jobs = {}
  for s in scales:
    cell = {setting: _summary(runs[(s, setting)]) for setting in settings}
    cell["same_mae"] = len({x["pfcdr_mae"] for st in settings for x in runs[(s, st)]}) == 1
    pairs = list(zip(runs[(s, "default")], runs[(s, "reuse")]))
    cell["reuse_vs_default"] = {
        "wall_ratio": [round(b["wall_s"] / a["wall_s"], 4) for a, b in pairs],
        "data_ratio": [round(b["stages"]["data"] / a["stages"]["data"], 4) for a, b in pairs],
        "peak_ratio": [round(b["peak_rss_gb"] / a["peak_rss_gb"], 4) for a, b in pairs]}
    for setting in settings:
      c = cell[setting]
      print(f"scale {s}, {setting}: wall {c['wall_median_s']:.1f} s, data "
            f"{c['data_median_s']:.2f} s, peak {c['peak_median_gb']:.3f} GB (medians)")
    print(f"scale {s}: reuse / default, paired: {cell['reuse_vs_default']}")
    jobs[str(s)] = cell
  common.write_json(FLAGS.out, {
      "command": cli.command_line(), "like": FLAGS.like, "repeats": FLAGS.repeats,
      "cpu_count": os.cpu_count(), "jobs": jobs,
      "note": "default: PFCDR_HEAP_REUSE unset (the project's default); reuse: =1 (the "
              "data stage inside infra/heap.reuse_freed_memory); wall seconds of the "
              "whole child process, XLA compile cache off; peak: the child's VmHWM"},
      indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
