r"""Benchmark: the floors' growth between two sizes, over repeated interleaved runs.

  python experiments/bench_floors.py --like=music2movie --scales=1,3 --reps=7 \
      --out=docs/results/bench_floors_music2movie.json

The main job's floors (GlobalMean, ItemMean and BiasFloor, each with its validation
grid, as ``selection.fit_predict_val`` runs them in the ``baseline_<name>`` stages) take
well under a second at music2movie size, so the single run per size that
``bench_scaling.py`` records gives them an exponent that moves by tens of percent
between runs. Here each floor runs ``--reps`` times at each scale on the synthetic
split of that scale (``run_inputs.load_split``, built once per scale), the rounds
interleaved (scale 1: every floor, scale 3: every floor, scale 1, ...) so that all see
the same machine, each time from a fresh ``BaselineContext`` (BiasFloor's sums are
cached per context; a fresh one times them too). Reported per floor and scale: every
run's seconds, the median, minimum and maximum; per floor the exponent of the
medians against the ratings of both domains between the first and the last scale, and
the range of the exponents over the rounds (round r's time at one scale against round
r's at the other). Beside them, as in ``bench_data_stage.py``, the exponent of the
passes a floor is made of: a weighted ``bincount`` over the target's items (ItemMean's
sums) and one over its users, on random ids of the same sizes.
"""
from __future__ import annotations

import os
import sys

from absl import flags
import jax
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from pfcdr_jax.baselines import selection
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.config import DataConfig, PFCDRConfig
from pfcdr_jax.harness import run_inputs
# pylint: enable=g-import-not-at-top

flags.DEFINE_string("like", "music2movie", "Paper task the synthetic data mimics.")
flags.DEFINE_list("scales", ["1", "3"], "Two or more scales (the exponent uses the "
                  "first and the last).")
flags.DEFINE_integer("reps", 7, "Timed runs of each floor per scale.", lower_bound=1)
flags.DEFINE_list("floors", ["GlobalMean", "ItemMean", "BiasFloor"], "Floors to time.")
flags.DEFINE_string("out", "bench_floors.json", "Output JSON path.")
FLAGS = flags.FLAGS


def _passes(data) -> dict[str, float]:
  """Seconds (minimum of 5) of the weighted bincounts a floor is made of, on random ids
  of the target training domain's sizes."""
  t = data.target_train
  rng = np.random.default_rng(0)
  item = rng.integers(0, t.n_items, t.rating.size).astype(np.int32)
  user = rng.integers(0, t.n_users, t.rating.size).astype(np.int32)
  rating = np.asarray(t.rating, np.float32)
  times = common.interleaved_times({
      "bincount_random_items": lambda: np.bincount(item, weights=rating, minlength=t.n_items),
      "bincount_random_users": lambda: np.bincount(user, weights=rating, minlength=t.n_users),
  }, reps=5)
  return {k: min(v) for k, v in times.items()}


def main(argv):
  del argv
  scales = common.parse_scales(FLAGS.scales, at_least=2)
  common.check_like(FLAGS.like)
  common.check_out(FLAGS.out)
  unknown = set(FLAGS.floors) - {"GlobalMean", "ItemMean", "BiasFloor"}
  if unknown:
    raise ValueError(f"--floors: unknown {sorted(unknown)}; expected GlobalMean, ItemMean, "
                     "BiasFloor")
  splits, ratings = {}, {}
  for s in scales:
    cfg = PFCDRConfig(data=DataConfig(task="synthetic", like=FLAGS.like, scale=s))
    splits[s], _, _ = run_inputs.load_split(cfg)
    ratings[s] = int(splits[s].source.rating.size + splits[s].target_train.rating.size)
    print(f"scale {s:g}: {ratings[s]:,} source + target training ratings", flush=True)

  def one(name, s):
    def call():   # a fresh context: BiasFloor's sums are cached per context
      ctx = BaselineContext(data=splits[s], scorer=None, params_s=None, params_t=None,
                            key=jax.random.key(0), seed=0)
      return selection.fit_predict_val(name, ctx)
    return call

  calls = {(name, s): one(name, s) for s in scales for name in FLAGS.floors}
  for fn in calls.values():     # compiles and first touches outside the timings
    fn()
  times = common.interleaved_times(calls, FLAGS.reps)
  a, b = scales[0], scales[-1]
  floors = {}
  for name in FLAGS.floors:
    med = {s: float(np.median(times[(name, s)])) for s in scales}
    per_round = [common.growth_exponent(ta, tb, ratings[a], ratings[b])
                 for ta, tb in zip(times[(name, a)], times[(name, b)])]
    floors[name] = {
        "runs": {f"{s:g}": {"seconds": [round(x, 6) for x in times[(name, s)]],
                            **common.spread(times[(name, s)])} for s in scales},
        "exponent_of_medians": round(common.growth_exponent(med[a], med[b], ratings[a],
                                                            ratings[b]), 3),
        "exponent_per_round": {"min": round(min(per_round), 3),
                               "median": round(float(np.median(per_round)), 3),
                               "max": round(max(per_round), 3)},
    }
    print(f"{name}: median {med[a]:.4f} s -> {med[b]:.4f} s, exponent "
          f"{floors[name]['exponent_of_medians']} (per round "
          f"{floors[name]['exponent_per_round']['min']}..."
          f"{floors[name]['exponent_per_round']['max']})", flush=True)
  passes = {s: _passes(splits[s]) for s in (a, b)}
  pass_exp = {k: round(common.growth_exponent(passes[a][k], passes[b][k], ratings[a],
                                              ratings[b]), 3) for k in passes[a]}
  for k, e in pass_exp.items():
    print(f"  {k}: {passes[a][k]:.4f} -> {passes[b][k]:.4f} s, exponent {e}")
  common.write_json(FLAGS.out, {
      "command": cli.command_line(),
      "like": FLAGS.like, "reps": FLAGS.reps, "device": jax.devices()[0].platform,
      "ratings": {f"{s:g}": ratings[s] for s in scales},
      "floors": floors,
      "passes_s": {f"{s:g}": {k: round(v, 5) for k, v in passes[s].items()} for s in (a, b)},
      "passes_exponent": pass_exp,
      "note": "exponent = log(t_b / t_a) / log(ratings_b / ratings_a) between the first and "
              "the last scale, ratings = source + target training ratings; floors: "
              "fit_predict_val with its validation grid, rounds interleaved over scales "
              "and floors, a fresh BaselineContext each run; passes: minimum of 5 calls "
              "on random ids of the target training domain's sizes",
  }, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
