r"""Benchmark: pretraining several seeds as one vmapped stack vs one seed after another.

  python experiments/bench_seeds.py --task=comedy2drama --num_seeds=3 --out=bench_seeds.json

For seeds 0..N-1 of --task (real data; or --task=synthetic) this builds each seed's
split exactly as ``run_pfcdr`` does and pretrains the SOURCE domain (the domain whose
shape every seed shares) both ways in this one process, side by side:

* ``sequential_s``: ``train.train_scorer`` once per seed (each call compiles its epoch
  function, as a run of the pipeline does);
* ``stacked_s``: one ``train.train_scorer_seeds`` call over all seeds (one compile).

It prints both times, their ratio, and the largest parameter / held-out-MSE difference
between the two ways, and writes them to --out. The machine may be shared: only the
ratio measured in one run means anything.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

from absl import flags
import jax
import numpy as np

import cli
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.models import train as train_lib

cli.define_data_flags()
cli.define_pretrain_flags()
flags.DEFINE_integer("num_seeds", 3, "Seeds 0..N-1.", lower_bound=1)
flags.DEFINE_float("beta", 0.2, "Cold-start fraction of the split.")
flags.DEFINE_string("out", "bench_seeds.json", "Output JSON path.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cfgs = [cli.pfcdr_config(overrides={"seed": s}) for s in range(FLAGS.num_seeds)]
  domains = [data.source for data, _, _ in run_inputs.load_splits(cfgs)]
  shapes = {train_lib.domain_shape(d) for d in domains}
  if len(shapes) != 1:
    sys.exit(f"error: the seeds' source domains differ in shape ({sorted(shapes)}); "
             "nothing to stack")
  keys = [method.StageKeys.from_seed(c.seed).pretrain_source for c in cfgs]
  tcfgs = [config_lib.train_config(c) for c in cfgs]
  scorer = scorers_lib.get_scorer(FLAGS.base_model)

  t0 = time.perf_counter()
  seq = [train_lib.train_scorer(scorer, d, c, k) for d, c, k in zip(domains, tcfgs, keys)]
  jax.block_until_ready([r.params for r in seq])
  sequential_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  stk = train_lib.train_scorer_seeds(scorer, domains, tcfgs, keys)
  jax.block_until_ready([r.params for r in stk])
  stacked_s = time.perf_counter() - t0

  max_param_diff = max(
      float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
      for x, y in zip(seq, stk)
      for a, b in zip(jax.tree_util.tree_leaves(x.params), jax.tree_util.tree_leaves(y.params)))
  out = {
      "task": FLAGS.task, "base_model": FLAGS.base_model, "num_seeds": FLAGS.num_seeds,
      "ratings": shapes.pop()[0], "epochs": tcfgs[0].epochs, "lrs": list(tcfgs[0].lrs),
      "batch_size": tcfgs[0].batch_size,
      "sequential_s": round(sequential_s, 3), "stacked_s": round(stacked_s, 3),
      "speedup": round(sequential_s / stacked_s, 3),
      "same_selection": all((a.lr, a.epoch) == (b.lr, b.epoch) for a, b in zip(seq, stk)),
      "max_param_abs_diff": max_param_diff,
      "max_heldout_mse_abs_diff": max(abs(a.heldout_mse - b.heldout_mse)
                                      for a, b in zip(seq, stk)),
      "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
      "cpu_count": os.cpu_count(), "jax": jax.__version__, "python": platform.python_version(),
  }
  with open(FLAGS.out, "w") as f:
    json.dump(out, f, indent=2)
  for k, v in out.items():
    print(f"{k}: {v}")


if __name__ == "__main__":
  cli.run(main)
