r"""Benchmark: numpy's huge-page advice on and off, in fresh allocations and main jobs.

  python experiments/bench_hugepages.py --like=music2movie --scales=1,3 --repeats=2 \
      --out=docs/results/bench_hugepages_music2movie.json

Numpy advises the kernel to back arrays of 4 MB or more with 2 MB pages; its switch
``NUMPY_MADVISE_HUGEPAGE`` (read at import) sets that for a whole process. The project
turns the advice off around the data stage only, unless the variable is set
(``pfcdr_jax/infra/hugepages.py``). Settings, each in child processes:

* ``on``: ``NUMPY_MADVISE_HUGEPAGE=1``, numpy's default on Linux >= 4.6, everywhere;
* ``default``: the variable unset, the project's default (off in the data stage);
* ``off``: ``NUMPY_MADVISE_HUGEPAGE=0``, off everywhere.

Two measurements:

* ``allocations`` (``on`` and ``off``): a child fills ``--arrays`` fresh arrays of
  ``--array_mb`` MB one after the other, keeping them all (as a pipeline keeps its
  data), and reports each fill's milliseconds. Where fresh huge pages are cheap at first
  and dear later, the first fills and the last ones differ; both are reported.
* ``jobs``: the synthetic main job (``experiments/pfcdr.py --task=synthetic --no_cache``,
  XLA compile cache off, so each run compiles as on a fresh machine) at each scale: wall
  seconds, in-process stages, peak memory (``benchmarks.pipeline.run_job``), and PFCDR's
  MAE (the advice changes where memory comes from, never a result: the MAEs must be
  equal). The rounds are interleaved over scales and settings, the order of the
  settings rotating from round to round; per scale, each setting's medians and, paired
  by round, the ratios of wall and data-stage seconds to ``on``'s.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from benchmarks import pipeline as benchmarks_pipeline
from pfcdr_jax.infra import hugepages
# pylint: enable=g-import-not-at-top

flags.DEFINE_string("like", "music2movie", "Table 2 template of the synthetic data.")
flags.DEFINE_list("scales", ["1", "3"], "Scales of the main jobs (empty: none).")
flags.DEFINE_integer("repeats", 2, "Rounds of every job and setting.", lower_bound=1)
flags.DEFINE_list("settings", ["on", "default", "off"], "Settings of the jobs (see the "
                  "docstring; the ratios need on).")
flags.DEFINE_integer("arrays", 24, "Fresh arrays filled in the allocation probe.",
                     lower_bound=2)
flags.DEFINE_integer("array_mb", 32, "Size of each probe array, MB.", lower_bound=1)
flags.DEFINE_string("out", "bench_hugepages.json", "Output JSON path.")
FLAGS = flags.FLAGS

SETTINGS = {"on": "1", "default": None, "off": "0"}   # $NUMPY_MADVISE_HUGEPAGE
_PROBE = """
import json, sys, time
import numpy as np
n, count = int(sys.argv[1]) * (1 << 20) // 8, int(sys.argv[2])
kept, ms = [], []
for _ in range(count):
  t0 = time.perf_counter()
  kept.append(np.ones(n))
  ms.append(round((time.perf_counter() - t0) * 1e3, 2))
