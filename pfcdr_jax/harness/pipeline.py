"""The end-to-end PFCDR experiment: load, cache, record and write around the method.

`run_pfcdr(config, workdir)` is the library entry point of the experiment scripts.
The method itself (prototypes -> bridge -> K -> top-k -> Eq. 14) is
``pfcdr_jax.pfcdr.method``; every other method a run reports is a registry entry
(``baselines.registry``). This module adds what a run needs around them: the split,
the pretrained scorers, a stage cache keyed by the data hash and the sub-configs each
stage reads (``config.content``), a ``metrics.jsonl`` line per stage, and the
``results.json`` / ``predictions-test.npz`` / ``split_manifest.json`` outputs.

Selection protocol: the learning rate and epoch of each pretraining are chosen on a
held-out slice of that domain's training ratings; K of the top-k step and every
baseline's grid on the validation overlap users (pseudo-cold users whose target
ratings were removed from training); the test (cold-start) users are touched only
once, at the end, to report MAE/RMSE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.infra import locks
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.baselines import context as context_lib
from pfcdr_jax.baselines import registry
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.data import profile as profile_lib
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.data import tasks as tasks_lib
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.models import train as train_lib

log = logging.getLogger(__name__)


class Recorder:
  """Appends one JSON line per finished stage to ``metrics.jsonl`` and times it.

  ``Recorder(None)`` times the stages and writes nothing (studies that rebuild a run).
  """

  def __init__(self, workdir: Path | None):
    self.workdir = None if workdir is None else Path(workdir)
    self.path = None if workdir is None else self.workdir / "metrics.jsonl"
    self.timings: dict[str, float] = {}

  @contextlib.contextmanager
  def stage(self, name: str) -> Iterator[dict[str, Any]]:
    """``with rec.stage("bridge") as r: r["train_mse"] = ...``; written on success."""
    log.debug("stage %s ...", name)
    t0 = time.perf_counter()
    record: dict[str, Any] = {}
    yield record
    dt = time.perf_counter() - t0
    self.timings[name] = round(dt, 3)
    if self.path is None:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(cache_lib.jsonable({"stage": name, "seconds": round(dt, 3),
                                             **record})) + "\n")
    log.info("%-22s %6.1fs%s", name, dt, "  (cached)" if record.get("cached") else "")


class RunInputs(NamedTuple):
  """What the method and the baselines start from: the split and pretrained models."""
  data: splits_lib.CDRData
  info: dict[str, Any]
  data_hash: str
  scorer: Any
  params_s: Any
  params_t: Any
  keys: method_lib.StageKeys
  profile: dict | None = None   # data.profile.data_profile of the split


# --- data -----------------------------------------------------------------------------

def load_frames(cfg: PFCDRConfig):
  """(source frame, target frame, info) of the run's task (``tasks.load_task``)."""
  d = cfg.data
  return tasks_lib.load_task(
      d.task, data_dir=d.data_dir, seed=cfg.seed, scale=d.scale, like=d.like,
      source_file=d.source_file, target_file=d.target_file, rating_range=d.rating_range,
      signal=d.signal, bias_std=d.bias_std, tail=d.tail, density=d.density,
      mean_rating=d.mean_rating, thin=d.thin, thin_tail=d.thin_tail, misalign=d.misalign)


def frames_key(cfg: PFCDRConfig) -> str:
  """Runs with equal keys load the same frames (the seed matters for seeded tasks)."""
  seeded = tasks_lib.depends_on_seed(cfg.data.task, cfg.data.thin, cfg.data.misalign)
  return cache_lib.stable_hash(config_lib.content(cfg.data), cfg.seed if seeded else None)


def load_split(cfg: PFCDRConfig, frames=None) -> tuple[splits_lib.CDRData, dict, str]:
  """(CDRData, task info, data hash); ``frames``: a :func:`load_frames` result."""
  src_df, tgt_df, info = frames if frames is not None else load_frames(cfg)
  data = splits_lib.make_cdr_split(src_df, tgt_df, beta=cfg.split.beta, seed=cfg.seed,
                                   val_fraction=cfg.split.val_fraction, name=cfg.data.task)
  return data, info, cache_lib.stable_hash(data.manifest)


