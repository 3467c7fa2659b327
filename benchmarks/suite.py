"""What ``experiments/bench.py`` measures: PFCDR's stages, inversion, top-k, memory.

Every comparison is measured side by side in one process (the machine may be
shared, so ratios are what count):

* :func:`pipeline_report`: PFCDR on synthetic data of the Table 2 sizes times
  ``scale``, timed stage by stage through the public functions of
  :mod:`pfcdr_jax.pfcdr.method` (pretraining, closed-form prototypes of both domains,
  bridge, K on the validation users + top-k, evaluation).
* :func:`inversion_comparison`: the iterative inversion (fused ``lax.scan``, on a
  sample of users) against the closed form (all source users), their prototypes'
  max relative error, and the closed form over its roofline (:func:`roofline`).
* :func:`topk_comparison`: for each K, the library's neighbor selection against
  numpy ``argpartition`` (:func:`numpy_topk`), unsorted (the set, as the pipeline
  calls it) and sorted; optionally the ``lax.top_k`` kernel at every K and, on a
  sample of cold users, ``lax.sort`` selection and ``lax.approx_min_k``.
* :func:`peak_rss_gb` and :func:`machine_info`.

:func:`run` composes them into the dict ``bench.json`` holds; :func:`format_table`
renders it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import resource
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import inversion as inversion_lib
from pfcdr_jax.pfcdr import inversion_objective
from pfcdr_jax.pfcdr import method
from pfcdr_jax.models import metrics as metrics_lib
from benchmarks import pipeline as benchmarks_pipeline
from pfcdr_jax.pfcdr import topk as topk_lib
from pfcdr_jax.config import BridgeConfig, TopKConfig
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.data import synthetic
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.models import train as train_lib

# The slow variants (sorted / lax.top_k) above this K are timed cold, compile
# included (~1 s), rather than paying for a second full run.
WARM_MAX_K = 10_000


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """What the benchmark runs (``experiments/bench.py`` builds it from its flags)."""
  like: str = "music2movie"        # Table 2 template of the synthetic data
  scale: float = 1.0               # multiplier of every Table 2 count
  seed: int = 0                    # data, split and stage keys
  beta: float = 0.2                # share of overlap users made cold-start test users
  lr: float = 0.01                 # the single pretraining learning rate
  epochs: int = 5
  batch_size: int = 4096
  inversion_chunk: int | None = None   # None: inversion.chunk_size_for
  iter_users: int = 128            # users in the iterative-inversion sample
  iter_chunk: int = 128
  topk_ks: tuple[int, ...] = (100, 10_000, 70_000)
  pipeline_topk_grid: tuple[float, ...] = (0.001, 0.01, 0.1)
  topk_chunk: int | None = None    # None: topk.DEFAULT_CHUNK
  sample_users: int = 128          # cold users of the lax.sort / approx_min_k sample
  topk_extras: bool = True         # also lax.top_k at every K, lax.sort, approx_min_k
  topk_reps: int = 5               # repetitions of the set timings (median and spread)
  full_job: bool = True            # pipeline_full: the real main job at `scale`
  scaling_scales: tuple[float, ...] = ()   # scaling: the real main job at these scales
  scaling_repeats: int = 1         # runs of each scaling scale, interleaved (medians)
  scaling_also: tuple[tuple[str, float], ...] = ()   # scaling's single runs of other
                                                     # templates, (like, scale) each
  job_flags: tuple[str, ...] = ()  # extra flags of those main jobs (e.g. "--epochs=2")

  def train(self) -> train_lib.TrainConfig:
    return train_lib.TrainConfig(lrs=(self.lr,), epochs=self.epochs,
                                 batch_size=self.batch_size, seed=self.seed)

  def inversion(self) -> inversion_lib.InversionConfig:
    return inversion_lib.InversionConfig(method="closed_form", chunk_size=self.inversion_chunk)

  def topk(self) -> TopKConfig:
    return TopKConfig(grid=tuple(self.pipeline_topk_grid), chunk=self.topk_chunk)


class PipelineRun(NamedTuple):
  """What the later comparisons reuse of the timed pipeline run."""
  data: splits_lib.CDRData
  stages: dict           # stage name -> seconds
  result: dict           # mae, rmse, k, val_mae_by_k
  W_s: jax.Array         # float32[U_s, d] source user representations
  V_s: jax.Array         # float32[N_s, d] source item matrix
  W_t: jax.Array         # float32[U_t, d] target user representations
  P_hat: np.ndarray      # float32[C, d] transferred prototypes (val, then test users)
  valid: jax.Array       # bool[U_t] candidate neighbors
  source_users: np.ndarray   # int32[n_bridge + C] users of the source prototypes
  keys: method.StageKeys


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """``(fn(), wall seconds)``, waiting for every array of the output."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - t0


