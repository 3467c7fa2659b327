"""The stage cache of a run and each stage's key: the data hash and the sub-configs it reads.

Two runs share a cached stage exactly when their keys are equal, so a key holds what
its stage's result depends on (``config.content`` of the sub-configs the stage reads,
the data hash, the seed) and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection
from pfcdr_jax.config import PFCDRConfig


def pretrain_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  return cache_lib.stable_hash(data_hash, "pretrain", name, config_lib.content(cfg.pretrain),
                               cfg.seed)


def prototype_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  return cache_lib.stable_hash(data_hash, "prototypes", name,
                               config_lib.content(cfg.pretrain),
                               config_lib.content(cfg.inversion), cfg.seed)


def baseline_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  base, options = registry.parse_name(name)
  reads = {r: config_lib.content(getattr(cfg, r)) for r in registry.ENTRIES[base].reads}
  parts = (data_hash, "baseline", name, selection.selection_grid(name),
           registry.CACHE_VERSION, config_lib.content(cfg.pretrain), cfg.seed, reads)
  version = registry.method_version(base, options)
  return cache_lib.stable_hash(*parts, ("method_version", version)) if version else \
      cache_lib.stable_hash(*parts)


def stage_cache(cfg: PFCDRConfig, workdir: str | Path) -> cache_lib.StageCache:
  if not cfg.cache.enabled:
    return cache_lib.StageCache(None)
  return cache_lib.StageCache(Path(cfg.cache.dir) if cfg.cache.dir else Path(workdir) / "cache")
