"""pfcdr_jax: PFCDR (WWW'25) and CopyAttack in JAX.

The public API is re-exported here (``__all__``)::

  from pfcdr_jax import invert_users, select_neighbors, fit_predict, run_pfcdr

Packages, by what they hold:
  pfcdr_jax.pfcdr       -- the paper's kernels and method: inversion (Eq. 5, 9-11), bridge
                           (Eq. 12), top-k matching (Eq. 13-14), sharding, the composed method
  pfcdr_jax.plus        -- PFCDR+ (ours): bias floor + prototype bridge + neighbours
  pfcdr_jax.baselines   -- every other method of Table 1, one registry
  pfcdr_jax.privacy     -- what transferred vectors reveal: mechanisms, attacks, PFCDR-DP
  pfcdr_jax.copyattack  -- CopyAttack (Fan et al.): tree, policy, black box, Table 2 runner
  pfcdr_jax.models      -- MF / GMF / YouTube-DNN scorers, their training loop, MAE / RMSE
  pfcdr_jax.data        -- download, parse, split (Amazon 5-core, MovieLens, custom, synthetic)
  pfcdr_jax.harness     -- experiments: the end-to-end run, stage cache, resumable records,
                           sanity gate, seed sweeps, significance, tables and plots
  pfcdr_jax.studies     -- Figure 3 (K, r sweeps), Figure 4 (t-SNE), Table 3 (cost)
  pfcdr_jax.infra       -- plumbing: locks, progress, XLA cache, timers, chunking, hashing
  pfcdr_jax.config      -- nested frozen configs and what each stage's cache key reads

Benchmarks live outside the package, in ``benchmarks/`` next to ``experiments/``.
"""

__version__ = "0.1.0"

from pfcdr_jax.pfcdr.bridge import apply_bridge
from pfcdr_jax.pfcdr.bridge import fit_linear_bridge
from pfcdr_jax.config import BridgeConfig
from pfcdr_jax.config import DataConfig
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.config import PretrainConfig
from pfcdr_jax.config import SplitConfig
from pfcdr_jax.config import TopKConfig
from pfcdr_jax.pfcdr.inversion import InversionConfig
from pfcdr_jax.pfcdr.inversion import invert_user
from pfcdr_jax.pfcdr.inversion import invert_users
from pfcdr_jax.pfcdr.method import fit_bridge
from pfcdr_jax.pfcdr.method import fit_predict
from pfcdr_jax.pfcdr.method import predict_cold
from pfcdr_jax.pfcdr.method import prototypes
from pfcdr_jax.pfcdr.method import select_k
from pfcdr_jax.pfcdr.method import StageKeys
from pfcdr_jax.plus.method import fit_predict_plus
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.models.scorers import get_scorer
from pfcdr_jax.models.train import train_scorer
from pfcdr_jax.harness.pipeline import run_pfcdr
from pfcdr_jax.privacy.dp_prototypes import DPPrototypeConfig
from pfcdr_jax.pfcdr.topk import neighbor_mean
from pfcdr_jax.pfcdr.topk import predict_from_neighbors
from pfcdr_jax.pfcdr.topk import select_neighbors

from pfcdr_jax.infra import aliases as _aliases

# Import paths before the package was split by part (one release, DeprecationWarning).
# A module that was split maps to its parts.
_aliases.install({f"pfcdr_jax.{old}": tuple(f"pfcdr_jax.{n}" for n in new.split())
                  for old, new in {
    "inversion": "pfcdr.inversion pfcdr.inversion_objective pfcdr.inversion_closed_form",
    "bridge": "pfcdr.bridge",
    "topk": "pfcdr.topk pfcdr.topk_distances pfcdr.topk_threshold pfcdr.topk_partition",
    "method": "pfcdr.method", "sharding": "pfcdr.sharding", "method_plus": "plus",
    "metrics": "models.metrics",
    "pipeline": "harness.pipeline harness.run_inputs harness.cache_keys harness.pretraining "
                "harness.stages harness.results",
    "comparison": "harness.comparison harness.cells harness.significance harness.summary "
                  "harness.tables harness.plots",
    "cache": "harness.cache", "sanity": "harness.sanity", "studies.records": "harness.records",
    "locks": "infra.locks", "progress": "infra.progress", "xla_cache": "infra.xla_cache",
    "phase_timer": "infra.phase_timer", "chunking": "infra.chunking",
    "hash_random": "infra.hash_random", "checks": "infra.checks"}.items()})

__all__ = [
    "__version__",
    "apply_bridge", "fit_linear_bridge",
    "BridgeConfig", "DataConfig", "PFCDRConfig", "PretrainConfig", "SplitConfig", "TopKConfig",
    "InversionConfig", "invert_user", "invert_users",
    "fit_bridge", "fit_predict", "predict_cold", "prototypes", "select_k", "StageKeys",
    "fit_predict_plus", "PlusConfig",
    "get_scorer", "train_scorer",
    "run_pfcdr",
    "DPPrototypeConfig", "run_privacy",
    "neighbor_mean", "predict_from_neighbors", "select_neighbors",
    "CopyAttackConfig", "run_copyattack",
]

# Imported on first use (PEP 562): the privacy study pulls in scikit-learn and the
# CopyAttack runner its own stack, about a second of start-up the main job never needs.
_LAZY = {"run_privacy": "pfcdr_jax.privacy.study",
         "CopyAttackConfig": "pfcdr_jax.copyattack.config",
         "run_copyattack": "pfcdr_jax.copyattack.pipeline"}


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'pfcdr_jax' has no attribute {name!r}")
