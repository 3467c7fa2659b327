r"""Benchmark of PFCDR at the paper's scale: inversion, top-k, whole pipeline, memory.

  python experiments/bench.py --like=music2movie --scale=1.0 --out=bench.json

Synthetic data of the Table 2 sizes times --scale (``make_synthetic_cdr`` +
``make_cdr_split``). Every comparison is measured side by side in this one
process (the machine may be shared, so ratios are what count):

* pipeline: both pretrainings, the closed-form inversion of every overlapping
  user in both domains, the bridge, top-k (K picked on the validation users),
  evaluation -- timed stage by stage with the library functions.
* inversion: iterative (fused, jitted ``lax.scan``; a sample of users) against the
  closed form (all source users, the pipeline stage), their max prototype relative
  error on the sample, the iterative throughput, and the closed form over its
  roofline = the time of drawing the same ``b_0`` plus the plain ``jnp.dot``
  products of the same shapes, measured alone with the same chunking.
* top-k: all test cold users x all target users for each K. ``s``: the library
  call the pipeline makes (``select_neighbors(..., sorted=False)``, method "auto":
  lax.top_k below ``AUTO_THRESHOLD_MIN_K``, threshold select above; the exact
  set) against ``numpy_s``: numpy ``argpartition`` (the exact set). Also the
  sorted contract on both sides (library ``sorted=True`` vs argpartition + argsort
  of the K), the lax.top_k kernel at every K, and on a sample of users
  ``lax.sort`` selection and ``lax.approx_min_k`` (with its recall).
* peak resident memory of the process.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import platform
import resource
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pfcdr_jax import bridge as bridge_lib  # noqa: E402
from pfcdr_jax import inversion as inversion_lib  # noqa: E402
from pfcdr_jax import metrics as metrics_lib  # noqa: E402
from pfcdr_jax import topk as topk_lib  # noqa: E402
from pfcdr_jax.data import splits as splits_lib  # noqa: E402
from pfcdr_jax.data import synthetic  # noqa: E402
from pfcdr_jax.models import scorers as scorers_lib  # noqa: E402
from pfcdr_jax.models import train as train_lib  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("like", "music2movie", "Table 2 template of the synthetic data.")
flags.DEFINE_float("scale", 1.0, "Multiplier of every Table 2 count.")
flags.DEFINE_string("out", "bench.json", "Output JSON path.")
flags.DEFINE_integer("seed", 0, "Seed of data, split and keys.")
flags.DEFINE_float("beta", 0.2, "Share of overlap users made cold-start test users.")
flags.DEFINE_float("lr", 0.01, "The single pretraining learning rate.")
flags.DEFINE_integer("epochs", 5, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 4096, "Pretraining batch size.")
flags.DEFINE_integer("inversion_chunk", None,
                     "Users per chunk of the closed form (None: inversion.chunk_size_for).")
flags.DEFINE_integer("iter_users", 128, "Users in the iterative-inversion sample.")
flags.DEFINE_integer("iter_chunk", 128, "Users per chunk of the iterative path.")
flags.DEFINE_list("topk_ks", ["100", "10000", "70000"], "K values of the top-k benchmark.")
flags.DEFINE_list("pipeline_topk_grid", ["0.001", "0.01", "0.1"],
                  "Fractions of the valid target users tried for K on the val users.")
flags.DEFINE_integer("topk_chunk", None,
                     "Cold users per chunk of the top-k kernel (None: topk.DEFAULT_CHUNK).")
flags.DEFINE_integer("sample_users", 128, "Cold users in the lax.sort / approx_min_k sample.")
flags.DEFINE_bool("topk_extras", True,
                  "Also time the lax.top_k kernel at every K, lax.sort and approx_min_k.")

log = logging.getLogger("bench")


def _timed(fn, *args, **kwargs):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - t0


def _peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


# ----------------------------------------------------------------------------
# Roofline of the closed form: the draw of b0 and the plain products, alone.
# ----------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("chunk", "n_items"))
def _draw_b0(index, key, *, chunk, n_items):
  """Draws b0 = softmax(z) for every user (same keys/chunks as invert_users)."""
  idx = index.reshape(-1, chunk)

  def one(ix):
    b0 = jax.vmap(lambda k: inversion_lib.init_weights(k, n_items))(
        inversion_lib.user_keys(key, ix))
    return jnp.sum(b0 * b0, axis=1)   # a cheap reduction so nothing [B, N] escapes
  return jax.lax.map(one, idx)


@functools.partial(jax.jit, static_argnames=("chunk",))
def _plain_dots(W, V, X, *, chunk):
  """The closed form's products alone: S = W V^T [cs, N], S @ V and X @ V."""
  Wc = W.reshape(-1, chunk, W.shape[1])

  def one(w):
    S = jnp.dot(w, V.T)
    return jnp.dot(S, V) + jnp.dot(X, V)
  return jax.lax.map(one, Wc)


