"""Nested frozen configuration of a PFCDR run, and what each stage's cache key reads.

One :class:`PFCDRConfig` holds a sub-config per stage::

  PFCDRConfig(seed,
              data=DataConfig(task, data_dir, scale, like, source_file, target_file),
              split=SplitConfig(beta, val_fraction),
              pretrain=PretrainConfig(base_model, emb_dim, lrs, epochs, batch_size, ...),
              inversion=inversion.InversionConfig(target_rating, steps, lr, ...),
              bridge=BridgeConfig(lr, epochs, batch_size),
              topk=TopKConfig(k, grid, chunk, method, include_untrained),
              baselines=BaselinesConfig(names),
              cache=CacheConfig(enabled, dir))

A stage's cache key is the hash of the data it reads and of the sub-configs it reads,
taken whole (:func:`content`), so no list of "fields that matter" is kept by hand.
A field that changes how a result is computed but not what it is (a chunk size, an
exact kernel's algorithm, a path) is marked where it is defined with
``metadata=EXECUTION_ONLY``; :func:`content` leaves those out, so changing one neither
invalidates the cache nor makes a finished Table-1 cell run again.

Overrides use dotted paths (``override(cfg, {"pretrain.epochs": 3})``), as the
experiment scripts map their flags; :func:`to_dict` / :func:`from_dict` round-trip
the nested JSON of ``config.json``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from typing import Any, Mapping

from pfcdr_jax.pfcdr import inversion as inversion_lib
from pfcdr_jax.pfcdr import topk as topk_lib
from pfcdr_jax.models import scorers as scorers_lib

# Field metadata: the field changes how, not what (see module docstring).
EXECUTION_ONLY = {"execution_only": True}
# Field metadata: the field matters only for the YouTube-DNN base model, so content()
# leaves it out for the others (their cache keys did not change when it was added); a
# config.json without it predates it and ran the behaviour it replaced (the DNN's MLP
# tower), so such a cell is stale (cells.is_finished).
DNN_ONLY = {"only_for_base_model": "dnn", "absent_is_stale": True}
# Field metadata: a config.json without the field predates it and ran another behaviour
# than its default (cells.is_finished reruns such a cell).
ABSENT_IS_STALE = {"absent_is_stale": True}

# Fractions of the trained target users tried for K on the validation users.
DEFAULT_TOPK_GRID = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
# The methods every run reports next to PFCDR (each a registry entry).
MAIN_BASELINES = ("TGT", "EMCDR", "GlobalMean", "ItemMean", "BiasFloor")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which two domains: a task name and what that task's loader reads."""
  task: str = "comedy2drama"
  data_dir: str | None = dataclasses.field(default=None, metadata=EXECUTION_ONLY)
  scale: float = 0.01          # --task=synthetic: size relative to the paper task
  like: str = "music2movie"    # --task=synthetic: which paper task it mimics
  source_file: str | None = None   # --task=custom
  target_file: str | None = None   # --task=custom
  # --task=custom: inclusive (lo, hi) rating scale; a rating outside is an error naming
  # its line. None: any finite rating, with a warning when some fall outside 1-5.
  rating_range: tuple[float, float] | None = None
  # Any task: keep this fraction of each domain's ratings (None: all), seeded by the run's
  # seed; thin_tail > 0 keeps long-tailed users and items (tasks.thin_frames).
  thin: float | None = None
  thin_tail: float = 0.0
  # --task=synthetic: the generator's knobs (synthetic.make_synthetic_cdr); mean_rating
  # None is the template's.
  signal: float = 1.0
  bias_std: float | None = None   # None: the template's (synthetic.TEMPLATES)
  tail: float = 1.0
  density: float = 1.0
  mean_rating: float | None = None
  # Any task: the negative control of transfer, the overlapping users' source profiles
  # shuffled among them (tasks.misalign_overlap).
  misalign: bool = False


