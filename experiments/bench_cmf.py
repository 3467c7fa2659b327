r"""Benchmark of one CMF training epoch: dense Adam vs deferred (row-sparse) Adam.

  python experiments/bench_cmf.py --like=music2movie --scales=0.1,0.3,1 \
      --out=runs/bench_cmf.json

For each scale, the template's two domains at that size (``synthetic.synthetic_sizes``:
users, items, ratings and overlap; users and items drawn log-normally popular, ratings
1-5, so only the sizes and the row-access pattern are realistic) as CMF's joint rating
list, CMF's default settings (batch 1024, d = 10): one compiled epoch of each
optimizer, then ``--epochs`` timed epochs, side by side in this process. Reports
seconds per epoch, their ratio, the largest difference of the trained factors'
predictions on 10k pairs (the two follow one trajectory), and each optimizer's growth
exponent against the ratings between consecutive scales.

Dense Adam's epoch costs (ratings / batch) x (users + items) x d; deferred Adam's
ratings x d plus one pass over the tables.
"""
from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import common  # pylint: disable=g-import-not-at-top
from pfcdr_jax.baselines import cmf  # pylint: disable=g-import-not-at-top
from pfcdr_jax.data import synthetic  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("like", "music2movie", "Synthetic template of the sizes.")
flags.DEFINE_list("scales", ["0.1", "0.3", "1"], "Multipliers of the template's counts.")
flags.DEFINE_integer("epochs", 1, "Timed epochs per optimizer (after one compile epoch).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the data and the init.")
flags.DEFINE_string("out", None, "Also write the numbers as JSON here.")


def joint_list(like: str, scale: float, seed: int):
  """CMF's joint rating list at the template's sizes: (rows, item, rating, is_src,
  weight, n_all, n_items_src, n_items_tgt)."""
  sizes = synthetic.synthetic_sizes(like, scale)
  (us, ut), (ns, nt), (rs, rt) = sizes["users"], sizes["items"], sizes["ratings"]
  src_rows, tgt_rows, n_all = cmf.joint_user_index(us, ut, sizes["overlap"])
  rng = np.random.default_rng(seed)
  draw = lambda k, n: common.popular_ids(rng, k, n)
  rows = np.concatenate([src_rows[draw(us, rs)], tgt_rows[draw(ut, rt)]])
  item = np.concatenate([draw(ns, rs), draw(nt, rt)])
  rating = rng.integers(1, 6, rs + rt).astype(np.float32)
  is_src = np.concatenate([np.ones(rs, bool), np.zeros(rt, bool)])
  weight = np.where(is_src, 0.5 / rs, 0.5 / rt).astype(np.float32)
  return rows, item, rating, is_src, weight, n_all, ns, nt


def time_optimizer(data, optimizer: str, epochs: int, seed: int) -> tuple[dict, np.ndarray]:
  rows, item, rating, is_src, weight, n_all, ns, nt = data
  args = tuple(jnp.asarray(x) for x in (rows, item, rating, is_src, weight))
  params0 = cmf.init(jax.random.key(seed), n_all, ns, nt, cmf.CMFConfig.dim)
  times, params = [], None
  for e in range(epochs + 1):      # each call is one epoch from the same start
    cfg = cmf.CMFConfig(optimizer=optimizer, epochs=1)
    t0 = time.perf_counter()
    params, _ = jax.block_until_ready(cmf.train(params0, *args, jax.random.key(seed + e), cfg))
    times.append(time.perf_counter() - t0)
  probe = np.random.default_rng(seed).integers(0, len(rows), 10_000)
  pred = np.asarray(cmf.predict(params, jnp.asarray(rows[probe]), jnp.asarray(item[probe]),
                                jnp.asarray(is_src[probe])))
  return {"compile_epoch_s": times[0], "epoch_s": float(np.median(times[1:]))}, pred


def main(argv):
  del argv
  try:
    scales = common.parse_scales(FLAGS.scales)
    common.check_like(FLAGS.like)
    common.check_out(FLAGS.out)
  except ValueError as e:
    sys.exit(f"error: {e}")
  rows_out = []
  print(f"CMF on {FLAGS.like}'s two domains, batch {cmf.CMFConfig.batch_size}, "
        f"{jax.devices()[0].platform}")
  for scale in scales:
    data = joint_list(FLAGS.like, scale, FLAGS.seed)
    row = {"scale": scale, "ratings": int(data[2].size),
           "rows": int(data[5] + data[6] + data[7])}
    preds = {}
    for opt in ("adam", "deferred_adam"):
      row[opt], preds[opt] = time_optimizer(data, opt, FLAGS.epochs, FLAGS.seed)
      jax.clear_caches()
    row["ratio_dense_over_deferred"] = row["adam"]["epoch_s"] / row["deferred_adam"]["epoch_s"]
    row["max_abs_pred_diff"] = float(np.abs(preds["adam"] - preds["deferred_adam"]).max())
    rows_out.append(row)
    print(f"scale {scale:4g}: {row['ratings']:>10,} ratings, {row['rows']:>9,} rows  "
          f"adam {row['adam']['epoch_s']:7.2f} s/epoch  deferred "
          f"{row['deferred_adam']['epoch_s']:7.2f} s/epoch  ratio "
          f"{row['ratio_dense_over_deferred']:.2f}  max |pred diff| "
          f"{row['max_abs_pred_diff']:.1e}")
  for a, b in zip(rows_out, rows_out[1:]):
    for opt in ("adam", "deferred_adam"):
      b.setdefault("exponent_vs_ratings", {})[opt] = round(common.growth_exponent(
          a[opt]["epoch_s"], b[opt]["epoch_s"], a["ratings"], b["ratings"]), 3)
    print(f"exponent {a['scale']:g} -> {b['scale']:g}: {b['exponent_vs_ratings']}")
  if FLAGS.out:
    common.write_json(FLAGS.out, {
        "command": "python experiments/bench_cmf.py " + " ".join(sys.argv[1:]),
        "rows": rows_out})


if __name__ == "__main__":
  app.run(main)