# ----------------------------------------------------------------------------
# Top-k references and candidates.
# ----------------------------------------------------------------------------

def _numpy_topk(P, W, valid, r, k, *, sort, block=64):
  """Reference: argpartition (+ argsort of the K when ``sort``) in blocks of users."""
  out = np.empty((P.shape[0], k), np.int64)
  for lo in range(0, P.shape[0], block):
    d = np.abs(r - P[lo:lo + block] @ W.T)
    d[:, ~valid] = np.inf
    part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else \
        np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
    if sort:
      order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
      part = np.take_along_axis(part, order, 1)
    out[lo:lo + block] = part
  return out


@functools.partial(jax.jit, static_argnames=("k",))
def _sort_topk(P, W, valid, r, *, k):
  s = jnp.where(valid[None], jnp.abs(r - P @ W.T), jnp.inf)
  io = jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
  return jax.lax.sort((s, io), dimension=1, num_keys=1, is_stable=True)[1][:, :k]


@functools.partial(jax.jit, static_argnames=("k",))
def _approx_topk(P, W, valid, r, *, k):
  s = jnp.where(valid[None], jnp.abs(r - P @ W.T), jnp.inf)
  return jax.lax.approx_min_k(s, k, recall_target=0.95)[1]


def _recall(approx, exact) -> float:
  hits = [np.intersect1d(a, e).size for a, e in zip(np.asarray(approx), np.asarray(exact))]
  return float(np.sum(hits) / np.asarray(exact).size)


# ----------------------------------------------------------------------------
# Pipeline, stage by stage.
# ----------------------------------------------------------------------------

