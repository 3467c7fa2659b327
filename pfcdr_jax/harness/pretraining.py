"""Pretraining of a run's two scorers: the cached stage, the checks on a cached entry,
and seed-stacked pretraining of several runs at once.

The learning rate and epoch of each pretraining are chosen on a held-out slice of that
domain's training ratings (``train.train_scorer``); an entry is cached under
``cache_keys.pretrain_cache_key``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.models import heldout as heldout_lib
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.models import train as train_lib
from pfcdr_jax.harness.cache_keys import pretrain_cache_key
from pfcdr_jax.harness.cache_keys import stage_cache
from pfcdr_jax.harness.run_inputs import load_splits

log = logging.getLogger(__name__)


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
      mse = heldout_lib.heldout_mse_of(scorer, as_params(arrays), domain, tcfg)
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