def check_split(cfg: PFCDRConfig, data: splits_lib.CDRData) -> None:
  """Refuses, before any training, a split too small for the run's protocol.

  Raises:
    DataError: no test user, fewer than 2 bridge users, or no validation rating while
      K or a baseline's setting is to be chosen on validation users.
  """
  n_overlap, beta = data.n_overlap, cfg.split.beta
  where = f"task {cfg.data.task}"
  if len(data.test_users) == 0:
    raise DataError(where, f"beta={beta:g} of {n_overlap} overlapping users gives no "
                    "cold-start test user; expected more overlapping users or a larger beta")
  if len(data.train_users) < 2:
    raise DataError(where, f"{len(data.train_users)} overlapping user(s) left to train the "
                    f"bridge ({n_overlap} overlap, beta={beta:g}); expected at least 2")
  needs_val = ([f"--topk={cfg.topk.k}"] if cfg.topk.k == "auto" and len(cfg.topk.grid) > 1
               else []) + [n for n in cfg.baselines.names
                           if len(registry.selection_grid(n)) > 1]
  if needs_val and data.target_val.rating.size == 0:
    raise DataError(where, f"no validation ratings ({len(data.val_users)} validation users of "
                    f"{n_overlap} overlap, val_fraction={cfg.split.val_fraction:g}), but "
                    f"{', '.join(needs_val)} choose settings on them; expected more "
                    "overlapping users, a larger val_fraction, or a fixed --topk")


def load_splits(cfgs: Sequence[PFCDRConfig]) -> list[tuple[splits_lib.CDRData, dict, str]]:
  """:func:`load_split` of each run; a real task's files are parsed once, not per seed."""
  frames: dict[str, Any] = {}
  out = []
  for cfg in cfgs:
    key = frames_key(cfg)
    if key not in frames:
      frames[key] = load_frames(cfg)
    out.append(load_split(cfg, frames[key]))
  return out


# --- cache keys: the data hash and the sub-configs each stage reads ---------------------

def pretrain_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  return cache_lib.stable_hash(data_hash, "pretrain", name, config_lib.content(cfg.pretrain),
                               cfg.seed)


def prototype_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  return cache_lib.stable_hash(data_hash, "prototypes", name,
                               config_lib.content(cfg.pretrain),
                               config_lib.content(cfg.inversion), cfg.seed)


def baseline_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  base, _ = registry.parse_name(name)
  reads = {r: config_lib.content(getattr(cfg, r)) for r in registry.ENTRIES[base].reads}
  return cache_lib.stable_hash(data_hash, "baseline", name, registry.selection_grid(name),
                               registry.CACHE_VERSION, config_lib.content(cfg.pretrain),
                               cfg.seed, reads)


def stage_cache(cfg: PFCDRConfig, workdir: str | Path) -> cache_lib.StageCache:
  if not cfg.cache.enabled:
    return cache_lib.StageCache(None)
  return cache_lib.StageCache(Path(cfg.cache.dir) if cfg.cache.dir else Path(workdir) / "cache")


# --- stages ---------------------------------------------------------------------------

# What a pretraining entry's metadata must hold (name -> accepted types).
PRETRAIN_META = {"lr": (float, int), "epoch": (int,), "heldout_mse": (float, int),
                 "mean_mse": (float, int), "epochs_run": (int,), "cap_reached": (bool,),
                 "lrs_tried": (list, tuple), "lr_at_edge": (str,)}


def _pretrain_entry(result: train_lib.TrainResult) -> tuple[dict[str, np.ndarray], dict]:
  """A training result as a cache entry: (parameter leaves, selection meta)."""
  meta = {"lr": float(result.lr), "epoch": int(result.epoch),
          "heldout_mse": float(result.heldout_mse), "mean_mse": float(result.mean_mse),
          "epochs_run": int(result.epochs_run), "cap_reached": bool(result.cap_reached),
          "lrs_tried": [float(x) for x in result.lrs_tried], "lr_at_edge": result.lr_at_edge}
  leaves = jax.tree_util.tree_leaves(result.params)
  return {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}, meta


def _save_pretrain(cache, name: str, cache_key: str, result: train_lib.TrainResult,
                   extra_meta: dict[str, Any]) -> None:
  arrays, meta = _pretrain_entry(result)
  cache.save(f"pretrain-{name}", cache_key, arrays, {**meta, **extra_meta})