@dataclasses.dataclass(frozen=True)
class SplitConfig:
  """Cold-start (test) and validation users (``data.splits.make_cdr_split``)."""
  beta: float = 0.2
  val_fraction: float = 0.1


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
  """The base scorer and its training (``models.train.TrainConfig`` plus the model)."""
  base_model: str = "mf"
  emb_dim: int = 10
  lrs: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.1)
  epochs: int = 30
  batch_size: int = 1024
  heldout_fraction: float = 0.05
  # How the grid trains (models/train.py): "adam" is the faithful dense Adam,
  # "deferred_adam" the same trajectory computed on the rows a minibatch touches (idle
  # rows caught up in closed form: cost linear in the ratings), "auto" the faster of the
  # two for the tables' size, "lazy_adam" updates only the rows a minibatch touches (a
  # different optimiser; an option; BUILD_NOTES, issue 16);
  # "host" draws each epoch's order with numpy;
  # patience: stop after that many epochs without a held-out gain (None: never);
  # early_stop: "per_lr_reach_rise" (each lr stops at its own stall, once its held-out
  # MSE has risen two epochs running, or once its projected gain -- the smaller of its
  # steepest recent gain kept up to the last epoch and a geometric series of its
  # shrinking gains -- cannot reach the grid's best, and leaves the stack),
  # "per_lr_reach_geometric" (the same without the rise: the default until 2026-12-06),
  # "per_lr_reach" (the line only: until 2026-12-05), "per_lr" (the stall only),
  # "any_lr" (the stack runs until no lr gains: the rule before) or "selected" (gains of
  # the best lr only); models/early_stop.py and BUILD_NOTES (issues 16, 31).
  optimizer: str = "auto"
  shuffle: str = "host"
  patience: int | None = 5
  early_stop: str = "per_lr_reach_rise"
  # YouTube-DNN's user tower: "linear" (one Linear d -> d, the public code's) or "mlp".
  dnn_tower: str = dataclasses.field(default="linear", metadata=DNN_ONLY)
  # Rating offsets of the scorer (models/scorers.py): "bias" adds mu + b_u + c_j (mu
  # starts at the training mean), "global" mu alone, "none" is the paper's bare product
  # (starts at 0: a saddle on sparse data).
  offsets: str = dataclasses.field(default="bias", metadata=ABSENT_IS_STALE)
  # Further lrs tried beyond an edge of the grid while the selected lr sits on it
  # (models/lr_grid.py, extend_grid); 0: never (the run still reports the edge).
  grid_extend: int = dataclasses.field(default=2, metadata=ABSENT_IS_STALE)
  # Shard the embedding tables by rows over every device (models/sharded_tables.py):
  # how, not what (the trajectory is the single-device one up to float reassociation).
  shard_tables: bool = dataclasses.field(default=False, metadata=EXECUTION_ONLY)


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
  """The linear prototype bridge (and EMCDR's map): Adam on MSE."""
  lr: float = 0.005
  epochs: int = 200
  batch_size: int = 256


@dataclasses.dataclass(frozen=True)
class TopKConfig:
  """Eq. (13)-(14): K (a count, a fraction, or "auto" = chosen on validation)."""
  k: str = "auto"
  grid: tuple[float, ...] = DEFAULT_TOPK_GRID
  # Exact kernels with the same neighbor sets (tests/pfcdr/test_topk.py): how, not what.
  # method: topk.METHODS; "partition" (the host path) runs unsharded on any device count
  # (sharding.shard_select_neighbors hands it to topk.select_neighbors).
  chunk: int | None = dataclasses.field(default=None, metadata=EXECUTION_ONLY)
  method: str = dataclasses.field(default="auto", metadata=EXECUTION_ONLY)
  include_untrained: bool = False

  def __post_init__(self):
    if self.method not in topk_lib.METHODS:
      raise ValueError(f"topk.method = {self.method!r}: expected one of "
                       f"{', '.join(topk_lib.METHODS)}")
    if self.chunk is not None and not (isinstance(self.chunk, numbers.Integral)
                                       and not isinstance(self.chunk, bool) and self.chunk >= 1):
      raise ValueError(f"topk.chunk = {self.chunk!r}: expected None or an integer >= 1")


@dataclasses.dataclass(frozen=True)
class BaselinesConfig:
  """Registry names run next to PFCDR on the same split (``baselines.registry``)."""
  names: tuple[str, ...] = MAIN_BASELINES


@dataclasses.dataclass(frozen=True)
class CacheConfig:
  """The stage cache: off, or a directory (None: ``<workdir>/cache``)."""
  enabled: bool = dataclasses.field(default=True, metadata=EXECUTION_ONLY)
  dir: str | None = dataclasses.field(default=None, metadata=EXECUTION_ONLY)


