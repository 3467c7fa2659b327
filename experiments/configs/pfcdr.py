"""Presets of the PFCDR scripts (per task, and --quick), and how flags meet them.

Each preset is a dict of dotted ``config.PFCDRConfig`` paths. :func:`get_config` builds
a script's config from the library defaults, then the flags' default values, then these
presets, then the flags given on the command line (``experiments/cli.py``), so a flag
that is set always wins and a preset beats a flag's default.
"""

import pathlib

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method
from pfcdr_jax.baselines import registry

# Script flag -> the config path it sets (list flags are tuples of floats).
FLAG_PATHS = {
    "task": "data.task", "data_dir": "data.data_dir", "scale": "data.scale",
    "like": "data.like", "source_file": "data.source_file", "target_file": "data.target_file",
    "rating_range": "data.rating_range", "thin": "data.thin", "thin_tail": "data.thin_tail",
    "signal": "data.signal", "bias_std": "data.bias_std", "tail": "data.tail",
    "density": "data.density", "mean_rating": "data.mean_rating",
    "beta": "split.beta", "seed": "seed", "base_model": "pretrain.base_model",
    "epochs": "pretrain.epochs", "batch_size": "pretrain.batch_size", "lrs": "pretrain.lrs",
    "dnn_tower": "pretrain.dnn_tower", "optimizer": "pretrain.optimizer",
    "patience": "pretrain.patience", "shuffle": "pretrain.shuffle",
    "early_stop": "pretrain.early_stop", "offsets": "pretrain.offsets",
    "grid_extend": "pretrain.grid_extend", "shard_tables": "pretrain.shard_tables",
    "strict": "strict",
    "misalign": "data.misalign",
    "target_rating": "inversion.target_rating", "inversion_steps": "inversion.steps",
    "inversion_method": "inversion.method", "inversion_loss": "inversion.loss",
    "eps": "inversion.eps", "b0_draw": "inversion.b0_draw", "bridge_epochs": "bridge.epochs",
    "topk": "topk.k",
    "topk_grid": "topk.grid", "include_untrained": "topk.include_untrained",
    "cache_dir": "cache.dir", "no_cache": "cache.enabled",
}


# Per-task pretraining (the Amazon tasks are 10-50x larger than ML-1M Comedy->Drama).
# Every preset trains with Adam's dense trajectory; --optimizer=auto (the default) computes
# it row-sparsely (deferred Adam) where the tables are large, as on the Amazon-size tasks
# (BUILD_NOTES §2, pretraining; --optimizer=lazy_adam, a different optimiser, is "Not
# adopted").
TASK_PRESETS = {
    "comedy2drama": {"pretrain.epochs": 100, "pretrain.batch_size": 1024},
    "action2romance": {"pretrain.epochs": 100, "pretrain.batch_size": 1024},
    "ml100k_comedy2drama": {"pretrain.epochs": 100, "pretrain.batch_size": 256},
    "book2movie": {"pretrain.epochs": 20, "pretrain.batch_size": 4096},
    "book2music": {"pretrain.epochs": 20, "pretrain.batch_size": 4096},
    "music2movie": {"pretrain.epochs": 20, "pretrain.batch_size": 4096},
    "custom": {"pretrain.epochs": 30, "pretrain.batch_size": 1024},
    "synthetic": {"pretrain.epochs": 20, "pretrain.batch_size": 4096},
}

# --quick (CI smoke runs of the sweeps): short pretraining, two learning rates, a short
# bridge; the baselines run registry.quick_names (few epochs, one grid point each).
QUICK = {"pretrain.epochs": 10, "pretrain.lrs": (0.005, 0.01), "bridge.epochs": 50}

# The tasks of `table1.py --all`: the paper's three Amazon tasks and comedy2drama.
ALL_TASKS = ("book2movie", "book2music", "music2movie", "comedy2drama")

# The planned contrasts of the tables (table1.py, figure2.py; --contrasts overrides it):
# the method pairs tested over seeds, declared before the runs (contrasts.load_contrasts).
PLANNED_CONTRASTS = pathlib.Path(__file__).resolve().with_name("planned_contrasts.json")


def preset(task: str, quick: bool = False) -> dict:
  """The dotted-path overrides of `task` (and of --quick)."""
  out = dict(TASK_PRESETS[task])
  if quick:
    out.update(QUICK)
  return out


def get_config(task: str, *, quick: bool = False, defaults: dict | None = None,
               given: dict | None = None, baselines: tuple[str, ...] = (),
               overrides: dict | None = None) -> config_lib.PFCDRConfig:
  """A run's config.

  Args:
    task: the task; quick: apply :data:`QUICK` and the registry's quick options.
    defaults, given: dotted paths of the flags left at their defaults / given.
    baselines: registry names run next to ``config.MAIN_BASELINES`` (checked here,
      before any work).
    overrides: dotted paths applied last (a sweep's or a study's fixed settings).
  """
  updates = {**(defaults or {}), **preset(task, quick), **(given or {}), "data.task": task}
  for name in baselines:
    registry.parse_name(name)
  names = config_lib.MAIN_BASELINES + tuple(baselines)
  updates["baselines.names"] = registry.quick_names(names) if quick else names
  updates.update(overrides or {})
  cfg = config_lib.override(config_lib.PFCDRConfig(), updates)
  if cfg.topk.k != "auto":   # checked before any work, not after pretraining
    try:
      method.parse_k(cfg.topk.k)
    except ValueError:
      raise ValueError(f"--topk={cfg.topk.k}: expected 'auto', a positive count or a "
                       "fraction") from None
  return config_lib.validate(cfg)
