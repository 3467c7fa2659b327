"""The end-to-end PFCDR experiment: load, cache, record and write around the method.

`run_pfcdr(config, workdir)` is the library entry point of the experiment scripts.
The method itself (prototypes -> bridge -> K -> top-k -> Eq. 14) is
``pfcdr_jax.pfcdr.method``; every other method a run reports is a registry entry
(``baselines.registry``). This module adds what a run needs around them: the split,
the pretrained scorers, a stage cache keyed by the data hash and the sub-configs each
stage reads (``config.content``), a ``metrics.jsonl`` line per stage, and the
``results.json`` / ``predictions-test.npz`` / ``split_manifest.json`` outputs. The parts
live in ``run_inputs`` (the split), ``pretraining`` (the scorers), ``cache_keys``,
``stages`` (each stage, recorded) and ``results``; this module runs them in order and
publishes the outputs.

Selection protocol: the learning rate and epoch of each pretraining are chosen on a
held-out slice of that domain's training ratings; K of the top-k step and every
baseline's grid on the validation overlap users (pseudo-cold users whose target
ratings were removed from training); the test (cold-start) users are touched only
once, at the end, to report MAE/RMSE.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.infra import locks
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.baselines import context as context_lib
from pfcdr_jax.baselines import selection
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.harness.cache_keys import stage_cache
from pfcdr_jax.harness.results import _read_stage_meta
from pfcdr_jax.harness.results import _results
from pfcdr_jax.harness.run_inputs import RunInputs
from pfcdr_jax.harness.stages import Recorder
from pfcdr_jax.harness.stages import _gate
from pfcdr_jax.harness.stages import prepare
from pfcdr_jax.harness.stages import run_baseline
from pfcdr_jax.harness.stages import run_prototypes

log = logging.getLogger(__name__)


# --- the run ------------------------------------------------------------------------------

# What a finished run leaves in its workdir; results.json (the "finished" mark that
# cells.is_finished reads with config.json) is published last.
OUTPUTS = ("config.json", "metrics.jsonl", "split_manifest.json", "predictions-test.npz",
           "results.json")


def _start_staging(cfg: PFCDRConfig, workdir: Path, suffix: str = "") -> Recorder:
  """A fresh ``<workdir>/.staging<suffix>`` with config.json (the caller holds the lock)."""
  staging = workdir / f".staging{suffix}"
  shutil.rmtree(staging, ignore_errors=True)   # a killed run's leftovers
  staging.mkdir(parents=True)
  cache_lib.atomic_write_text(staging / "config.json",
                              json.dumps(config_lib.to_dict(cfg), indent=2))
  return Recorder(staging)


def _publish(staging: Path, workdir: Path) -> None:
  """Moves a finished run's outputs from `staging` into `workdir`, results.json last.

  The old results.json goes first, so a kill in between leaves an unfinished workdir
  (rerun), never a new config.json beside an old results.json.
  """
  (workdir / "results.json").unlink(missing_ok=True)
  for name in OUTPUTS:
    if (staging / name).exists():
      os.replace(staging / name, workdir / name)
    else:
      (workdir / name).unlink(missing_ok=True)
  shutil.rmtree(staging, ignore_errors=True)


def run_pfcdr(cfg: PFCDRConfig, workdir: str | Path) -> dict[str, Any]:
  """Runs PFCDR and ``cfg.baselines.names`` on one task / beta / seed / base model.

  Writes ``config.json``, ``metrics.jsonl``, ``split_manifest.json``,
  ``predictions-test.npz`` and, last, ``results.json`` in ``workdir``. The run works in
  ``<workdir>/.staging`` and replaces the previous outputs only when it succeeds (a
  failed or killed rerun leaves them as they were); ``<workdir>/.lock`` makes a second
  run on the same workdir wait. The default stage cache stays ``<workdir>/cache``.

  Returns:
    The results dict written to results.json.
  """
  workdir = Path(workdir)
  config_lib.validate(cfg)
  cfg = _for_this_process(cfg)
  if cfg.cache.enabled and cfg.cache.dir is None:
    cfg = config_lib.override(cfg, {"cache.dir": str(workdir / "cache")})
  workdir.mkdir(parents=True, exist_ok=True)
  suffix = "" if jax.process_index() == 0 else f"-p{jax.process_index()}"
  with locks.file_lock(workdir / f".lock{suffix}", what=f"workdir {workdir}"):
    rec = _start_staging(cfg, workdir, suffix)
    try:
      results = _run_staged(cfg, rec)
    except BaseException:
      shutil.rmtree(rec.workdir, ignore_errors=True)   # nothing half-written stays
      raise
    if suffix:   # every process computed the same results; process 0 writes them
      shutil.rmtree(rec.workdir, ignore_errors=True)
    else:
      _publish(rec.workdir, workdir)
  return results


def _for_this_process(cfg: PFCDRConfig) -> PFCDRConfig:
  """With several JAX processes (``jax.distributed``), the stage cache is off.

  Every process must take the same path through the sharded kernels (their
  collectives wait for all processes); a cache hit in one process and a miss in
  another would leave the others waiting, so multi-process runs recompute every stage.
  """
  if jax.process_count() > 1 and cfg.cache.enabled:
    log.warning("%d JAX processes: the stage cache is off for this run (each stage is "
                "recomputed on every process; process 0 writes the outputs)",
                jax.process_count())
    return config_lib.override(cfg, {"cache.enabled": False})
  return cfg


def floor_val_preds(run: RunInputs) -> dict[str, np.ndarray]:
  """Validation predictions of GlobalMean and ItemMean (the floors of the sanity gate)."""
  ctx = context_lib.BaselineContext(
      data=run.data, scorer=run.scorer, params_s=run.params_s, params_t=run.params_t,
      key=run.keys.baselines, seed=0, emcdr_key=run.keys.emcdr)
  return {name: selection.fit_predict_val(name, ctx)[1] for name in sanity_lib.FLOORS}


def pfcdr_val_pred(run: RunInputs, fit: method_lib.PFCDRFit, cfg: PFCDRConfig) -> np.ndarray:
  """PFCDR's predictions of the validation ratings at its K."""
  val = run.data.target_val
  if val.rating.size == 0:
    return np.zeros((0,), np.float32)
  W_t, V_t = method_lib.representations(run.scorer, run.params_t, run.data.target_train.n_users)
  return method_lib.predict_cold(fit.transferred, W_t, method_lib.candidates(run.data, cfg.topk),
                                 V_t, val, method_lib.cold_users(run.data), fit.k, cfg.topk,
                                 cfg.inversion.target_rating)


