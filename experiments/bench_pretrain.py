r"""Benchmark of one pretraining epoch: dense Adam vs deferred (row-sparse) Adam.

  python experiments/bench_pretrain.py --like=music2movie --scales=0.3,1,3 \
      --out=runs/bench_pretrain.json

For each scale, the source domain of the ``--like`` template at that size (users,
items and ratings of ``synthetic.synthetic_sizes``; users and items drawn log-normally
popular, ratings 1-5, so only the sizes and the row-access pattern are realistic),
the default five-lr stack, batch 4096: one compiled epoch of each optimizer, then
``--epochs`` timed epochs, side by side in this process. Reports seconds per epoch,
the ratio, the held-out MSE after the timed epochs (the two optimizers follow the
same trajectory: they agree to float32 rounding), and the growth exponent of each
optimizer's epoch time against the ratings between consecutive scales.

Dense Adam's epoch costs (ratings / batch) x (users + items) x d: quadratic in the
task's size. Deferred Adam's costs ratings x d plus one pass over the tables.
"""
from __future__ import annotations

import os
import resource
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from pfcdr_jax.data import synthetic
from pfcdr_jax.data.splits import DomainData
from pfcdr_jax.models import scorers
from pfcdr_jax.models import train
from pfcdr_jax.models import train_epoch
from pfcdr_jax.models.heldout import _split_domain
# pylint: enable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("like", "music2movie", "Synthetic template of the sizes.")
flags.DEFINE_list("scales", ["0.3", "1"], "Multipliers of the template's counts.")
flags.DEFINE_list("optimizers", ["adam", "deferred_adam"], "Optimizers compared.")
flags.DEFINE_enum("model", "mf", ["mf", "gmf", "dnn"], "Base model.")
flags.DEFINE_integer("epochs", 1, "Timed epochs per optimizer (after one compile epoch).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the data and the init.")
flags.DEFINE_string("out", None, "Also write the numbers as JSON here.")


def source_domain(like: str, scale: float, seed: int) -> DomainData:
  """The template's source-domain sizes with log-normally popular users and items."""
  sizes = synthetic.synthetic_sizes(like, scale)
  n_users, n_items, n = sizes["users"][0], sizes["items"][0], sizes["ratings"][0]
  rng = np.random.default_rng(seed)
  draw = lambda k: common.popular_ids(rng, k, n)

  return DomainData(user=draw(n_users), item=draw(n_items),
                    rating=rng.integers(1, 6, n).astype(np.float32),
                    n_users=n_users, n_items=n_items)


def time_optimizer(domain: DomainData, optimizer: str, model: str, epochs: int,
                   seed: int) -> dict:
  cfg = train.TrainConfig(optimizer=optimizer, shuffle="host", epochs=epochs + 1)
  scorer = scorers.get_scorer(model)
  train_np, held_np = _split_domain(domain, cfg)
  data = (tuple(jnp.asarray(x) for x in train_np), tuple(jnp.asarray(x) for x in held_np))
  lrs = jnp.asarray(cfg.lrs, jnp.float32)
  k_init, k_shuffle = jax.random.split(jax.random.key(seed))
  state = train._init_state(scorer, domain, cfg, k_init, float(np.mean(train_np[2])))
  state = state._replace(active=jnp.ones(state.best_mse.shape, bool))
  epoch_fn = jax.jit(train_epoch.make_epoch_fn(scorer, cfg, train_np[2].size),
                     donate_argnums=(0,))
  n = train_np[2].size
  times, mse = [], None
  for e in range(epochs + 1):
    order = jnp.asarray(train_epoch.host_order(k_shuffle, e, n))
    t0 = time.perf_counter()
    state, mse = jax.block_until_ready(epoch_fn(state, lrs, *data, order,
                                                jnp.asarray(e, jnp.int32)))
    times.append(time.perf_counter() - t0)
  return {"compile_epoch_s": times[0], "epoch_s": float(np.median(times[1:])),
          "heldout_mse": np.asarray(mse).tolist()}


def main(argv):
  del argv
  try:
    scales = common.parse_scales(FLAGS.scales)
    common.check_like(FLAGS.like)
    common.check_out(FLAGS.out)
  except ValueError as e:
    sys.exit(f"error: {e}")
  unknown = set(FLAGS.optimizers) - set(train.OPTIMIZERS)
  if unknown:
    sys.exit(f"error: --optimizers: unknown {sorted(unknown)}; expected {train.OPTIMIZERS}")
  rows = []
  print(f"{FLAGS.model} on the source domain of {FLAGS.like}, 5 lrs, batch 4096, "
        f"{jax.devices()[0].platform}")
  for scale in scales:
    dom = source_domain(FLAGS.like, scale, FLAGS.seed)
    row = {"scale": scale, "ratings": int(dom.rating.size), "users": dom.n_users,
           "items": dom.n_items}
    for opt in FLAGS.optimizers:
      row[opt] = time_optimizer(dom, opt, FLAGS.model, FLAGS.epochs, FLAGS.seed)
      jax.clear_caches()
    rows.append(row)
    parts = "  ".join(f"{o} {row[o]['epoch_s']:7.2f} s/epoch" for o in FLAGS.optimizers)
    print(f"scale {scale:4g}: {row['ratings']:>10,} ratings, "
          f"{row['users'] + row['items']:>9,} rows  {parts}")
    if {"adam", "deferred_adam"} <= set(FLAGS.optimizers):
      a, d = row["adam"], row["deferred_adam"]
      row["speedup"] = a["epoch_s"] / d["epoch_s"]
      row["heldout_mse_max_rel_diff"] = float(np.max(
          np.abs(np.subtract(a["heldout_mse"], d["heldout_mse"])) / np.asarray(a["heldout_mse"])))
      print(f"    deferred is {row['speedup']:.1f}x faster; held-out MSE per lr "
            f"{np.round(d['heldout_mse'], 4).tolist()} (max relative difference "
            f"{row['heldout_mse_max_rel_diff']:.1e})")
  exponents = {}
  for lo, hi in zip(rows, rows[1:]):
    key = f"{lo['scale']:g}->{hi['scale']:g}"
    exponents[key] = {o: common.growth_exponent(lo[o]["epoch_s"], hi[o]["epoch_s"],
                                                lo["ratings"], hi["ratings"])
                      for o in FLAGS.optimizers}
    print(f"growth exponent vs ratings {key}: " + ", ".join(
        f"{o} {v:.2f}" for o, v in exponents[key].items()))
  peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"peak resident memory of this process: {peak_gb:.2f} GB")
  if FLAGS.out:
    common.write_json(FLAGS.out, {
        "like": FLAGS.like, "model": FLAGS.model, "epochs_timed": FLAGS.epochs,
        "rows": rows, "exponents": exponents, "peak_rss_gb": peak_gb,
        "device": jax.devices()[0].platform,
        "command": " ".join(["python experiments/bench_pretrain.py"] + sys.argv[1:])},
        indent=2)


if __name__ == "__main__":
  app.run(main)
