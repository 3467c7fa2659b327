r"""Benchmark: the main jobs' wall time on a fresh machine and on a used one, repeated.

  python experiments/bench_main_jobs.py --jobs=comedy2drama,synthetic:music2movie:1 \
      --repeats=3 --out=docs/results/bench_main_jobs.json

Each job is ``experiments/pfcdr.py --task=<task> [--like=<like> --scale=<s>] --no_cache``
(the full protocol: the lr grid with held-out selection, every stage, the main job's
baselines) in its own process (``benchmarks.pipeline.run_job``), timed from start to
exit, peak memory its own ``VmHWM``. Two conditions:

- ``cold``: a fresh machine's first run. JAX's persistent compilation cache
  (``infra/xla_cache.py``) points at a new empty directory, so every kernel compiles
  (and is written there, as on a first run).
- ``warm``: a later run. The cache directory was filled by one untimed run of the same
  job before the timed ones.

The rounds are interleaved (job a cold, job b cold, job a warm, ... then again) so that
all see the same machine, whose speed drifts by tens of percent over hours. Reported
per job and condition: every run's wall seconds and in-process stages, the median,
minimum and maximum, and the PFCDR MAE of each run (identical across runs: the
cache holds the same executables). Datasets are read from the data directory (a
MovieLens task downloads its archive once, before the first timed run).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

from absl import flags
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from benchmarks import pipeline as benchmarks_pipeline
from pfcdr_jax.data import tasks
# pylint: enable=g-import-not-at-top

flags.DEFINE_list("jobs", ["comedy2drama", "synthetic:music2movie:1"],
                  "Jobs: a task name, or synthetic:<like>:<scale>.")
flags.DEFINE_integer("repeats", 3, "Timed runs per job and condition.", lower_bound=1)
flags.DEFINE_list("conditions", ["cold", "warm"], "cold and/or warm (see the docstring).")
flags.DEFINE_string("out", "bench_main_jobs.json", "Output JSON path.")
FLAGS = flags.FLAGS


def job_args(job: str) -> list[str]:
  """``pfcdr.py`` flags of one ``--jobs`` entry."""
  parts = job.split(":")
  if parts[0] == "synthetic":
    if len(parts) != 3:
      raise ValueError(f"--jobs: {job!r}: expected synthetic:<like>:<scale>")
    common.check_like(parts[1], flag="--jobs like")
    common.parse_scales([parts[2]], flag=f"--jobs scale of {job!r}")
    return ["--task=synthetic", f"--like={parts[1]}", f"--scale={parts[2]}"]
  if len(parts) != 1 or job not in tasks.TASK_NAMES:
    raise ValueError(f"--jobs: {job!r}: expected one of {sorted(tasks.TASK_NAMES)} or "
                     "synthetic:<like>:<scale>")
  return [f"--task={job}"]


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  bad = set(FLAGS.conditions) - {"cold", "warm"}
  if bad or not FLAGS.conditions:
    raise ValueError(f"--conditions: expected cold and/or warm, got {FLAGS.conditions}")
  jobs = {job: job_args(job) for job in FLAGS.jobs}
  runs = {(job, c): [] for job in jobs for c in FLAGS.conditions}
  scratch = tempfile.mkdtemp(prefix="pfcdr_bench_xla_")
  try:
    warm_dirs = {}
    for job, args in jobs.items():   # downloads (MovieLens) and fills the warm caches
      warm_dirs[job] = os.path.join(scratch, f"warm_{len(warm_dirs)}")
      benchmarks_pipeline.run_job(args, xla_cache=warm_dirs[job])
      print(f"{job}: untimed first run done", flush=True)
    for r in range(FLAGS.repeats):
      for c in FLAGS.conditions:
        for job, args in jobs.items():
          if c == "cold":
            cache = os.path.join(scratch, f"cold_{r}_{job.replace(':', '_')}")
          else:
            cache = warm_dirs[job]
          row = benchmarks_pipeline.run_job(args, xla_cache=cache)
          if c == "cold":
            shutil.rmtree(cache, ignore_errors=True)
          runs[(job, c)].append(row)
          print(f"round {r + 1}: {job} {c}: {row['wall_s']:.1f} s wall, peak "
                f"{row['peak_rss_gb']} GB, PFCDR MAE {row['pfcdr_mae']:.6f}", flush=True)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  out = {}
  for job in jobs:
    out[job] = {}
    for c in FLAGS.conditions:
      rows = runs[(job, c)]
      walls = [x["wall_s"] for x in rows]
      out[job][c] = {"wall": common.spread(walls), "wall_s": walls,
                     "peak_rss_gb_max": max(x["peak_rss_gb"] for x in rows),
                     "pfcdr_mae": sorted({x["pfcdr_mae"] for x in rows}),
                     "stages_median_s": {k: round(float(np.median(
                         [x["stages"][k] for x in rows])), 3) for k in rows[0]["stages"]},
                     "command": rows[0]["command"]}
      print(f"{job} {c}: median {out[job][c]['wall']['median_s']:.1f} s "
            f"({out[job][c]['wall']['min_s']:.1f}-{out[job][c]['wall']['max_s']:.1f}), "
            f"{len(rows)} runs")
  common.write_json(FLAGS.out, {
      "command": cli.command_line(), "repeats": FLAGS.repeats,
      "cpu_count": os.cpu_count(), "jobs": out,
      "note": "wall seconds of the whole process (start-up, imports, compiling, every "
              "stage); cold: an empty XLA cache directory per run; warm: one filled by an "
              "untimed run; rounds interleaved over jobs and conditions"}, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
