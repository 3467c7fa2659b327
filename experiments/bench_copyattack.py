r"""Benchmark of one CopyAttack REINFORCE update: the position query vs a sort.

  python experiments/bench_copyattack.py --updates=8

On ML-100K (target) / ML-1M (source), the default config: times ``--updates``
updates of 16 vmapped episodes on the 50 first test items, with the pretend
reward read by ``BlackBox.position`` (v*'s place counted in one pass) and by the
fallback that sorts the whole catalogue (``topk`` with k = N, the code before
the position query), side by side in this process, compile excluded. Checks the
two give the same training curve, and prints seconds per update and the ratio.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from configs import copyattack as presets
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import training
from pfcdr_jax.data.errors import DataError

FLAGS = flags.FLAGS
flags.DEFINE_integer("updates", 8, "Timed REINFORCE updates per variant.",
                     lower_bound=1)


def _time_updates(setup, data, items, tr, bb, n: int):
  cfg = presets.DEFAULT
  m = dataclasses.replace(methods.table2_methods(cfg.attack)["CopyAttack"],
                          episodes=n * cfg.attack.batch_episodes,
                          query_budget=0, checkpoints=1)
  pcfg = policy.PolicyConfig(emb_dim=setup.p.shape[1], hidden=m.hidden,
                             branching=tr.branching, depth=tr.depth,
                             selector=m.selector)
  params = policy.init_policy(jax.random.key(0), pcfg)
  train = jax.jit(functools.partial(training.train_policy, bb=bb, cfg=m,
                                    pcfg=pcfg))
  args = (params, data, setup.bb_state, jnp.asarray(items), jax.random.key(1))
  jax.block_until_ready(train(*args))  # compile
  t0 = time.perf_counter()
  res = jax.block_until_ready(train(*args))
  return (time.perf_counter() - t0) / n, np.asarray(res.curve)


def main(argv):
  del argv
  cfg = presets.DEFAULT
  try:
    cd = data_lib.align_platforms(*pipeline.load_platforms(cfg.data, cfg.seed))
  except (DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  items = pipeline.target_items(cd, cfg.data, cfg.seed)
  setup = pipeline.prepare(cfg, cd)
  tr, data, _ = pipeline.build_attacker(setup, cfg.tree.depth, cfg.seed)
  fast, c_fast = _time_updates(setup, data, items, tr, setup.bb, FLAGS.updates)
  slow, c_slow = _time_updates(setup, data, items, tr,
                               setup.bb._replace(position=None), FLAGS.updates)
  print(f"same training curve: {bool(np.array_equal(c_fast, c_slow))}")
  print(f"seconds per update (16 episodes): position {fast:.3f}, "
        f"sort {slow:.3f}, ratio {slow / fast:.1f}x")


if __name__ == "__main__":
  app.run(main)