@dataclasses.dataclass(frozen=True)
class PFCDRConfig:
  """Everything one PFCDR run depends on (built from flags by the scripts)."""
  seed: int = 0
  # A learned stage that fails its sanity gate (pipeline.sanity) ends the run (exit 1)
  # instead of warning: how, not what.
  strict: bool = dataclasses.field(default=False, metadata=EXECUTION_ONLY)
  data: DataConfig = DataConfig()
  split: SplitConfig = SplitConfig()
  pretrain: PretrainConfig = PretrainConfig()
  inversion: inversion_lib.InversionConfig = inversion_lib.InversionConfig()
  bridge: BridgeConfig = BridgeConfig()
  topk: TopKConfig = TopKConfig()
  baselines: BaselinesConfig = BaselinesConfig()
  cache: CacheConfig = CacheConfig()


def content(cfg: Any) -> Any:
  """The nested dict of what `cfg` decides (execution-only fields left out)."""
  if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
    return {f.name: content(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if decides(cfg, f)}
  if isinstance(cfg, (list, tuple)):
    return [content(v) for v in cfg]
  return cfg


def decides(cfg: Any, f: dataclasses.Field) -> bool:
  """Whether field `f` of `cfg` is part of what `cfg` decides (EXECUTION_ONLY, DNN_ONLY)."""
  if f.metadata.get("execution_only"):
    return False
  only = f.metadata.get("only_for_base_model")
  return only is None or getattr(cfg, "base_model", None) == only


def to_dict(cfg: Any) -> Any:
  """Every field, nested (what ``config.json`` holds)."""
  if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
    return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
  if isinstance(cfg, tuple):
    return [to_dict(v) for v in cfg]
  return cfg


def from_dict(cls: type, d: Mapping[str, Any]) -> Any:
  """Inverse of :func:`to_dict`; absent fields take their defaults.

  Raises:
    ValueError: a key that is not a field of `cls` (or of a sub-config).
  """
  hints = typing.get_type_hints(cls)
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}")
  kw = {}
  for name, value in d.items():
    hint = hints[name]
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
      kw[name] = from_dict(hint, value)
    elif isinstance(value, list):
      kw[name] = tuple(value)
    else:
      kw[name] = value
  return cls(**kw)


def override(cfg: Any, updates: Mapping[str, Any]) -> Any:
  """``cfg`` with dotted-path fields replaced: ``{"pretrain.epochs": 3, "seed": 1}``.

  Raises:
    ValueError: a path that names no field.
  """
  nested: dict[str, dict[str, Any]] = {}
  top: dict[str, Any] = {}
  for path, value in updates.items():
    head, _, rest = path.partition(".")
    if head not in {f.name for f in dataclasses.fields(cfg)}:
      raise ValueError(f"{type(cfg).__name__} has no field {head!r} (in {path!r})")
    if rest:
      nested.setdefault(head, {})[rest] = value
    else:
      top[head] = tuple(value) if isinstance(value, list) else value
  for head, sub in nested.items():
    top[head] = override(top.get(head, getattr(cfg, head)), sub)
  return dataclasses.replace(cfg, **top)


def train_config(cfg: PFCDRConfig):
  """The trainer's config (``models.train.TrainConfig``) of a run."""
  from pfcdr_jax.models import train as train_lib  # pylint: disable=g-import-not-at-top
  p = cfg.pretrain
  return train_lib.TrainConfig(lrs=tuple(p.lrs), epochs=p.epochs, batch_size=p.batch_size,
                               heldout_fraction=p.heldout_fraction, seed=cfg.seed,
                               dim=p.emb_dim, optimizer=p.optimizer, shuffle=p.shuffle,
                               patience=p.patience, early_stop=p.early_stop,
                               grid_extend=p.grid_extend, shard_tables=p.shard_tables)


def _early_stops() -> tuple[str, ...]:
  from pfcdr_jax.models import train as train_lib  # pylint: disable=g-import-not-at-top
  return train_lib.EARLY_STOPS