def _run_staged(cfg: PFCDRConfig, rec: Recorder) -> dict[str, Any]:
  """The body of :func:`run_pfcdr`, writing into ``rec.workdir`` (the staging folder)."""
  workdir = rec.workdir
  run = prepare(cfg, workdir, rec)
  floors = floor_val_preds(run)
  val_rating = run.data.target_val.rating
  protos = run_prototypes(run, cfg, workdir, rec)
  with rec.stage("pfcdr") as r:
    fit = method_lib.fit_predict(run.scorer, run.params_s, run.params_t, run.data, run.keys,
                                 inversion=cfg.inversion, bridge=cfg.bridge, topk=cfg.topk,
                                 protos=protos)
    r.update({"bridge_train_mse": fit.bridge_train_mse, "k": fit.k,
              "val_mae_by_k": {str(k): v for k, v in fit.val_mae_by_k.items()}})
  pretrain_meta = _read_stage_meta(workdir, sanity_lib.PRETRAIN_STAGES)
  sanity = {name: sanity_lib.pretrain_record(meta) for name, meta in pretrain_meta.items()}
  sanity["PFCDR"] = sanity_lib.method_record("PFCDR", pfcdr_val_pred(run, fit, cfg),
                                             val_rating, floors)
  _gate(sanity, ("PFCDR",), cfg)
  predictions = {"PFCDR": fit.pred}
  chosen: dict[str, Any] = {}
  cache = stage_cache(cfg, workdir)
  for name in cfg.baselines.names:
    with rec.stage(f"baseline_{name}") as r:
      predictions[name], chosen[name], val_pred = run_baseline(run, cfg, cache, name, r)
    sanity[name] = sanity_lib.method_record(name, val_pred, val_rating, floors)
    _gate(sanity, (name,), cfg)
  test = run.data.target_test
  with rec.stage("evaluate") as r:
    methods = {name: {"mae": float(metrics_lib.mae(p, test.rating)),
                      "rmse": float(metrics_lib.rmse(p, test.rating))}
               for name, p in predictions.items()}
    r["methods"] = methods
  # Per-rating predictions, for paired significance tests across methods.
  cache_lib.StageCache(workdir).save("predictions", "test", {
      "user": test.user, "item": test.item, "rating": test.rating,
      **{f"pred_{name}": np.asarray(p, np.float32) for name, p in predictions.items()}})
  results = _results(cfg, run, fit, methods, chosen, rec, workdir)
  results["sanity"] = sanity
  results["data_profile"] = run.profile
  cache_lib.atomic_write_text(workdir / "results.json", json.dumps(results, indent=2))
  return results
