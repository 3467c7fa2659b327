r"""Benchmark: the K grid's neighbour means, by a host sort against the device search.

  python experiments/bench_k_grid.py --out=docs/results/bench_k_grid_music2movie.json

``method.select_k`` scores every K of the default grid (``TopKConfig.grid``: 4 per
decade) on the validation cold users in one pass, ``topk.neighbor_means_grid``. On the
CPU backend its rows' K-th distances come from one numpy sort per chunk of cold users
(``host_sort=True``); elsewhere from one ``lax.top_k`` for the small Ks and a threshold
search per large K (``host_sort=False``). This times both on random float32 arrays of
music2movie's scale-1 shape (``--cold_users`` validation cold users x ``--targets``
target users, d = 10, ``--valid_share`` of them candidates; synthetic, for timing only),
one warm-up call each (compiles), then ``--reps`` interleaved calls. It writes the
medians and spreads, the ratio, and how far apart the two paths' means are: on the
timed arrays they sum the same sets in different orders (float32 rounding, ~1e-7;
one neighbour swapped would move a mean by ~1e-4 even at the largest K), and on a copy
with every coordinate rounded to a multiple of 1/4, where many distances tie at the
K-th place and every sum is exact, they must be equal (both paths take
``lax.top_k``'s sets). Only ratios measured in one run mean anything: the machine may
be shared.
"""
from __future__ import annotations

import os
import sys

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from pfcdr_jax.config import TopKConfig
from pfcdr_jax.pfcdr import method
from pfcdr_jax.pfcdr import topk
# pylint: enable=g-import-not-at-top

flags.DEFINE_integer("cold_users", 1442, "Validation cold users (rows).", lower_bound=1)
flags.DEFINE_integer("targets", 123960, "Target users (columns).", lower_bound=2)
flags.DEFINE_float("valid_share", 0.96, "Share of the target users that are candidates.",
                   lower_bound=0.01, upper_bound=1.0)
flags.DEFINE_integer("reps", 3, "Interleaved timed calls per path.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the random arrays.")
flags.DEFINE_string("out", "bench_k_grid.json", "Output JSON path.")
FLAGS = flags.FLAGS

# Float32 summation order moves a mean of ~1 by ~1e-7; a set differing by one
# neighbour out of ~10^5 moves it by ~1e-5 or more.
MAX_ROUNDING = 2e-6


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  rng = np.random.default_rng(FLAGS.seed)
  P = (rng.normal(size=(FLAGS.cold_users, 10)) * 0.3).astype(np.float32)
  W = (rng.normal(size=(FLAGS.targets, 10)) * 0.3 + 0.5).astype(np.float32)
  valid = rng.random(FLAGS.targets) < FLAGS.valid_share
  n_valid = int(valid.sum())
  if n_valid < 1:
    raise ValueError(f"--valid_share={FLAGS.valid_share}: no target user is a candidate")
  ks = tuple(method.k_candidates(TopKConfig(), n_valid))

  def paths(p, w):
    pj, wj, vj = jnp.asarray(p), jnp.asarray(w), jnp.asarray(valid)
    return {name: (lambda hs=hs: np.asarray(topk.neighbor_means_grid(
        pj, wj, vj, r=5.0, ks=ks, chunk_size=16, host_sort=hs)))
            for name, hs in (("host_sort", True), ("device", False))}

  timed = paths(P, W)
  outs = {name: fn() for name, fn in timed.items()}      # warm-up: compiles
  times = common.interleaved_times(timed, FLAGS.reps)
  tied = {name: fn() for name, fn in paths(np.round(P * 4) / 4, np.round(W * 4) / 4).items()}
  med = {name: float(np.median(v)) for name, v in times.items()}
  res = {
      "command": cli.command_line(),
      "device": jax.devices()[0].platform,
      "shape": {"cold_users": FLAGS.cold_users, "targets": FLAGS.targets,
                "valid": n_valid, "d": 10},
      "ks": list(ks), "reps": FLAGS.reps,
      "paths": {name: {"seconds": [round(x, 4) for x in v], **common.spread(v)}
                for name, v in times.items()},
      "device_over_host_sort": round(med["device"] / med["host_sort"], 3),
      "max_abs_diff": float(np.max(np.abs(outs["host_sort"] - outs["device"]))),
      "same_means_tied": bool(np.array_equal(tied["host_sort"], tied["device"])),
      "note": "random float32 arrays of the main job's validation shape (synthetic, for "
              "timing only); tied: coordinates rounded to multiples of 1/4",
  }
  print(f"{len(ks)} Ks on {FLAGS.cold_users} x {FLAGS.targets}: host sort "
        f"{med['host_sort']:.2f} s, device {med['device']:.2f} s "
        f"(x{res['device_over_host_sort']}); means apart by at most "
        f"{res['max_abs_diff']:.1e}, equal on tied rows: {res['same_means_tied']}")
  if not (res["max_abs_diff"] <= MAX_ROUNDING and res["same_means_tied"]):
    print("WARNING: the two paths disagree; they are meant to take the same sets")
  common.write_json(FLAGS.out, res, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
