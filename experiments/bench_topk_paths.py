r"""Benchmark: the three exact top-k paths of ``topk.select_neighbors`` against numpy.

  python experiments/bench_topk_paths.py --ks=10000,70000 --out=bench_topk_paths.json

On random float32 arrays of music2movie's scale-1 shape (3,606 cold users x 123,960
target users, d = 10, 96 % valid; synthetic, for timing only) this times, for each K,
``select_neighbors(method="threshold")``, ``method="partition"`` (both ``sorted=False``)
and ``benchmarks.numpy_topk`` (argpartition), one warm-up call each, then --reps
interleaved repetitions so all three see the same machine load. It prints and writes the
medians, the spreads, the ratios to numpy, and whether the two library paths returned
the same sets. The machine may be shared: only ratios measured in one run mean anything.
"""
from __future__ import annotations

import json
import os
import time

from absl import flags
import jax.numpy as jnp
import numpy as np

import cli
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import suite as benchmarks  # pylint: disable=g-import-not-at-top
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.pfcdr import topk

flags.DEFINE_list("ks", ["10000", "70000"], "Neighbour counts K.")
flags.DEFINE_integer("reps", 3, "Interleaved repetitions per path.", lower_bound=1)
flags.DEFINE_integer("cold_users", 3606, "Rows (cold users).", lower_bound=1)
flags.DEFINE_integer("targets", 123960, "Columns (target users).", lower_bound=1)
flags.DEFINE_string("out", "bench_topk_paths.json", "Output JSON path.")
FLAGS = flags.FLAGS


def _timed(fn):
  t0 = time.perf_counter()
  out = np.asarray(fn())
  return time.perf_counter() - t0, out


def main(argv):
  del argv
  try:
    ks = [int(k) for k in FLAGS.ks]
  except ValueError:
    raise SystemExit(f"error: --ks must be integers, got {FLAGS.ks}") from None
  if not ks or min(ks) < 1 or max(ks) > FLAGS.targets * 0.9:
    raise SystemExit(f"error: --ks must lie in [1, 0.9 * --targets], got {FLAGS.ks}")
  if not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.out))):
    raise SystemExit(f"error: --out {FLAGS.out}: its directory does not exist")
  rng = np.random.default_rng(0)
  P = (rng.normal(size=(FLAGS.cold_users, 10)) * 0.3).astype(np.float32)
  W = (rng.normal(size=(FLAGS.targets, 10)) * 0.3 + 0.5).astype(np.float32)
  valid = rng.random(FLAGS.targets) < 0.96
  Pj, Wj, vj = jnp.asarray(P), jnp.asarray(W), jnp.asarray(valid)
  result = {"shape": [FLAGS.cold_users, FLAGS.targets, 10], "reps": FLAGS.reps, "k": {}}
  for k in ks:
    paths = {m: (lambda m=m: topk.select_neighbors(Pj, Wj, vj, r=5.0, k=k, method=m,
                                                   sorted=False))
             for m in ("threshold", "partition")}
    paths["numpy"] = lambda: benchmarks.numpy_topk(P, W, valid, 5.0, k, sort=False)
    outs = {m: _timed(fn)[1] for m, fn in paths.items()}          # warm-up: compilation
    times = {m: [] for m in paths}
    for _ in range(FLAGS.reps):
      for m, fn in paths.items():
        times[m].append(_timed(fn)[0])
    med = {m: float(np.median(v)) for m, v in times.items()}
    result["k"][str(k)] = {
        "median_s": {m: round(v, 3) for m, v in med.items()},
        "spread_s": {m: [round(min(v), 3), round(max(v), 3)] for m, v in times.items()},
        "partition_vs_numpy": round(med["partition"] / med["numpy"], 3),
        "threshold_vs_numpy": round(med["threshold"] / med["numpy"], 3),
        "partition_equals_threshold": bool(np.array_equal(outs["threshold"],
                                                          outs["partition"]))}
    print(k, json.dumps(result["k"][str(k)]), flush=True)
  cache_lib.atomic_write_text(FLAGS.out, json.dumps(result, indent=1))


if __name__ == "__main__":
  cli.run(main)
