"""MAE against K (the paper's Figure 3 a-c), from one run's cached prototypes.

The bridge, the transferred prototypes and the candidate target users are those of
``method.fit_predict``; every K is then scored with ``method.predict_cold`` on the
validation and the test users together (one neighbor search per K; the same
predictions as separate ``--topk=K`` runs). Inversion is not re-run: the prototypes
come from ``stages.run_prototypes`` (the stage cache). The K that the method itself
picks is recomputed from these numbers over its own grid (``method.k_candidates``),
exactly as ``method.select_k`` picks it: the lowest validation MAE, the first on ties.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.harness import stages
from pfcdr_jax.data.splits import DomainData
from pfcdr_jax.harness import records


class ColdSetup(NamedTuple):
  """What top-k needs for a run's cold users (as ``method.fit_predict`` builds it)."""
  P_hat: np.ndarray         # float32[C, d] transferred prototypes
  W_t: object               # [U_t, d] target user representations
  V_t: object               # [N_t, d] target item matrix
  valid: object             # bool[U_t] candidate neighbors
  cold: method_lib.ColdIndex
  n_candidates: int
  bridge_weights: np.ndarray
  bridge_train_mse: float


def cold_setup(run, protos: method_lib.Prototypes, cfg: config_lib.PFCDRConfig) -> ColdSetup:
  """The bridge fit and transfer of ``method.fit_predict`` for a prepared run."""
  n_bridge = len(method_lib.bridge_users(run.data))
  W_map, mse = method_lib.fit_bridge(protos.source[:n_bridge], protos.target,
                                     run.keys.bridge, cfg.bridge)
  P_hat = method_lib.transfer(W_map, protos.source[n_bridge:])
  W_t, V_t = method_lib.representations(run.scorer, run.params_t, run.data.target_train.n_users)
  valid = method_lib.candidates(run.data, cfg.topk)
  return ColdSetup(P_hat, W_t, V_t, valid, method_lib.cold_users(run.data),
                   int(np.sum(np.asarray(valid))), W_map, mse)


def log_grid(n: int, per_decade: int = 4) -> list[int]:
  """Integers 1 .. n spaced evenly in log10 (``per_decade`` a decade), n included."""
  if n < 1:
    raise ValueError(f"need n >= 1, got {n}")
  steps = int(np.floor(np.log10(n) * per_decade)) + 1
  ks = {int(round(10 ** (i / per_decade))) for i in range(steps)} | {n}
  return sorted(k for k in ks if 1 <= k <= n)


def concat_ratings(a: DomainData, b: DomainData) -> DomainData:
  """The ratings of `a` followed by those of `b` (same domain)."""
  return DomainData(user=np.concatenate([a.user, b.user]), item=np.concatenate([a.item, b.item]),
                    rating=np.concatenate([a.rating, b.rating]), n_users=a.n_users,
                    n_items=a.n_items)


class KSweep(NamedTuple):
  """Validation and test MAE at each K of one run.

  Attributes:
    ks: int[n] the K values (the log grid and the method's own grid).
    val_mae, test_mae: float[n]; method_ks: the method's own grid (subset of ks).
    k_selected: the method's validation pick (= ``method.select_k``; the main job's K).
    n_candidates: trained target users searched.
  """
  ks: np.ndarray
  val_mae: np.ndarray
  test_mae: np.ndarray
  method_ks: list[int]
  k_selected: int
  n_candidates: int


