r"""Benchmark: the two domains' pretraining and inversion, one after the other and at once.

  python experiments/bench_concurrent_domains.py --task=synthetic --like=music2movie \
      --scale=1 --reps=3 --out=docs/results/bench_concurrent_domains_music2movie.json

On one device the main job pretrains the source and the target domain at the same
time, then inverts both at the same time (``stages.domains_concurrently``: the target's
stage in a second thread). This times both ways, stage pair by stage pair, on the split
of the task the data and pretraining flags name, with the main job's configuration
(``cli.pfcdr_config``: presets, keys, lr grid): each domain's ``train.train_scorer``,
then each domain's prototypes (``method.prototypes``) from the trained parameters.
``--reps`` rounds, the two ways alternating which goes first, each from an empty
in-memory compilation cache (``jax.clear_caches``; the persistent XLA cache is off, as
on a fresh machine), so compiles count. It reports every round's seconds, the medians
and their ratio per stage pair, and whether both ways gave the same parameters and
prototypes bit for bit (a SHA-1 of every array).
"""
from __future__ import annotations

import functools
import hashlib
import os
import sys
import time

from absl import flags
import jax
import numpy as np

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.harness import stages
from pfcdr_jax.harness.pretraining import scorer_of
from pfcdr_jax.models import train as train_lib
from pfcdr_jax.pfcdr import method
# pylint: enable=g-import-not-at-top

cli.define_data_flags()
cli.define_pretrain_flags()
flags.DEFINE_integer("reps", 3, "Rounds (each: one way, then the other).", lower_bound=1)
flags.DEFINE_string("out", "bench_concurrent_domains.json", "Output JSON path.")
FLAGS = flags.FLAGS


def _digest(tree) -> str:
  h = hashlib.sha1()
  for leaf in jax.tree_util.tree_leaves(tree):
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  jax.config.update("jax_enable_compilation_cache", False)
  cfg = cli.pfcdr_config()
  data, _, _ = run_inputs.load_split(cfg)
  scorer, tcfg = scorer_of(cfg), config_lib.train_config(cfg)
  keys = method.StageKeys.from_seed(cfg.seed)
  jobs = {"source": (data.source, keys.pretrain_source),
          "target": (data.target_train, keys.pretrain_target)}
  train_one = lambda name: train_lib.train_scorer(scorer, jobs[name][0], tcfg,
                                                  jobs[name][1]).params
  params = {}

  def invert_one(name):
    users = (method.source_prototype_users(data) if name == "source"
             else method.bridge_users(data))
    key = keys.inversion_source if name == "source" else keys.inversion_target
    return method.prototypes(scorer, params[name], jobs[name][0].n_users, users, key,
                             cfg.inversion).prototypes

  out = {"command": cli.command_line(), "task": cfg.data.task,
         **({"like": cfg.data.like, "scale": cfg.data.scale}
            if cfg.data.task == "synthetic" else {}),
         "device": jax.devices()[0].platform, "cpu_count": os.cpu_count(),
         "ratings": {n: int(jobs[n][0].rating.size) for n in jobs}, "reps": FLAGS.reps}
  for stage, one in (("pretraining", train_one), ("inversion", invert_one)):
    ways = {"sequential": lambda one=one: {n: one(n) for n in jobs},
            "concurrent": lambda one=one: stages.in_threads(
                {n: functools.partial(one, n) for n in jobs})}
    times = {w: [] for w in ways}
    digests = {w: set() for w in ways}
    for r in range(FLAGS.reps):
      for w, fn in (ways.items() if r % 2 == 0 else reversed(list(ways.items()))):
        jax.clear_caches()
        t0 = time.perf_counter()
        res = jax.block_until_ready(fn())
        times[w].append(time.perf_counter() - t0)
        digests[w].add(tuple(_digest(res[n]) for n in jobs))
        print(f"{stage}, round {r + 1}: {w} {times[w][-1]:.2f} s", flush=True)
    if stage == "pretraining":
      params.update(res)
    med = {w: float(np.median(v)) for w, v in times.items()}
    same = len(digests["sequential"] | digests["concurrent"]) == 1
    out[stage] = {"ways": {w: {"seconds": [round(x, 3) for x in v], **common.spread(v)}
                           for w, v in times.items()},
                  "concurrent_over_sequential": round(med["concurrent"] / med["sequential"], 3),
                  "same_outputs": same}
    print(f"{stage}: sequential {med['sequential']:.2f} s, concurrent "
          f"{med['concurrent']:.2f} s (x{out[stage]['concurrent_over_sequential']}); same "
          f"outputs: {same}")
    if not same:
      print(f"WARNING: the two ways gave different {stage} outputs")
  out["note"] = ("both domains' train_scorer, then method.prototypes, with the main job's "
                 "configuration and keys; in-memory compilation cache cleared before each, "
                 "persistent cache off; rounds alternate which way runs first")
  common.write_json(FLAGS.out, out, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