def pretrain_meta_problem(meta: dict, tcfg: train_lib.TrainConfig) -> str | None:
  """Why a pretraining entry's metadata cannot be what training wrote (None: it can).

  Checks the schema (:data:`PRETRAIN_META`) and the values against the run's training
  configuration: the selected lr among the lrs tried, which contain the grid; the epoch
  within 1..epochs_run <= the cap; finite, non-negative MSEs.
  """
  for k, types in PRETRAIN_META.items():
    v = meta.get(k)
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
      return f"metadata field {k!r} = {v!r} is not a {'/'.join(t.__name__ for t in types)}"
  tried = [float(x) for x in meta["lrs_tried"]]
  if not {float(x) for x in tcfg.lrs} <= set(tried) or float(meta["lr"]) not in tried:
    return f"lr {meta['lr']!r} / lrs_tried {tried} do not match the grid {list(tcfg.lrs)}"
  if not 1 <= meta["epochs_run"] <= tcfg.epochs or not 1 <= meta["epoch"] <= meta["epochs_run"]:
    return f"epoch {meta['epoch']} of {meta['epochs_run']} run is outside 1..{tcfg.epochs}"
  for k in ("heldout_mse", "mean_mse"):
    if not (np.isfinite(meta[k]) and meta[k] >= 0):
      return f"{k} = {meta[k]!r} is not a finite MSE >= 0"
  return None


def pretrain(scorer, domain, cfg: PFCDRConfig, key, cache, cache_key: str, name: str,
             record: dict) -> Any:
  """Trains (or loads) one domain's scorer; returns its params pytree.

  A cached entry is checked like a fresh result before it is served: parameters of this
  run's shapes (e.g. not another ``emb_dim``), all finite; metadata of the right schema
  and values (:func:`pretrain_meta_problem`); and its ``heldout_mse`` equal (to 1e-4
  relative) to the held-out MSE of its parameters, recomputed. Otherwise it is moved
  aside and retrained, with a warning saying why.
  """
  tcfg = config_lib.train_config(cfg)
  template = jax.eval_shape(lambda k: scorer.init(k, domain.n_users, domain.n_items,
                                                  cfg.pretrain.emb_dim), key)
  leaves_t, treedef = jax.tree_util.tree_flatten(template)
  as_params = lambda arrays: jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(arrays[f"leaf{i}"]) for i in range(len(leaves_t))])

  def valid(arrays, meta):
    if not all(arrays.get(f"leaf{i}") is not None and arrays[f"leaf{i}"].shape == t.shape
               and np.all(np.isfinite(arrays[f"leaf{i}"])) for i, t in enumerate(leaves_t)):
      return False
    why = pretrain_meta_problem(meta, tcfg)
    if why is None:
      mse = train_lib.heldout_mse_of(scorer, as_params(arrays), domain, tcfg)
      if not np.isclose(mse, meta["heldout_mse"], rtol=1e-4, atol=1e-6):
        why = f"heldout_mse {meta['heldout_mse']!r} but its parameters score {mse:.6g}"
    if why is not None:
      log.warning("cache entry pretrain-%s: %s; retraining", name, why)
    return why is None

  def compute():
    return _pretrain_entry(train_lib.train_scorer(scorer, domain, tcfg, key))

  arrays, _ = cache_lib.cached_stage(cache, f"pretrain-{name}", cache_key, compute, valid,
                                     record)
  return as_params(arrays)


def scorer_of(cfg: PFCDRConfig) -> scorers_lib.Scorer:
  """The run's base scorer (model, DNN tower and rating offsets of ``cfg.pretrain``)."""
  p = cfg.pretrain
  return scorers_lib.get_scorer(p.base_model, dnn_tower=p.dnn_tower, offsets=p.offsets)


def _prototype_stage(run: RunInputs, cfg: PFCDRConfig, cache, name: str,
                     record: dict) -> np.ndarray:
  """One domain's prototypes (``method.prototypes``), cached."""
  if name == "source":
    params, n, users = (run.params_s, run.data.source.n_users,
                        method_lib.source_prototype_users(run.data))
    key = run.keys.inversion_source
  else:
    params, n, users = (run.params_t, run.data.target_train.n_users,
                        method_lib.bridge_users(run.data))
    key = run.keys.inversion_target
  d = scorers_lib.repr_dim(cfg.pretrain.emb_dim, cfg.pretrain.offsets)

  def compute():
    out = method_lib.prototypes(run.scorer, params, n, users, key, cfg.inversion,
                                progress=name)
    return ({"prototypes": np.asarray(out.prototypes)},
            {"n_users": int(len(users)), "mean_final_loss": float(np.mean(out.loss)),
             "method": out.method})

  def valid(arrays, meta):
    return (arrays.get("prototypes") is not None
            and arrays["prototypes"].shape == (len(users), d)
            and meta.get("n_users") == len(users) and isinstance(meta.get("method"), str))

  arrays, _ = cache_lib.cached_stage(cache, f"prototypes-{name}",
                                     prototype_cache_key(cfg, run.data_hash, name), compute,
                                     valid, record)
  return arrays["prototypes"]