def sweep_k(setup: ColdSetup, data, cfg: config_lib.PFCDRConfig,
            ks: Sequence[int] | None = None) -> KSweep:
  """Scores every K of ``ks`` (default :func:`log_grid`) and of the method's grid.

  Args:
    setup: :func:`cold_setup` of the run; data: its split (``CDRData``).
    cfg: the run's config (top-k settings, the inversion's target rating).
    ks: extra K values (counts, capped at the number of candidates).
  """
  n = setup.n_candidates
  method_ks = method_lib.k_candidates(cfg.topk, n)
  grid = sorted({min(int(k), n) for k in (ks if ks is not None else log_grid(n))}
                | set(method_ks))
  val, test = data.target_val, data.target_test
  both = concat_ratings(val, test)
  r = cfg.inversion.target_rating
  val_mae, test_mae = [], []
  for k in grid:
    pred = method_lib.predict_cold(setup.P_hat, setup.W_t, setup.valid, setup.V_t, both,
                                   setup.cold, k, cfg.topk, r)
    nv = val.rating.size
    val_mae.append(float(metrics_lib.mae(pred[:nv], val.rating)) if nv else float("nan"))
    test_mae.append(float(metrics_lib.mae(pred[nv:], test.rating)))
  by_k = dict(zip(grid, val_mae))
  k_sel = (method_ks[0] if len(method_ks) == 1
           else min(method_ks, key=lambda k: by_k[k]))
  return KSweep(np.asarray(grid), np.asarray(val_mae), np.asarray(test_mae), method_ks,
                int(k_sel), n)


def run_sweep(cfg: config_lib.PFCDRConfig, workdir) -> dict:
  """One run's K sweep as JSON: prepare (cached), prototypes (cached), sweep."""
  run = stages.prepare(cfg, workdir)
  protos = stages.run_prototypes(run, cfg, workdir)
  s = sweep_k(cold_setup(run, protos, cfg), run.data, cfg)
  return {"base_model": cfg.pretrain.base_model, "seed": cfg.seed, "ks": s.ks.tolist(),
          "val_mae": s.val_mae.tolist(), "test_mae": s.test_mae.tolist(),
          "method_ks": s.method_ks, "k_selected": s.k_selected,
          "n_candidates": s.n_candidates, "log_ks": log_grid(s.n_candidates)}


def aggregate(records: Sequence[dict]) -> dict:
  """Mean / sample std over seeds of one base model's sweeps.

  The curve uses the log-grid K values every seed has (below the smallest candidate
  count) plus "all candidates" (each seed's own count; x = their mean).
  """
  common = sorted(set.intersection(*(set(r["log_ks"][:-1]) for r in records)))
  xs, val, test = [], [], []
  for k in common + ["all"]:
    rows = [r["ks"].index(r["n_candidates"] if k == "all" else k) for r in records]
    xs.append(float(np.mean([r["n_candidates"] for r in records])) if k == "all" else k)
    val.append([r["val_mae"][i] for r, i in zip(records, rows)])
    test.append([r["test_mae"][i] for r, i in zip(records, rows)])

  def stats(v):
    a = np.asarray(v, np.float64)
    return (a.mean(1).tolist(), (a.std(1, ddof=1) if a.shape[1] > 1 else 0 * a[:, 0]).tolist())

  (vm, vs), (tm, ts) = stats(val), stats(test)
  sel = [r["k_selected"] for r in records]
  at_sel = [r["test_mae"][r["ks"].index(r["k_selected"])] for r in records]
  best_test = [r["ks"][int(np.argmin(r["test_mae"]))] for r in records]
  return {"k": xs, "val_mae": vm, "val_mae_std": vs, "test_mae": tm, "test_mae_std": ts,
          "k_selected_by_seed": sel, "test_mae_at_selected_by_seed": at_sel,
          "k_best_test_by_seed": best_test,
          "n_candidates_by_seed": [r["n_candidates"] for r in records],
          "seeds": [r["seed"] for r in records]}


def run_cells(cfg: config_lib.PFCDRConfig, base_models: Sequence[str], num_seeds: int,
              root) -> dict[str, list[dict]]:
  """Every (base model, seed) sweep under ``root/cells`` (finished ones are read back)."""
  out: dict[str, list[dict]] = {}
  for model in base_models:
    for seed in range(num_seeds):
      c = config_lib.override(cfg, {"pretrain.base_model": model, "seed": seed})
      out.setdefault(model, []).append(
          records.cached(records.cell_path(root, "k", c), c, lambda c=c: run_sweep(c, root)))
      records.release_compiled()
  return out