def peak_rss_gb() -> float:
  """Peak resident memory of this process so far, GB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def machine_info() -> dict:
  """Cores, JAX backend / devices / version, platform; memory and load when psutil is."""
  info = {"cores": os.cpu_count(), "jax_backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
          "platform": platform.platform(), "python": platform.python_version()}
  try:
    import psutil  # pylint: disable=g-import-not-at-top
    info["memory_gb"] = round(psutil.virtual_memory().total / 1e9, 1)
    info["load_avg_at_start"] = list(os.getloadavg())
  except ImportError:
    pass
  return info


# ----------------------------------------------------------------------------
# Pipeline, stage by stage.
# ----------------------------------------------------------------------------

def run_pipeline(cfg: BenchConfig, keys: method.StageKeys) -> PipelineRun:
  """Times each PFCDR stage on synthetic data; the method is ``pfcdr_jax.pfcdr.method``'s.

  Stages: ``data`` (synthetic frames + split), ``pretrain_source`` /
  ``pretrain_target`` (MF, one lr), ``inversion_source`` / ``inversion_target``
  (closed form, compile included), ``bridge`` (fit + transfer), ``topk`` (K picked
  on the validation users, then the test predictions) and ``evaluate``.
  """
  stages: dict = {}
  t0 = time.perf_counter()
  src, tgt, _ = synthetic.make_synthetic_cdr(cfg.seed, like=cfg.like, scale=cfg.scale)
  data = splits_lib.make_cdr_split(src, tgt, beta=cfg.beta, seed=cfg.seed,
                                   name=f"synthetic-{cfg.like}")
  del src, tgt
  stages["data"] = time.perf_counter() - t0
  scorer = scorers_lib.get_scorer("mf")
  params_s, stages["pretrain_source"] = timed(lambda: train_lib.train_scorer(
      scorer, data.source, cfg.train(), keys.pretrain_source).params)
  params_t, stages["pretrain_target"] = timed(lambda: train_lib.train_scorer(
      scorer, data.target_train, cfg.train(), keys.pretrain_target).params)
  icfg = cfg.inversion()
  source_users = method.source_prototype_users(data)
  bridge_users = method.bridge_users(data)
  inv_s, stages["inversion_source"] = timed(lambda: method.prototypes(
      scorer, params_s, data.source.n_users, source_users, keys.inversion_source, icfg))
  inv_t, stages["inversion_target"] = timed(lambda: method.prototypes(
      scorer, params_t, data.target_train.n_users, bridge_users, keys.inversion_target,
      icfg))
  nb = len(bridge_users)
  t0 = time.perf_counter()
  W_map, _ = method.fit_bridge(inv_s.prototypes[:nb], inv_t.prototypes, keys.bridge,
                               BridgeConfig())
  P_hat = method.transfer(W_map, inv_s.prototypes[nb:])
  stages["bridge"] = time.perf_counter() - t0

  W_s, V_s = method.representations(scorer, params_s, data.source.n_users)
  W_t, V_t = method.representations(scorer, params_t, data.target_train.n_users)
  tcfg = cfg.topk()
  valid = method.candidates(data, tcfg)
  cold = method.cold_users(data)
  r = icfg.target_rating
  t0 = time.perf_counter()
  k, val_mae = method.select_k(P_hat, W_t, valid, V_t, data.target_val, cold, tcfg, r)
  pred = method.predict_cold(P_hat, W_t, valid, V_t, data.target_test, cold, k, tcfg, r)
  stages["topk"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  test = data.target_test
  result = {"mae": float(metrics_lib.mae(pred, test.rating)),
            "rmse": float(metrics_lib.rmse(pred, test.rating)), "k": int(k),
            "val_mae_by_k": {str(kk): v for kk, v in val_mae.items()}}
  stages["evaluate"] = time.perf_counter() - t0
  return PipelineRun(data, stages, result, W_s, V_s, W_t, P_hat, valid, source_users, keys)


def pipeline_report(cfg: BenchConfig, keys: method.StageKeys) -> tuple[dict, PipelineRun]:
  """``bench.json["pipeline"]``: total and per-stage seconds, the test result, and
  the peak memory after the pipeline; with the run for the later comparisons."""
  t0 = time.perf_counter()
  run_ = run_pipeline(cfg, keys)
  total = time.perf_counter() - t0
  report = {"total_s": round(total, 2),
            "stages": {k: round(v, 2) for k, v in run_.stages.items()},
            "result": run_.result, "epochs": cfg.epochs, "lr": cfg.lr,
            "peak_rss_gb_after_pipeline": round(peak_rss_gb(), 3)}
  return report, run_


# ----------------------------------------------------------------------------
# Inversion: iterative vs closed form, and the closed form's roofline.
# ----------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("chunk", "n_items"))
def draw_b0(index: jax.Array, key: jax.Array, *, chunk: int, n_items: int) -> jax.Array:
  """Draws ``b0 = softmax(z)`` of every user with the keys and chunks of
  ``invert_users``; returns only a cheap reduction [n_chunks, chunk], so that no
  [B, N] array escapes. index: int32[B], B a multiple of `chunk`."""
  def one(ix):
    b0 = jax.vmap(lambda k: inversion_objective.init_weights(k, n_items))(
        inversion_lib.user_keys(key, ix))
    return jnp.sum(b0 * b0, axis=1)
  return jax.lax.map(one, index.reshape(-1, chunk))


def b0_draw_by_impl(n_users: int, n_items: int, chunk: int,
                    impls: tuple[str, ...] = ("threefry2x32", "rbg", "unsafe_rbg", "hash")
                    ) -> dict:
  """Seconds to draw ``n_users`` inversion starts ``b0 = softmax(z)`` (z: [N] normals
  from a per-user ``fold_in`` key, as ``inversion_objective.init_weights``), per ``jax.random``
  implementation and for ``hash`` (:mod:`hash_random` on threefry keys, the
  inversion's ``b0_draw="hash"``), each warm."""
  out = {}
  n_pad = -(-n_users // chunk) * chunk
  for impl in impls:
    base = jax.random.key(0, impl="threefry2x32" if impl == "hash" else impl)
    b0_draw = "hash" if impl == "hash" else "threefry"

    @jax.jit
    def draw(idx, base=base, b0_draw=b0_draw):
      def one(ix):
        ks = jax.vmap(lambda i: jax.random.fold_in(base, i))(ix)
        z = jax.vmap(lambda k: inversion_objective.draw_z(k, n_items, b0_draw))(ks)
        return jnp.sum(jax.nn.softmax(z, axis=1) ** 2, axis=1)
      return jax.lax.map(one, idx.reshape(-1, chunk))

    idx = jnp.arange(n_pad, dtype=jnp.int32)
    timed(lambda: draw(idx))
    out[impl] = round(timed(lambda: draw(idx))[1], 3)
  return {"users": n_pad, "n_items": n_items, "chunk": chunk, "s": out}


@functools.partial(jax.jit, static_argnames=("chunk",))
def plain_dots(W: jax.Array, V: jax.Array, X: jax.Array, *, chunk: int) -> jax.Array:
  """The closed form's matrix products alone, per chunk of users: ``S = W V^T``
  [chunk, N], then ``S @ V + X @ V``. W: [B, d] (B a multiple of `chunk`), V: [N, d],
  X: [chunk, N]."""
  def one(w):
    s = jnp.dot(w, V.T)
    return jnp.dot(s, V) + jnp.dot(X, V)
  return jax.lax.map(one, W.reshape(-1, chunk, W.shape[1]))


def roofline(W: jax.Array, V: jax.Array, users: np.ndarray, key: jax.Array,
             cfg: inversion_lib.InversionConfig) -> tuple[float, float, int]:
  """The closed form's floor: ``(draw_b0 s, plain_dots s, chunk)``, each warm, alone.

  W: [B, d] the inverted users' representations, V: [N, d], users: int[B].
  """
  n_items = int(V.shape[0])
  cs = inversion_lib.chunk_size_for(cfg, "closed_form", n_items)
  n = len(users)
  n_pad = -(-n // cs) * cs
  idx_pad = jnp.pad(jnp.asarray(users, jnp.int32), (0, n_pad - n))
  draw = lambda: draw_b0(idx_pad, key, chunk=cs, n_items=n_items)
  timed(draw)
  _, draw_s = timed(draw)
  W_pad = jnp.pad(W, ((0, n_pad - n), (0, 0)))
  X = jnp.ones((cs, n_items), jnp.float32)
  dots = lambda: plain_dots(W_pad, V, X, chunk=cs)
  timed(dots)
  _, dots_s = timed(dots)
  return draw_s, dots_s, cs


def inversion_comparison(run_: PipelineRun, cfg: BenchConfig) -> dict:
  """``bench.json["inversion"]``: iterative vs closed form on the source users.

  The closed form runs again on all source users, warm (the pipeline's stage time
  includes compilation); the iterative path on the first ``cfg.iter_users`` of them,
  after a warm-up. Reports seconds per 1,000 users, the speedup, the max relative
  error of the sample's prototypes, the iterative user*item*step throughput and the
  closed form's time over its :func:`roofline`.
  """
  W_s, V_s, users, key = run_.W_s, run_.V_s, run_.source_users, run_.keys.inversion_source
  n_items, d = V_s.shape
  icfg = cfg.inversion()
  n_all = len(users)
  cf_all, cf_s = timed(lambda: inversion_lib.invert_users(
      W_s[users], V_s, key, icfg, user_index=jnp.asarray(users)))
  m = min(cfg.iter_users, n_all)
  sample = jnp.asarray(users[:m])
  it_cfg = inversion_lib.InversionConfig(method="iterative",
                                         chunk_size=min(cfg.iter_chunk, m))
  run_it = lambda: inversion_lib.invert_users(W_s[sample], V_s, key, it_cfg,
                                              user_index=sample)
  timed(lambda: run_it().prototypes[:1])   # compile on a warm-up
  it, it_s = timed(run_it)
  rel = jnp.linalg.norm(cf_all.prototypes[:m] - it.prototypes, axis=1) / jnp.maximum(
      jnp.linalg.norm(it.prototypes, axis=1), 1e-12)
  draw_s, dots_s, cs = roofline(W_s[users], V_s, users, key, icfg)
  it_k, cf_k = it_s / m * 1000.0, cf_s / n_all * 1000.0
  return {
      "iterative_s_per_1k_users": round(it_k, 3),
      "closed_form_s_per_1k_users": round(cf_k, 4),
      "speedup": round(it_k / cf_k, 2),
      "max_rel_err": float(jnp.max(rel)),
      "roofline_ratio": round(cf_s / (draw_s + dots_s), 3),
      "iterative_user_item_steps_per_s": float(m * n_items * it_cfg.steps / it_s),
      "closed_form_s": round(cf_s, 3),
      "closed_form_stage_s_incl_compile": round(run_.stages["inversion_source"], 3),
      "iterative_s": round(it_s, 3), "iterative_users": m, "closed_form_users": n_all,
      "n_items": int(n_items), "dim": int(d), "steps": it_cfg.steps,
      "closed_form_chunk": cs, "iterative_chunk": it_cfg.chunk_size,
      "roofline_draw_b0_s": round(draw_s, 3), "roofline_dots_s": round(dots_s, 3),
      "b0_draw_by_impl": b0_draw_by_impl(min(n_all, 2048), int(n_items), cs),
  }


# ----------------------------------------------------------------------------
# Top-k: the library against numpy and the other XLA selections.
# ----------------------------------------------------------------------------

def numpy_topk(P: np.ndarray, W: np.ndarray, valid: np.ndarray, r: float, k: int, *,
               sort: bool, block: int = 64) -> np.ndarray:
  """Reference of Eq. (13): ``argpartition`` of ``|r - P W^T|`` (+ ``argsort`` of the
  K when `sort`, ties by lower index) in blocks of users. P: [C, d], W: [T, d],
  valid: bool[T] (invalid users never chosen while K <= valid). Returns int64[C, K]."""
  out = np.empty((P.shape[0], k), np.int64)
  for lo in range(0, P.shape[0], block):
    dist = np.abs(r - P[lo:lo + block] @ W.T)
    dist[:, ~valid] = np.inf
    if k < dist.shape[1]:
      part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    else:
      part = np.broadcast_to(np.arange(dist.shape[1]), dist.shape).copy()
    if sort:
      order = np.argsort(np.take_along_axis(dist, part, 1), axis=1, kind="stable")
      part = np.take_along_axis(part, order, 1)
    out[lo:lo + block] = part
  return out


@functools.partial(jax.jit, static_argnames=("k",))
def sort_topk(P: jax.Array, W: jax.Array, valid: jax.Array, r: jax.Array, *,
              k: int) -> jax.Array:
  """Eq. (13) by a full stable ``lax.sort`` of each row: int32[C, k], closest first."""
  s = jnp.where(valid[None], jnp.abs(r - P @ W.T), jnp.inf)
  io = jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
  return jax.lax.sort((s, io), dimension=1, num_keys=1, is_stable=True)[1][:, :k]


@functools.partial(jax.jit, static_argnames=("k",))
def approx_topk(P: jax.Array, W: jax.Array, valid: jax.Array, r: jax.Array, *,
                k: int) -> jax.Array:
  """Eq. (13) approximately: ``lax.approx_min_k`` at recall target 0.95, int32[C, k]."""
  s = jnp.where(valid[None], jnp.abs(r - P @ W.T), jnp.inf)
  return jax.lax.approx_min_k(s, k, recall_target=0.95)[1]


def recall(approx, exact) -> float:
  """Share of `exact`'s [C, K] indices that `approx` [C, K'] holds in the same row."""
  approx, exact = np.asarray(approx), np.asarray(exact)
  hits = [np.intersect1d(a, e).size for a, e in zip(approx, exact)]
  return float(np.sum(hits) / exact.size)


def _timed_warm(fn, k: int, always: bool = False) -> tuple[Any, float]:
  """A warm-up run compiles the exact shapes, unless K > WARM_MAX_K (see there)."""
  if always or k <= WARM_MAX_K:
    timed(fn)
  return timed(fn)


def topk_entry(P: jax.Array, W_t: jax.Array, valid: jax.Array, k: int, r: float,
               cfg: BenchConfig) -> dict:
  """One K of ``bench.json["topk"]``: library vs numpy, set and sorted; with
  ``cfg.topk_extras`` the ``lax.top_k`` kernel and ``approx_min_k`` on a sample.

  P: [C, d] test cold users' prototypes, W_t: [T, d], valid: bool[T], k resolved.
  """
  method_ = topk_lib.selection_method("auto", k)
  lib = lambda m, srt: lambda: topk_lib.select_neighbors(
      P, W_t, valid, r=r, k=k, method=m, chunk_size=cfg.topk_chunk, sorted=srt)
  P_np, W_np, valid_np = np.asarray(P), np.asarray(W_t), np.asarray(valid)
  idx, s = _timed_warm(lib("auto", False), k, always=True)
  idx_sorted, s_sorted = _timed_warm(lib("auto", True), k)
  ref_set, np_s = timed(lambda: numpy_topk(P_np, W_np, valid_np, r, k, sort=False))
  lib_reps, np_reps = [s], [np_s]
  for _ in range(cfg.topk_reps - 1):   # interleaved, so both see the same machine load
    lib_reps.append(timed(lib("auto", False))[1])
    np_reps.append(timed(lambda: numpy_topk(P_np, W_np, valid_np, r, k, sort=False))[1])
  _, np_sorted_s = timed(lambda: numpy_topk(P_np, W_np, valid_np, r, k, sort=True))
  idx, idx_sorted = np.asarray(idx), np.asarray(idx_sorted)
  entry = {"k": k, "method": method_, "s": round(s, 3), "numpy_s": round(np_s, 3),
           "ratio_to_numpy": round(s / np_s, 3),
           "reps": len(lib_reps), "s_median": round(float(np.median(lib_reps)), 3),
           "numpy_s_median": round(float(np.median(np_reps)), 3),
           "s_spread": [round(min(lib_reps), 3), round(max(lib_reps), 3)],
           "numpy_s_spread": [round(min(np_reps), 3), round(max(np_reps), 3)],
           "median_ratio_to_numpy": round(float(np.median(lib_reps) / np.median(np_reps)), 3),
           "sorted_s": round(s_sorted, 3), "numpy_sorted_s": round(np_sorted_s, 3),
           "sorted_ratio_to_numpy": round(s_sorted / np_sorted_s, 3),
           "same_set_sorted_and_unsorted": bool(np.array_equal(np.sort(idx_sorted, 1),
                                                               np.sort(idx, 1))),
           # XLA's and BLAS's float32 dots round differently, so near-ties at the
           # K-th place can swap: report the overlap of the two sets.
           "overlap_with_numpy": round(recall(idx, ref_set), 6)}
  if not cfg.topk_extras:
    return entry
  if method_ != "top_k":
    idx_tk, tk_s = _timed_warm(lib("top_k", True), k)
    entry["top_k_kernel_s"] = round(tk_s, 3)
    entry["top_k_kernel_same_output"] = bool(np.array_equal(np.asarray(idx_tk), idx_sorted))
  else:
    entry["top_k_kernel_s"] = round(s_sorted, 3)
  ns = min(cfg.sample_users, P.shape[0])
  r32 = jnp.float32(r)
  approx = lambda: approx_topk(P[:ns], W_t, valid, r32, k=k)
  timed(approx)
  idx_ap, ap_s = timed(approx)
  entry["approx_min_k_s_extrapolated"] = round(ap_s * P.shape[0] / ns, 2)
  entry["approx_min_k_recall"] = round(recall(idx_ap, idx_sorted[:ns]), 4)
  return entry


def topk_comparison(run_: PipelineRun, cfg: BenchConfig,
                    log: Callable[[str], None] | None = None) -> dict:
  """``bench.json["topk"]``: all test cold users x all target users, per K in
  ``cfg.topk_ks`` (:func:`topk_entry`, keyed by the K asked for), plus with
  ``cfg.topk_extras`` the time of ``lax.sort`` selection on a sample, extrapolated."""
  P = jnp.asarray(run_.P_hat[len(run_.data.val_users):])
  W_t, valid = run_.W_t, jnp.asarray(run_.valid)
  n_valid = int(np.sum(np.asarray(valid)))
  r = cfg.inversion().target_rating
  out: dict = {"cold_users": int(P.shape[0]), "targets": int(W_t.shape[0]),
               "valid_targets": n_valid, "chunk": cfg.topk_chunk}
  if cfg.topk_extras:
    ns = min(cfg.sample_users, P.shape[0])
    srt = lambda: sort_topk(P[:ns], W_t, valid, jnp.float32(r),
                            k=min(max(cfg.topk_ks), n_valid))
    timed(srt)
    _, sort_s = timed(srt)
    out["lax_sort_s_extrapolated"] = round(sort_s * P.shape[0] / ns, 2)
  for k_asked in cfg.topk_ks:
    entry = topk_entry(P, W_t, valid, topk_lib.resolve_k(int(k_asked), n_valid), r, cfg)
    out[str(int(k_asked))] = entry
    if log is not None:
      log(f"topk K={k_asked}: {entry}")
  return out


# ----------------------------------------------------------------------------
# All of it, and the table.
# ----------------------------------------------------------------------------

def run(cfg: BenchConfig, command: str,
        log: Callable[[str], None] | None = None) -> dict:
  """The whole benchmark: the dict ``bench.json`` holds (keys documented above).

  Args:
    cfg: what to run; command: the command line recorded in the output.
    log: optional sink of a progress line after each part.
  """
  log = log or (lambda _: None)
  out: dict = {"command": command, "like": cfg.like, "scale": cfg.scale,
               "machine": machine_info()}
  out["pipeline"], run_ = pipeline_report(cfg, method.StageKeys.from_seed(cfg.seed))
  log(f"pipeline: {out['pipeline']['total_s']:.1f}s {out['pipeline']['stages']}")
  out["inversion"] = inversion_comparison(run_, cfg)
  log(f"inversion: {out['inversion']}")
  out["topk"] = topk_comparison(run_, cfg, log)
  out["peak_rss_gb"] = round(peak_rss_gb(), 3)
  if cfg.scaling_scales:
    out["scaling"] = benchmarks_pipeline.scaling(cfg.like, cfg.scaling_scales, cfg.job_flags,
                                                 log=log, repeats=cfg.scaling_repeats,
                                                 also=cfg.scaling_also)
  if cfg.full_job:   # the scaling run at --scale is that very job: not run twice
    same = [r for r in out.get("scaling", {}).get("runs", []) if r["scale"] == cfg.scale]
    out["pipeline_full"] = (same[0] if same else
                            benchmarks_pipeline.run_main_job(cfg.like, cfg.scale, cfg.job_flags))
    log(f"pipeline_full: {out['pipeline_full']['total_s']:.1f}s")
  return out


def format_table(out: dict) -> str:
  """The printed summary of a :func:`run` output."""
  inv, pipe, mach = out["inversion"], out["pipeline"], out["machine"]
  lines = [f"machine: {mach['cores']} cores, backend {mach['jax_backend']}"
           f", load avg at start {mach.get('load_avg_at_start')}",
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
  nan = float("nan")
  for key, e in out["topk"].items():
    if not isinstance(e, dict):
      continue
    lines.append(f"  {key:>7} {e['method']:>9} {e['s']:>7.2f} {e['numpy_s']:>8.2f}"
                 f" {e['ratio_to_numpy']:>6.2f} {e['sorted_s']:>9.2f} {e['numpy_sorted_s']:>9.2f}"
                 f" {e.get('top_k_kernel_s', nan):>8.2f}"
                 f" {e.get('approx_min_k_s_extrapolated', nan):>9.2f}"
                 f" {e.get('approx_min_k_recall', nan):>7.4f}")
  if "lax_sort_s_extrapolated" in out["topk"]:
    lines.append(f"  lax.sort selection (any K, extrapolated): "
                 f"{out['topk']['lax_sort_s_extrapolated']:.1f}s")
  lines += ["", f"pipeline total {pipe['total_s']:.1f}s  (MAE {pipe['result']['mae']:.4f}, "
            f"K={pipe['result']['k']})"]
  lines += [f"  {k:<18} {v:>8.2f}s" for k, v in pipe["stages"].items()]
  lines.append(f"\npeak RSS {out['peak_rss_gb']:.2f} GB")
  for key, e in out["topk"].items():
    if isinstance(e, dict) and "s_median" in e:
      lines.append(f"top-k K={key}: median of {e['reps']} {e['s_median']:.2f}s, numpy "
                   f"{e['numpy_s_median']:.2f}s (ratio {e['median_ratio_to_numpy']:.2f})")
  jobs = out.get("scaling", {}).get("runs", [])
  if "pipeline_full" in out and out["pipeline_full"] not in jobs:
    jobs = jobs + [out["pipeline_full"]]
  jobs = jobs + out.get("scaling", {}).get("also", [])
  for job in jobs:
    lines.append(f"main job, {job.get('like', out['like'])} scale {job['scale']}: "
                 f"{job['total_s']:.1f}s, peak "
                 f"{job['peak_rss_gb']:.2f} GB, {job['ratings']:,} ratings, PFCDR MAE "
                 f"{job['pfcdr_mae']:.4f}; " + ", ".join(f"{k} {v:.1f}s"
                                                   for k, v in job["stages"].items()))
  for stage, g in out.get("scaling", {}).get("growth_exponents", {}).items():
    lines.append(f"  growth {stage:<18} {g['vs_ratings']:>6.2f} vs ratings, "
                 f"{g['vs_work']:>6.2f} vs {g['work']}")
  for pair, exps in out.get("scaling", {}).get("pairwise_exponents", {}).items():
    lines.append(f"  growth {pair}: " + ", ".join(
        f"{k} {g['vs_work']:.2f}" for k, g in exps.items()))
  return "\n".join(lines)