def prepare(cfg: PFCDRConfig, workdir: str | Path, rec: Recorder | None = None,
            frames=None) -> RunInputs:
  """The split and both pretrained scorers of a run (cached), as ``run_pfcdr`` has them.

  Args:
    cfg: the run; workdir: where the default cache lives.
    rec: records the stages and says where the split manifest goes (None: nothing is
      written but the cache).
    frames: a :func:`load_frames` result to reuse.
  """
  rec = rec or Recorder(None)
  cache = stage_cache(cfg, workdir)
  keys = method_lib.StageKeys.from_seed(cfg.seed)
  with rec.stage("data") as r:
    data, info, data_hash = load_split(cfg, frames)
    check_split(cfg, data)
    if rec.workdir is not None:
      splits_lib.save_manifest(data, rec.workdir / "split_manifest.json")
    r.update({"data_hash": data_hash, "synthetic": bool(info.get("synthetic", False))})
  log.info("data: %d overlap users, %d test users (%d ratings), %d validation users",
           data.n_overlap, len(data.test_users), data.target_test.rating.size,
           len(data.val_users))
  profile = profile_lib.data_profile(data)
  log.info("data profile:\n%s", profile_lib.format_profile(profile))
  for line in profile_lib.profile_warnings(profile):
    log.warning("data profile: %s", line)
  scorer = scorer_of(cfg)
  params = {}
  for name, domain, key in (("source", data.source, keys.pretrain_source),
                            ("target", data.target_train, keys.pretrain_target)):
    with rec.stage(f"pretrain_{name}") as r:
      params[name] = pretrain(scorer, domain, cfg, key, cache,
                              pretrain_cache_key(cfg, data_hash, name), name, r)
    stage = f"pretrain_{name}"
    _gate({stage: sanity_lib.pretrain_record(r)}, (stage,), cfg, {stage: r})
  return RunInputs(data, info, data_hash, scorer, params["source"], params["target"], keys,
                   profile)


def run_prototypes(run: RunInputs, cfg: PFCDRConfig, workdir: str | Path,
                   rec: Recorder | None = None) -> method_lib.Prototypes:
  """Both domains' prototypes of a prepared run (cached)."""
  rec = rec or Recorder(None)
  cache = stage_cache(cfg, workdir)
  out = {}
  for name in ("source", "target"):
    with rec.stage(f"inversion_{name}") as r:
      out[name] = _prototype_stage(run, cfg, cache, name, r)
  return method_lib.Prototypes(out["source"], out["target"])


def run_baseline(run: RunInputs, cfg: PFCDRConfig, cache, name: str,
                 record: dict) -> tuple[np.ndarray, dict, np.ndarray]:
  """One registry method's test predictions, chosen settings and validation predictions
  (cached)."""
  ctx = context_lib.BaselineContext(
      data=run.data, scorer=run.scorer, params_s=run.params_s, params_t=run.params_t,
      key=run.keys.baselines, seed=cfg.seed, emcdr_key=run.keys.emcdr, bridge=cfg.bridge,
      inversion=cfg.inversion, topk=cfg.topk)
  n_test, n_val = run.data.target_test.rating.size, run.data.target_val.rating.size

  def compute():
    pred, val_pred, chosen = registry.fit_predict_val(name, ctx)
    return {"pred": pred, "val_pred": val_pred}, chosen

  arrays, chosen = cache_lib.cached_stage(
      cache, "baseline", baseline_cache_key(cfg, run.data_hash, name), compute,
      lambda a, meta: (a.get("pred") is not None and a["pred"].shape == (n_test,)
                       and a.get("val_pred") is not None and a["val_pred"].shape == (n_val,)
                       and isinstance(meta.get("grid"), list) and "val_mae" in meta), record)
  record["chosen"] = chosen
  return arrays["pred"], chosen, arrays["val_pred"]


