r"""Benchmark: the data stage's growth between two sizes, against plain memory passes.

  python experiments/bench_data_stage.py --like=music2movie --scales=1,3 --reps=3 \
      --out=docs/results/bench_data_stage_music2movie.json

The main job's data stage (``run_inputs.load_split``: the synthetic generator, then
``splits.make_cdr_split``) is timed ``--reps`` times per scale, the scales interleaved
(1, 3, 1, 3, ...) so that both see the same machine, and its growth exponent between
the first and the last scale is ``log(t_b / t_a) / log(ratings_b / ratings_a)`` of the
median seconds. ``bench_scaling.py`` takes one run of each scale, inside a main job.

Beside it, the same exponent of single numpy passes that any linear data stage must
make, on arrays of the two sizes (random data, for timing only): a float32 -> float64
copy, a ``bincount`` over sorted user ids and one over random item ids, a stable argsort
of keys grouped by user (the generator's order) and of random keys, and a draw of
items by popularity (``Generator.choice`` with ``p``, and the generator's replica of it
through a guide table in cache-sized chunks, ``sampling.popularity_draw``). Each is the
minimum of 5 calls (3 for the draws).
These are the machine's own growth for work that is linear in the rows: when the
arrays outgrow the caches, a pass over 3x the rows costs more than 3x the time, and no
linear algorithm grows slower than its passes.

``--heap=default,reuse`` times the stage both ways, interleaved: ``default`` is the main
job's (glibc's own thresholds: arrays above 32 MB are fresh mappings each time);
``reuse`` sets ``$PFCDR_HEAP_REUSE=1``, so the stage runs inside
``infra/heap.reuse_freed_memory`` (its large arrays from the heap, freed ones reused).
In one process, a ``default`` run after a ``reuse`` one meets the thresholds that
context leaves (32 MB and 64 MB: glibc's adaptive values once a 32 MB array was freed).
The passes are timed both ways too (``passes_s``: outside the context;
``passes_s_heap_reuse``: inside it).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

from absl import flags
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import pipeline as benchmarks_pipeline  # pylint: disable=g-import-not-at-top
from pfcdr_jax.config import DataConfig, PFCDRConfig  # pylint: disable=g-import-not-at-top
from pfcdr_jax.data import sampling  # pylint: disable=g-import-not-at-top
from pfcdr_jax.harness import run_inputs  # pylint: disable=g-import-not-at-top
from pfcdr_jax.infra import heap  # pylint: disable=g-import-not-at-top

flags.DEFINE_string("like", "music2movie", "Paper task the synthetic data mimics.")
flags.DEFINE_list("scales", ["1", "3"], "Two or more scales (the exponent uses the "
                  "first and the last).")
flags.DEFINE_integer("reps", 3, "Timed data stages per scale.", lower_bound=1)
flags.DEFINE_list("heap", ["default", "reuse"], "Allocator settings of the timed stage: "
                  "default (the main job's) and/or reuse ($PFCDR_HEAP_REUSE=1, "
                  "infra/heap); the first is the one of data_stage_s.")
flags.DEFINE_string("out", "bench_data_stage.json", "Output JSON path.")
FLAGS = flags.FLAGS


HEAP_SETTINGS = ("default", "reuse")


@contextlib.contextmanager
def _heap_setting(setting: str):
  """``$PFCDR_HEAP_REUSE`` for ``setting`` inside, the caller's value after."""
  before = os.environ.pop(heap.ENV, None)
  os.environ[heap.ENV] = "1" if setting == "reuse" else "0"
  try:
    yield
  finally:
    os.environ.pop(heap.ENV, None)
    if before is not None:
      os.environ[heap.ENV] = before


def _data_stage(scale: float, setting: str) -> tuple[float, int, int, int]:
  """(seconds, ratings of both domains, users of both, items of both) of one stage."""
  cfg = PFCDRConfig(data=DataConfig(task="synthetic", like=FLAGS.like, scale=scale))
  with _heap_setting(setting):
    t0 = time.perf_counter()
    data, _, _ = run_inputs.load_split(cfg)
    seconds = time.perf_counter() - t0
  m = data.manifest["counts"]
  return (seconds, m["source"]["ratings"] + m["target"]["ratings"],
          m["source"]["users"] + m["target"]["users"],
          m["source"]["items"] + m["target"]["items"])