def _run_pipeline(stages: dict, key):
  key_s, key_t, key_is, key_it, key_b = jax.random.split(key, 5)
  t0 = time.perf_counter()
  src, tgt, _ = synthetic.make_synthetic_cdr(FLAGS.seed, like=FLAGS.like, scale=FLAGS.scale)
  data = splits_lib.make_cdr_split(src, tgt, beta=FLAGS.beta, seed=FLAGS.seed,
                                   name=f"synthetic-{FLAGS.like}")
  del src, tgt
  stages["data"] = time.perf_counter() - t0
  scorer = scorers_lib.get_scorer("mf")
  tcfg = train_lib.TrainConfig(lrs=(FLAGS.lr,), epochs=FLAGS.epochs,
                               batch_size=FLAGS.batch_size, seed=FLAGS.seed)
  params_s, stages["pretrain_source"] = _timed(
      lambda: train_lib.train_scorer(scorer, data.source, tcfg, key_s).params)
  params_t, stages["pretrain_target"] = _timed(
      lambda: train_lib.train_scorer(scorer, data.target_train, tcfg, key_t).params)
  W_s = scorer.user_repr(params_s, jnp.arange(data.source.n_users))
  V_s = scorer.item_matrix(params_s)
  W_t = scorer.user_repr(params_t, jnp.arange(data.target_train.n_users))
  V_t = scorer.item_matrix(params_t)
  cold = np.concatenate([data.val_users, data.test_users]).astype(np.int32)
  bridge_users = np.asarray(data.train_users, np.int32)
  source_users = np.concatenate([bridge_users, cold])
  icfg = inversion_lib.InversionConfig(method="closed_form", chunk_size=FLAGS.inversion_chunk)
  inv_s, stages["inversion_source"] = _timed(
      lambda: inversion_lib.invert_users(W_s[source_users], V_s, key_is, icfg,
                                         user_index=jnp.asarray(source_users)))
  inv_t, stages["inversion_target"] = _timed(
      lambda: inversion_lib.invert_users(W_t[bridge_users], V_t, key_it, icfg,
                                         user_index=jnp.asarray(bridge_users)))
  nb = len(bridge_users)
  t0 = time.perf_counter()
  W_map = bridge_lib.fit_linear_bridge(inv_s.prototypes[:nb], inv_t.prototypes, key_b,
                                       lr=0.005, epochs=200, batch_size=256)
  P_hat = jax.block_until_ready(bridge_lib.apply_bridge(W_map, inv_s.prototypes[nb:]))
  stages["bridge"] = time.perf_counter() - t0

  valid = np.asarray(data.target_trained)
  n_valid = int(valid.sum())
  row = np.full(data.target_train.n_users, -1, np.int64)
  row[cold] = np.arange(len(cold))
  val, test = data.target_val, data.target_test

  def predict(users_of_rating, items, k):
    idx = topk_lib.select_neighbors(P_hat, W_t, valid, r=5.0, k=k, chunk_size=FLAGS.topk_chunk,
                                  sorted=False)
    mean_w = topk_lib.neighbor_mean(idx, W_t)
    return np.asarray(jnp.sum(mean_w[row[users_of_rating]] * V_t[items], axis=-1))

  t0 = time.perf_counter()
  ks = sorted({topk_lib.resolve_k(float(f), n_valid) for f in FLAGS.pipeline_topk_grid})
  val_mae = {k: float(metrics_lib.mae(predict(val.user, val.item, k), val.rating)) for k in ks}
  best_k = min(val_mae, key=val_mae.get)
  pred = predict(test.user, test.item, best_k)
  stages["topk"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  result = {"mae": float(metrics_lib.mae(pred, test.rating)),
            "rmse": float(metrics_lib.rmse(pred, test.rating)), "k": int(best_k),
            "val_mae_by_k": {str(k): v for k, v in val_mae.items()}}
  stages["evaluate"] = time.perf_counter() - t0
  return dict(data=data, W_s=W_s, V_s=V_s, W_t=W_t, P_hat=P_hat, valid=valid,
              source_users=source_users, icfg=icfg, key_is=key_is,
              n_test=len(data.test_users), n_val=len(data.val_users), result=result)


def main(argv):
  del argv
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
  key = jax.random.PRNGKey(FLAGS.seed)
  out: dict = {"command": " ".join(["python"] + sys.argv), "like": FLAGS.like,
               "scale": FLAGS.scale}
  out["machine"] = {"cores": os.cpu_count(), "jax_backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
                    "platform": platform.platform(), "python": platform.python_version()}
  try:
    import psutil  # pylint: disable=g-import-not-at-top
    out["machine"]["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    out["machine"]["load_avg_at_start"] = list(os.getloadavg())
  except ImportError:
    pass

  # --- pipeline ---------------------------------------------------------------
  stages: dict = {}
  t_all = time.perf_counter()
  ctx = _run_pipeline(stages, key)
  total = time.perf_counter() - t_all
  out["pipeline"] = {"total_s": round(total, 2),
                     "stages": {k: round(v, 2) for k, v in stages.items()},
                     "result": ctx["result"],
                     "epochs": FLAGS.epochs, "lr": FLAGS.lr}
  out["pipeline"]["peak_rss_gb_after_pipeline"] = round(_peak_rss_gb(), 3)
  log.info("pipeline: %.1fs %s", total, out["pipeline"]["stages"])

  # --- inversion ---------------------------------------------------------------
  W_s, V_s, users = ctx["W_s"], ctx["V_s"], ctx["source_users"]
  n_items, d = V_s.shape
  icfg, key_is = ctx["icfg"], ctx["key_is"]
  n_all = len(users)
  cf_s = stages["inversion_source"]
  # Closed form again on the whole source set, now warm (the stage time above
  # includes its compilation), and on the sample.
  cf_all, cf_warm_s = _timed(lambda: inversion_lib.invert_users(
      W_s[users], V_s, key_is, icfg, user_index=jnp.asarray(users)))
  m = min(FLAGS.iter_users, n_all)
  sample = jnp.asarray(users[:m])
  it_cfg = inversion_lib.InversionConfig(method="iterative",
                                         chunk_size=min(FLAGS.iter_chunk, m))
  run_it = lambda: inversion_lib.invert_users(W_s[sample], V_s, key_is, it_cfg,
                                              user_index=sample)
  _timed(lambda: run_it().prototypes[:1])                     # compile on a warm-up
  it, it_s = _timed(run_it)
  cf_proto = cf_all.prototypes[:m]
  rel = jnp.linalg.norm(cf_proto - it.prototypes, axis=1) / jnp.maximum(
      jnp.linalg.norm(it.prototypes, axis=1), 1e-12)
  # Roofline: draw the same b0 (same keys, same chunks), then the plain products.
  cs = inversion_lib.chunk_size_for(icfg, "closed_form", int(n_items))
  n_pad = -(-n_all // cs) * cs
  idx_pad = jnp.pad(jnp.asarray(users, jnp.int32), (0, n_pad - n_all))
  draw_fn = lambda: _draw_b0(idx_pad, key_is, chunk=cs, n_items=int(n_items))
  _timed(draw_fn)
  _, draw_s = _timed(draw_fn)
  W_pad = jnp.pad(W_s[users], ((0, n_pad - n_all), (0, 0)))
  X = jnp.ones((cs, n_items), jnp.float32)
  dots_fn = lambda: _plain_dots(W_pad, V_s, X, chunk=cs)
  _timed(dots_fn)
  _, dots_s = _timed(dots_fn)
  per1k = lambda s, n: s / n * 1000.0
  it_k, cf_k = per1k(it_s, m), per1k(cf_warm_s, n_all)
  out["inversion"] = {
      "iterative_s_per_1k_users": round(it_k, 3),
      "closed_form_s_per_1k_users": round(cf_k, 4),
      "speedup": round(it_k / cf_k, 2),
      "max_rel_err": float(jnp.max(rel)),
      "roofline_ratio": round(cf_warm_s / (draw_s + dots_s), 3),
      "iterative_user_item_steps_per_s": float(m * n_items * it_cfg.steps / it_s),
      "closed_form_s": round(cf_warm_s, 3), "closed_form_stage_s_incl_compile": round(cf_s, 3),
      "iterative_s": round(it_s, 3), "iterative_users": m, "closed_form_users": n_all,
      "n_items": int(n_items), "dim": int(d), "steps": it_cfg.steps,
      "closed_form_chunk": cs, "iterative_chunk": it_cfg.chunk_size,
      "roofline_draw_b0_s": round(draw_s, 3), "roofline_dots_s": round(dots_s, 3),
  }
  log.info("inversion: %s", out["inversion"])

  # --- top-k ---------------------------------------------------------------------
  nv = ctx["n_val"]
  P_test = ctx["P_hat"][nv:]
  W_t, valid = ctx["W_t"], ctx["valid"]
  P_np, W_np = np.asarray(P_test), np.asarray(W_t)
  vj = jnp.asarray(valid)
  r = jnp.float32(5.0)
  out["topk"] = {"cold_users": int(P_test.shape[0]), "targets": int(W_t.shape[0]),
                 "valid_targets": int(valid.sum()), "chunk": FLAGS.topk_chunk}
  ns = min(FLAGS.sample_users, P_test.shape[0])
  scale_up = P_test.shape[0] / ns
  if FLAGS.topk_extras:
    kmax = max(int(k) for k in FLAGS.topk_ks)
    _timed(lambda: _sort_topk(P_test[:ns], W_t, vj, r, k=min(kmax, int(valid.sum()))))
    _, sort_s = _timed(lambda: _sort_topk(P_test[:ns], W_t, vj, r,
                                          k=min(kmax, int(valid.sum()))))
    out["topk"]["lax_sort_s_extrapolated"] = round(sort_s * scale_up, 2)
  def lib_call(k, method, sorted_):
    return lambda: topk_lib.select_neighbors(P_test, W_t, valid, r=5.0, k=k, method=method,
                                           chunk_size=FLAGS.topk_chunk, sorted=sorted_)

  def timed_warm(fn, k, always=False):
    # A warm-up run compiles the exact shapes. The slow sorted/top_k variants above
    # 10k neighbors are timed cold (compile, ~1 s, included) instead of paying a
    # second full run; the pipeline's own call (the set) is always timed warm.
    if always or k <= 10_000:
      _timed(fn)
    return _timed(fn)

  for k_text in FLAGS.topk_ks:
    k = topk_lib.resolve_k(int(k_text), int(valid.sum()))
    method = topk_lib.resolve_method("auto", k)
    idx, s = timed_warm(lib_call(k, "auto", False), k, always=True)
    idx_sorted, s_sorted = timed_warm(lib_call(k, "auto", True), k)
    ref_set, np_s = _timed(lambda: _numpy_topk(P_np, W_np, valid, 5.0, k, sort=False))
    ref_sorted, np_sorted_s = _timed(lambda: _numpy_topk(P_np, W_np, valid, 5.0, k, sort=True))
    idx, idx_sorted = np.asarray(idx), np.asarray(idx_sorted)
    entry = {"k": k, "method": method, "s": round(s, 3), "numpy_s": round(np_s, 3),
             "ratio_to_numpy": round(s / np_s, 3),
             "sorted_s": round(s_sorted, 3), "numpy_sorted_s": round(np_sorted_s, 3),
             "sorted_ratio_to_numpy": round(s_sorted / np_sorted_s, 3),
             "same_set_sorted_and_unsorted": bool(np.array_equal(np.sort(idx_sorted, 1),
                                                                 np.sort(idx, 1))),
             # XLA's and BLAS's float32 dots round differently, so near-ties at the
             # K-th place can swap: report the overlap of the two sets.
             "overlap_with_numpy": round(_recall(idx, ref_set), 6)}
    if FLAGS.topk_extras:
      if method != "top_k":
        idx_tk, tk_s = timed_warm(lib_call(k, "top_k", True), k)
        entry["top_k_kernel_s"] = round(tk_s, 3)
        entry["top_k_kernel_same_output"] = bool(np.array_equal(np.asarray(idx_tk),
                                                                 idx_sorted))
        del idx_tk
      else:
        entry["top_k_kernel_s"] = round(s_sorted, 3)
      _timed(lambda: _approx_topk(P_test[:ns], W_t, vj, r, k=k))
      idx_ap, ap_s = _timed(lambda: _approx_topk(P_test[:ns], W_t, vj, r, k=k))
      entry["approx_min_k_s_extrapolated"] = round(ap_s * scale_up, 2)
      entry["approx_min_k_recall"] = round(_recall(idx_ap, idx_sorted[:ns]), 4)
    out["topk"][str(int(k_text))] = entry
    log.info("topk K=%s: %s", k_text, entry)
    del idx, idx_sorted, ref_sorted, ref_set

  out["peak_rss_gb"] = round(_peak_rss_gb(), 3)
  with open(FLAGS.out, "w") as f:
    json.dump(out, f, indent=2)
  print(format_table(out))


def format_table(out: dict) -> str:
  inv, pipe = out["inversion"], out["pipeline"]
  lines = [f"machine: {out['machine']['cores']} cores, backend {out['machine']['jax_backend']}"
           f", load avg at start {out['machine'].get('load_avg_at_start')}",
           f"command: {out['command']}", "",
           "inversion (per 1,000 users)      seconds",
           f"  iterative ({inv['iterative_users']} users)      {inv['iterative_s_per_1k_users']:>10.3f}",
           f"  closed form ({inv['closed_form_users']} users)  {inv['closed_form_s_per_1k_users']:>10.4f}",
           f"  speedup                        {inv['speedup']:>10.1f}x",
           f"  max prototype rel. error       {inv['max_rel_err']:>10.2e}",
           f"  closed form / roofline         {inv['roofline_ratio']:>10.2f}  "
           f"(draw b0 {inv['roofline_draw_b0_s']:.2f}s + dots {inv['roofline_dots_s']:.2f}s"
           f" vs {inv['closed_form_s']:.2f}s)",
           f"  iterative user*item*steps/s    {inv['iterative_user_item_steps_per_s']:>10.3e}",
           "", f"top-k ({out['topk']['cold_users']} cold x {out['topk']['targets']} targets)",
           f"  {'K':>7} {'method':>9} {'set s':>7} {'numpy s':>8} {'ratio':>6}"
           f" {'sorted s':>9} {'np sorted':>9} {'top_k s':>8} {'approx s':>9} {'recall':>7}"]
  for key, e in out["topk"].items():
    if not isinstance(e, dict):
      continue
    lines.append(f"  {key:>7} {e['method']:>9} {e['s']:>7.2f} {e['numpy_s']:>8.2f}"
                 f" {e['ratio_to_numpy']:>6.2f} {e['sorted_s']:>9.2f} {e['numpy_sorted_s']:>9.2f}"
                 f" {e.get('top_k_kernel_s', float('nan')):>8.2f}"
                 f" {e.get('approx_min_k_s_extrapolated', float('nan')):>9.2f}"
                 f" {e.get('approx_min_k_recall', float('nan')):>7.4f}")
  if "lax_sort_s_extrapolated" in out["topk"]:
    lines.append(f"  lax.sort selection (any K, extrapolated): "
                 f"{out['topk']['lax_sort_s_extrapolated']:.1f}s")
  lines += ["", f"pipeline total {pipe['total_s']:.1f}s  (MAE {pipe['result']['mae']:.4f}, "
            f"K={pipe['result']['k']})"]
  lines += [f"  {k:<18} {v:>8.2f}s" for k, v in pipe["stages"].items()]
  lines.append(f"\npeak RSS {out['peak_rss_gb']:.2f} GB")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