def pretrain_seeds(cfgs: Sequence[PFCDRConfig], workdirs: Sequence[str | Path]
                   ) -> dict[str, list[list[int]]]:
  """Pretrains several runs' domains together, seeds vmapped, where the shapes allow.

  For each run (``cfgs[i]`` with workdir ``workdirs[i]``) this computes what
  :func:`run_pfcdr` would train in its ``pretrain_source`` / ``pretrain_target``
  stages: same split, PRNG keys, configuration and cache key. Runs whose entry is not
  cached are grouped by domain shape (and configuration up to the seed); each group
  of two or more trains as one seed stack (``train.train_scorer_seeds``) and stores
  every seed's parameters in the run's stage cache, where ``run_pfcdr`` then finds
  them. Singletons are left to ``run_pfcdr``. A no-op for runs without a cache.

  Which stacks form: the source domain is the same for every seed of a real task (the
  split only chooses which overlapping users are cold), so all seeds stack; the target
  training domain loses each seed's own cold users' ratings, so its size differs per
  seed and it almost never stacks (it trains per seed, as before).

  Returns:
    ``{"source": groups, "target": groups}``: the seeds of each stack trained here.
  """
  if len(cfgs) != len(workdirs):
    raise ValueError(f"{len(cfgs)} configs but {len(workdirs)} workdirs")
  pending = _pending_pretrainings(cfgs, workdirs)
  stacked: dict[str, list[list[int]]] = {"source": [], "target": []}
  for name, groups in pending.items():
    for runs in groups.values():
      if len(runs) < 2:
        continue
      seeds = [cfg.seed for cfg, *_ in runs]
      log.info("pretrain_%s: seeds %s as one vmapped stack", name, seeds)
      t0 = time.perf_counter()
      results = train_lib.train_scorer_seeds(
          scorer_of(runs[0][0]), [r[1] for r in runs],
          [config_lib.train_config(r[0]) for r in runs], [r[2] for r in runs])
      seconds = round(time.perf_counter() - t0, 3)
      for (cfg, _, _, cache, cache_key), result in zip(runs, results):
        _save_pretrain(cache, name, cache_key, result,
                       {"seed_stack": seeds, "seed_stack_seconds": seconds})
      stacked[name].append(seeds)
  return stacked


def _pending_pretrainings(cfgs, workdirs) -> dict[str, dict[tuple, list]]:
  """Uncached pretrainings of the runs, grouped by (domain shape, config but seed)."""
  pending: dict[str, dict[tuple, list]] = {"source": {}, "target": {}}
  runs = [(c, w) for c, w in zip(cfgs, workdirs) if c.cache.enabled]
  for (cfg, workdir), (data, _, data_hash) in zip(runs, load_splits([c for c, _ in runs])):
    cache = stage_cache(cfg, workdir)
    keys = method_lib.StageKeys.from_seed(cfg.seed)
    for name, domain, key in (("source", data.source, keys.pretrain_source),
                              ("target", data.target_train, keys.pretrain_target)):
      cache_key = pretrain_cache_key(cfg, data_hash, name)
      if cache.path(f"pretrain-{name}", cache_key).exists():
        continue
      group = (train_lib.domain_shape(domain), cfg.pretrain.base_model, cfg.pretrain.dnn_tower,
               cfg.pretrain.offsets,
               dataclasses.replace(config_lib.train_config(cfg), seed=0))
      pending[name].setdefault(group, []).append((cfg, domain, key, cache, cache_key))
  return pending


# --- the run ------------------------------------------------------------------------------

# What a finished run leaves in its workdir; results.json (the "finished" mark that
# comparison.is_finished reads with config.json) is published last.
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


def _gate(sanity: dict[str, dict], names: tuple[str, ...], cfg: PFCDRConfig,
          pretrain_meta: dict | None = None) -> None:
  """Warns one line per failed sanity record among ``names`` (an error under
  ``cfg.strict``); ``sanity`` holds the run's records so far (the causes read them)."""
  lines = sanity_lib.failures(sanity, pretrain_meta, only=names)
  for line in lines:
    log.warning("%s", line)
  sanity_lib.enforce(lines, cfg.strict)


def floor_val_preds(run: RunInputs) -> dict[str, np.ndarray]:
  """Validation predictions of GlobalMean and ItemMean (the floors of the sanity gate)."""
  ctx = context_lib.BaselineContext(
      data=run.data, scorer=run.scorer, params_s=run.params_s, params_t=run.params_t,
      key=run.keys.baselines, seed=0, emcdr_key=run.keys.emcdr)
  return {name: registry.fit_predict_val(name, ctx)[1] for name in sanity_lib.FLOORS}


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