def _min_time(fn, calls: int = 5) -> float:
  best = math.inf
  for _ in range(calls):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def _passes(ratings: int, users: int, items: int) -> dict[str, float]:
  """Seconds of single numpy passes over arrays of a data stage's size."""
  rng = np.random.default_rng(0)
  user = np.sort(rng.integers(0, users, ratings)).astype(np.int32)
  item = rng.integers(0, items, ratings).astype(np.int32)
  rating = rng.integers(1, 6, ratings).astype(np.float32)
  grouped = user.astype(np.int64) * items + item
  shuffled = rng.permutation(grouped)
  pop = rng.lognormal(0.0, 1.0, items)
  pop /= pop.sum()
  return {
      "astype_float64": _min_time(lambda: rating.astype(np.float64)),
      "bincount_sorted_users": _min_time(
          lambda: np.bincount(user, weights=rating, minlength=users)),
      "bincount_random_items": _min_time(
          lambda: np.bincount(item, weights=rating, minlength=items)),
      "argsort_grouped_keys": _min_time(lambda: np.argsort(grouped, kind="stable")),
      "argsort_random_keys": _min_time(lambda: np.argsort(shuffled, kind="stable")),
      "choice_by_popularity": _min_time(
          lambda: np.random.default_rng(1).choice(items, size=ratings, p=pop), calls=3),
      # The generator's replica of the line above (the same items): a guide table, the
      # queries in cache-sized chunks.
      "guide_table_draw": _min_time(
          lambda: sampling.popularity_draw(np.random.default_rng(1), pop, ratings),
          calls=3),
  }


def main(argv):
  del argv
  try:
    scales = [float(s) for s in FLAGS.scales]
  except ValueError:
    raise ValueError(f"--scales={','.join(FLAGS.scales)}: expected numbers") from None
  if len(scales) < 2 or scales[0] == scales[-1]:
    raise ValueError(f"--scales={','.join(FLAGS.scales)}: expected at least two scales, "
                     "the first and the last different")
  settings = list(FLAGS.heap)
  bad = [h for h in settings if h not in HEAP_SETTINGS]
  if not settings or bad or len(set(settings)) != len(settings):
    raise ValueError(f"--heap={','.join(settings)}: expected distinct settings of "
                     f"{list(HEAP_SETTINGS)}")
  times = {(h, s): [] for h in settings for s in scales}
  sizes = {}
  for _ in range(FLAGS.reps):
    for s in scales:
      for h in settings:
        seconds, ratings, users, items = _data_stage(s, h)
        times[h, s].append(round(seconds, 3))
        sizes[s] = (ratings, users, items)
        print(f"scale {s:g}, heap {h}: data stage {seconds:.2f} s ({ratings:,} ratings)",
              flush=True)
  median = {k: float(np.median(v)) for k, v in times.items()}
  a, b = scales[0], scales[-1]
  passes = {s: _passes(*sizes[s]) for s in (a, b)}
  with _heap_setting("reuse"), heap.reuse_freed_memory():
    passes_reuse = {s: _passes(*sizes[s]) for s in (a, b)}

  def exponents(stages: dict) -> dict:
    # benchmarks.pipeline's growth exponents (log-log slope on the ratings) of the ends.
    exps = benchmarks_pipeline.growth_exponents(
        [{"ratings": sizes[s][0], "users": sizes[s][1], "items": sizes[s][2],
          "cold_users": 1, "stages": stages[s]} for s in (a, b)])
    return {k: v["vs_ratings"] for k, v in exps.items()}

  stage_exp = exponents({s: {h: median[h, s] for h in settings} for s in (a, b)})
  pass_exp = exponents(passes)
  pass_exp_reuse = exponents(passes_reuse)
  main = settings[0]
  res = {
      "command": cli.command_line(),
      "like": FLAGS.like,
      "reps": FLAGS.reps,
      "heap": main,
      "runs": [{"scale": s, "ratings": sizes[s][0], "users": sizes[s][1],
                "items": sizes[s][2], "data_stage_s": times[main, s],
                "data_stage_median_s": round(median[main, s], 3),
                **{f"heap_{h}": {"data_stage_s": times[h, s],
                                 "data_stage_median_s": round(median[h, s], 3)}
                   for h in settings}} for s in scales],
      "data_stage_exponent": stage_exp[main],
      "data_stage_exponent_by_heap": {h: stage_exp[h] for h in settings},
      "passes_s": {f"{s:g}": {k: round(v, 4) for k, v in passes[s].items()} for s in (a, b)},
      "passes_exponent": {k: pass_exp[k] for k in passes[a]},
      "passes_s_heap_reuse": {f"{s:g}": {k: round(v, 4) for k, v in passes_reuse[s].items()}
                              for s in (a, b)},
      "passes_exponent_heap_reuse": {k: pass_exp_reuse[k] for k in passes_reuse[a]},
      "note": "exponent = log(t_b / t_a) / log(ratings_b / ratings_a) between the first "
              "and the last scale; data stage: medians of interleaved runs (scales and "
              "heap settings interleaved), data_stage_s: the first --heap setting; "
              "passes: minimum of repeated calls on random arrays of the same sizes",
  }
  for h in settings:
    print(f"data stage exponent {a:g} -> {b:g}, heap {h}: {stage_exp[h]}")
  for k, e in res["passes_exponent"].items():
    print(f"  {k}: {passes[a][k]:.4f} -> {passes[b][k]:.4f} s, exponent {e}; inside the "
          f"heap context {passes_reuse[a][k]:.4f} -> {passes_reuse[b][k]:.4f} s, "
          f"exponent {pass_exp_reuse[k]}")
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  tmp = FLAGS.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(res, f, indent=2)
  os.replace(tmp, FLAGS.out)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
