"""The inputs of a run: its task's frames, the split and the checks on it, and RunInputs.

:func:`load_split` makes the cold-start split of a task's two rating frames
(``splits.make_cdr_split``) and its data hash; :func:`check_split` refuses a split too
small for the run's protocol before anything trains; :class:`RunInputs` holds the split
with both pretrained scorers, what the method and the baselines start from.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.baselines import selection
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.data import tasks as tasks_lib
from pfcdr_jax.infra import heap
from pfcdr_jax.infra import hugepages


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


def load_frames(cfg: PFCDRConfig):
  """(source frame, target frame, info) of the run's task (``tasks.load_task``)."""
  d = cfg.data
  with hugepages.advice_off(), heap.reuse_freed_memory():
    return tasks_lib.load_task(
        d.task, data_dir=d.data_dir, seed=cfg.seed, scale=d.scale, like=d.like,
        source_file=d.source_file, target_file=d.target_file,
        rating_range=d.rating_range, signal=d.signal, bias_std=d.bias_std, tail=d.tail,
        density=d.density, mean_rating=d.mean_rating, thin=d.thin, thin_tail=d.thin_tail,
        misalign=d.misalign)


def frames_key(cfg: PFCDRConfig) -> str:
  """Runs with equal keys load the same frames (the seed matters for seeded tasks)."""
  seeded = tasks_lib.depends_on_seed(cfg.data.task, cfg.data.thin, cfg.data.misalign)
  return cache_lib.stable_hash(config_lib.content(cfg.data), cfg.seed if seeded else None)


def load_split(cfg: PFCDRConfig, frames=None) -> tuple[splits_lib.CDRData, dict, str]:
  """(CDRData, task info, data hash); ``frames``: a :func:`load_frames` result."""
  src_df, tgt_df, info = frames if frames is not None else load_frames(cfg)
  with hugepages.advice_off(), heap.reuse_freed_memory():
    data = splits_lib.make_cdr_split(src_df, tgt_df, beta=cfg.split.beta, seed=cfg.seed,
                                     val_fraction=cfg.split.val_fraction,
                                     name=cfg.data.task)
  # Frames loaded here die now; what the heap kept of them goes back to the kernel.
  del src_df, tgt_df, frames
  heap.release_free_memory()
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
                           if len(selection.selection_grid(n)) > 1]
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