def _results(cfg: PFCDRConfig, run: RunInputs, fit: method_lib.PFCDRFit,
             methods: dict, chosen: dict, rec: Recorder, workdir: Path) -> dict[str, Any]:
  data = run.data
  m = data.manifest
  timings = dict(rec.timings)
  timings["total"] = round(sum(rec.timings.values()), 3)
  return {
      "task": cfg.data.task,
      "beta": cfg.split.beta,
      "seed": cfg.seed,
      "base_model": cfg.pretrain.base_model,
      "synthetic": bool(run.info.get("synthetic", False)),
      "misaligned": run.info.get("misaligned"),
      "dataset": {
          "source": _domain_counts(data.source),
          "target": _domain_counts(_concat_domains(data.target_train, data.target_val,
                                                   data.target_test)),
          "overlap": int(data.n_overlap),
          "test_users": int(len(data.test_users)),
          "test_ratings": int(data.target_test.rating.size),
          "val_users": int(len(data.val_users)),
          "bridge_users": int(len(data.train_users)),
          "data_hash": run.data_hash,
      },
      "selected": {"topk": fit.k, "n_valid_target_users": fit.n_candidates,
                   "pretrain": _read_stage_meta(workdir, ("pretrain_source",
                                                          "pretrain_target")),
                   "baselines": chosen},
      "methods": methods,
      "timings_s": timings,
      "manifest": {k: m[k] for k in m if k.endswith("sha256")},
      # Each input file read (role, path, sha256) or the archive it came from.
      "input_files": cache_lib.jsonable(run.info.get("files", [])),
  }


def _domain_counts(d: splits_lib.DomainData) -> dict[str, int]:
  return {"users": int(np.unique(d.user).size), "items": int(np.unique(d.item).size),
          "ratings": int(d.rating.size)}


def _concat_domains(*parts: splits_lib.DomainData) -> splits_lib.DomainData:
  return splits_lib.DomainData(
      user=np.concatenate([p.user for p in parts]), item=np.concatenate([p.item for p in parts]),
      rating=np.concatenate([p.rating for p in parts]), n_users=parts[0].n_users,
      n_items=parts[0].n_items)


def _read_stage_meta(workdir: Path, stages: Sequence[str]) -> dict[str, Any]:
  out = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    rec = json.loads(line)
    if rec["stage"] in stages:
      out[rec["stage"]] = {k: rec[k] for k in (*PRETRAIN_META, "cached", "seed_stack",
                                               "seed_stack_seconds") if k in rec}
  return out


def format_table(results: dict[str, Any]) -> str:
  """Plain-text table of MAE/RMSE per method (printed by the script); a method that
  failed its sanity gate (or whose pretraining did) is marked, and each failure is one
  line under the table."""
  failed = sanity_lib.sanity_failures(results)
  lines = [f"task={results['task']} beta={results['beta']} seed={results['seed']} "
           f"base_model={results['base_model']}" +
           (" [SYNTHETIC DATA]" if results.get("synthetic") else ""),
           f"{'method':<12} {'MAE':>8} {'RMSE':>8}"]
  for name, m in results["methods"].items():
    lines.append(f"{name:<12} {m['mae']:>8.4f} {m['rmse']:>8.4f}"
                 + ("  FAILED SANITY GATE" if name in failed else ""))
  lines += [f"  {line}" for line in sanity_lib.failures(
      results.get("sanity", {}), results.get("selected", {}).get("pretrain"))]
  return "\n".join(lines)


def format_selection(results: dict[str, Any]) -> str:
  """The hyper-parameters chosen on held-out / validation data, one line each."""
  sel = results["selected"]
  lines = [f"K = {sel['topk']} of {sel['n_valid_target_users']} target users "
           "(chosen on the validation users)"]
  for stage, meta in sel.get("pretrain", {}).items():
    lines.append(f"{stage}: lr {meta.get('lr')}, epoch {meta.get('epoch')} "
                 f"(held-out MSE {meta.get('heldout_mse', float('nan')):.4f})"
                 + (", cached" if meta.get("cached") else ""))
  for name, chosen in sel.get("baselines", {}).items():
    free = {k: v for k, v in chosen.items() if k not in ("val_mae", "grid")
            and len({str(g.get(k)) for g in chosen.get("grid", [])}) > 1}
    if free:
      lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in free.items()))
  return "\n".join(lines)