print(json.dumps(ms))
"""


def _probe(setting: str) -> list[float]:
  """Milliseconds of each fresh array's fill in a child with the advice ``setting``."""
  out = subprocess.run(
      [sys.executable, "-c", _PROBE, str(FLAGS.array_mb), str(FLAGS.arrays)],
      env={**os.environ, hugepages.ENV: SETTINGS[setting]}, check=True,
      capture_output=True, text=True).stdout
  return json.loads(out)


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  common.check_like(FLAGS.like)
  scales = common.parse_scales(FLAGS.scales) if FLAGS.scales else []
  if len(set(scales)) < len(scales):
    raise ValueError(f"--scales={','.join(FLAGS.scales)}: expected distinct scales")
  head, tail = max(1, FLAGS.arrays // 6), max(1, FLAGS.arrays // 2)
  settings = list(FLAGS.settings)
  if not settings or set(settings) - set(SETTINGS) or len(set(settings)) < len(settings):
    raise ValueError(f"--settings: expected distinct names of {list(SETTINGS)}, got "
                     f"{settings}")
  allocations = {}
  for setting in ("on", "off"):
    ms = _probe(setting)
    allocations[setting] = {"ms": ms, "first_median_ms": float(np.median(ms[:head])),
                            "last_median_ms": float(np.median(ms[-tail:]))}
    print(f"allocations, advice {setting}: first {head} fills "
          f"{allocations[setting]['first_median_ms']:.1f} ms, last {tail} "
          f"{allocations[setting]['last_median_ms']:.1f} ms (median, {FLAGS.array_mb} MB "
          "each)", flush=True)
  runs = {(s, setting): [] for s in scales for setting in settings}
  for r in range(FLAGS.repeats):
    for s in scales:
      k = r % len(settings)
      for setting in settings[k:] + settings[:k]:
        row = benchmarks_pipeline.run_main_job(
            FLAGS.like, s, env={hugepages.ENV: SETTINGS[setting]})
        runs[(s, setting)].append(row)
        print(f"round {r + 1}: scale {s}, {setting}: {row['wall_s']:.1f} s wall, "
              f"data {row['stages']['data']:.2f} s, peak {row['peak_rss_gb']} GB, PFCDR "
              f"MAE {row['pfcdr_mae']:.6f}", flush=True)
  jobs = {}
  for s in scales:
    cell = {setting: common.job_summary(runs[(s, setting)]) for setting in settings}
    cell["same_mae"] = len({x["pfcdr_mae"] for st in settings for x in runs[(s, st)]}) == 1
    for setting in settings:
      if setting == "on" or "on" not in settings:
        continue
      pairs = list(zip(runs[(s, "on")], runs[(s, setting)]))
      cell[f"{setting}_vs_on"] = {
          "wall_ratio": [round(b["wall_s"] / a["wall_s"], 4) for a, b in pairs],
          "data_ratio": [round(b["stages"]["data"] / a["stages"]["data"], 4)
                         for a, b in pairs]}
      print(f"scale {s}: {setting} / on, paired: wall "
            f"{cell[f'{setting}_vs_on']['wall_ratio']}, data stage "
            f"{cell[f'{setting}_vs_on']['data_ratio']}")
    for setting in settings:
      print(f"scale {s}, {setting}: wall median {cell[setting]['wall']['median_s']:.1f} s, "
            f"data {cell[setting]['stages_median_s']['data']:.2f} s")
    jobs[str(s)] = cell
  exponents = {}
  if len(scales) >= 2:
    lo, hi = str(scales[0]), str(scales[-1])
    for setting in settings:
      exponents[setting] = round(common.growth_exponent(
          jobs[lo][setting]["stages_median_s"]["data"],
          jobs[hi][setting]["stages_median_s"]["data"],
          runs[(scales[0], setting)][0]["ratings"], runs[(scales[-1], setting)][0]["ratings"]),
          3)
    print(f"data stage growth {lo} -> {hi} (medians): {exponents}")
  common.write_json(FLAGS.out, {
      "command": cli.command_line(), "like": FLAGS.like, "repeats": FLAGS.repeats,
      "cpu_count": os.cpu_count(), "array_mb": FLAGS.array_mb,
      "allocations": allocations, "jobs": jobs, "data_stage_exponents": exponents,
      "note": "on: NUMPY_MADVISE_HUGEPAGE=1 (numpy's default on Linux >= 4.6); default: "
              "unset (the project's: off in the data stage); off: =0; wall seconds of the "
              "whole child process, XLA compile cache off; data_stage_exponents: the "
              "data stage's growth between the first and the last scale, against the "
              "ratings (medians)"}, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