def _finite(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _data_checks(d: DataConfig) -> tuple:
  """:func:`validate`'s (path, flag, value, ok, expected) rows of the data knobs."""
  def sigma(x) -> bool:
    return _finite(x) and x >= 0

  knobs = [f"--{f.name}" for f in dataclasses.fields(d)
           if f.name in ("signal", "bias_std", "tail", "density", "mean_rating")
           and getattr(d, f.name) != f.default]
  return (
      ("data.thin", "--thin", d.thin, d.thin is None or (_finite(d.thin) and 0 < d.thin <= 1),
       "a fraction of the ratings kept, 0 < thin <= 1"),
      ("data.thin_tail", "--thin_tail", d.thin_tail, sigma(d.thin_tail),
       "a log-normal sigma >= 0"),
      ("data.thin_tail", "--thin_tail", d.thin_tail, d.thin is not None or d.thin_tail == 0,
       "0 unless --thin is set"),
      ("data.signal", "--signal", d.signal, sigma(d.signal), "a finite number >= 0"),
      ("data.bias_std", "--bias_std", d.bias_std, d.bias_std is None or sigma(d.bias_std),
       "a standard deviation >= 0"),
      ("data.tail", "--tail", d.tail, sigma(d.tail), "a log-normal sigma multiplier >= 0"),
      ("data.density", "--density", d.density, _finite(d.density) and d.density > 0,
       "a finite number > 0"),
      ("data.mean_rating", "--mean_rating", d.mean_rating,
       d.mean_rating is None or _finite(d.mean_rating), "a finite rating"),
      ("data.task", "--task", d.task, d.task == "synthetic" or not knobs,
       f"synthetic, the only task that reads {', '.join(knobs)}"),
  )


def validate(cfg: PFCDRConfig) -> PFCDRConfig:
  """Checks a run's settings before any work; returns `cfg` unchanged.

  Raises:
    ValueError: the first bad setting, named by its config path and the flag that sets
      it, with what was expected (e.g. ``split.beta (--beta) = 1.0: expected 0 < beta
      < 1``).
  """
  p, s, b = cfg.pretrain, cfg.split, cfg.bridge
  checks = (
      ("seed", "--seed", cfg.seed, isinstance(cfg.seed, int) and cfg.seed >= 0,
       "an integer >= 0"),
      *_data_checks(cfg.data),
      ("split.beta", "--beta", s.beta, _finite(s.beta) and 0 < s.beta < 1,
       "0 < beta < 1 (the share of overlap users made cold-start)"),
      ("split.val_fraction", "--val_fraction", s.val_fraction,
       _finite(s.val_fraction) and 0 <= s.val_fraction < 1, "0 <= val_fraction < 1"),
      ("pretrain.epochs", "--epochs", p.epochs, isinstance(p.epochs, int) and p.epochs >= 1,
       "an integer >= 1"),
      ("pretrain.batch_size", "--batch_size", p.batch_size,
       isinstance(p.batch_size, int) and p.batch_size >= 1, "an integer >= 1"),
      ("pretrain.emb_dim", "--emb_dim", p.emb_dim, isinstance(p.emb_dim, int) and p.emb_dim >= 1,
       "an integer >= 1"),
      ("pretrain.optimizer", "--optimizer", p.optimizer,
       p.optimizer in ("auto", "adam", "deferred_adam", "lazy_adam"),
       "auto, adam, deferred_adam or lazy_adam"),
      ("pretrain.patience", "--patience", p.patience,
       p.patience is None or (isinstance(p.patience, int) and p.patience >= 1),
       "an integer >= 1 (0 on the command line: no early stopping)"),
      ("pretrain.early_stop", "--early_stop", p.early_stop,
       p.early_stop in _early_stops(), " or ".join(_early_stops())),
      ("pretrain.offsets", "--offsets", p.offsets, p.offsets in scorers_lib.OFFSETS,
       " or ".join(scorers_lib.OFFSETS)),
      ("pretrain.grid_extend", "--grid_extend", p.grid_extend,
       isinstance(p.grid_extend, int) and not isinstance(p.grid_extend, bool)
       and p.grid_extend >= 0, "an integer >= 0"),
      ("pretrain.lrs", "--lrs", p.lrs, len(p.lrs) >= 1 and all(_finite(x) and x > 0
                                                             for x in p.lrs),
       "one or more finite learning rates > 0"),
      ("inversion.target_rating", "--target_rating", cfg.inversion.target_rating,
       _finite(cfg.inversion.target_rating), "a finite rating"),
      ("inversion.steps", "--inversion_steps", cfg.inversion.steps,
       isinstance(cfg.inversion.steps, int) and cfg.inversion.steps >= 1, "an integer >= 1"),
      ("bridge.epochs", "--bridge_epochs", b.epochs, isinstance(b.epochs, int) and b.epochs >= 1,
       "an integer >= 1"),
      ("bridge.lr", "--bridge_lr", b.lr, _finite(b.lr) and b.lr > 0, "a finite number > 0"),
  )
  for path, flag, value, ok, expected in checks:
    if not ok:
      raise ValueError(f"{path} ({flag}) = {value!r}: expected {expected}")
  return cfg
