"""Source-platform MF representations p^B, q^B (Sections 4.3.1, 4.3.3, 4.4).

The paper learns user and item vectors on the source interactions Y^B with
matrix factorisation [14] and uses them to build the clustering tree (p^B) and
as policy inputs (p^B, q^B). The source keeps only rating-5 interactions, so a
rating regression would see a constant target; we fit MF to the implicit
matrix instead: every kept interaction is a 1 and, per interaction, one item
the user did not interact with (uniform, seeded) is a 0. Training reuses the
project's shared MF scorer and trainer (``pfcdr_jax.models``).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np

from pfcdr_jax.models import scorers
from pfcdr_jax.models import train as train_lib


class _Domain(NamedTuple):
  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  n_users: int
  n_items: int


@dataclasses.dataclass(frozen=True)
class SourceMFConfig:
  """Hyper-parameters of the source MF (Section 5.1.3: same as the target)."""

  dim: int = 8
  lrs: tuple = (0.001, 0.005, 0.01)
  epochs: int = 20
  batch_size: int = 2048
  negatives_per_positive: int = 1
  seed: int = 0


def implicit_domain(profiles: np.ndarray, lengths: np.ndarray, n_items: int,
                    negatives_per_positive: int, seed: int) -> _Domain:
  """Positives (1.0) from the profiles plus sampled negatives (0.0).

  Args:
    profiles: int32[U_B, L_max] (-1 padded) item ids.
    lengths: int32[U_B].
    n_items: N.
    negatives_per_positive: sampled 0-entries per interaction.
    seed: numpy seed.

  Returns:
    A DomainData-like tuple for ``train_scorer``.
  """
  valid = profiles >= 0
  users = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
  items = profiles[valid].astype(np.int32)
  rng = np.random.default_rng(seed)
  n_neg = len(items) * negatives_per_positive
  neg_users = np.repeat(users, negatives_per_positive)
  neg_items = rng.integers(0, n_items, n_neg).astype(np.int32)
  # Drop draws that hit a positive (rare; keeps the 0s truly unobserved).
  pos_keys = set((users.astype(np.int64) * n_items + items).tolist())
  keep = np.fromiter(
      (k not in pos_keys for k in
       (neg_users.astype(np.int64) * n_items + neg_items).tolist()), bool,
      count=n_neg)
  u = np.concatenate([users, neg_users[keep]])
  i = np.concatenate([items, neg_items[keep]])
  r = np.concatenate([np.ones(len(items), np.float32),
                      np.zeros(int(keep.sum()), np.float32)])
  return _Domain(u, i, r, len(lengths), n_items)


def train_source_mf(profiles: np.ndarray, lengths: np.ndarray, n_items: int,
                    cfg: SourceMFConfig, key: jax.Array):
  """Trains MF on the source and returns (p^B float[U_B, e], q^B float[N, e]).

  Item vectors are indexed by *target* item id (the source keeps only shared
  items, stored in target ids); target-only items get their untrained init.
  """
  dom = implicit_domain(profiles, lengths, n_items, cfg.negatives_per_positive,
                        cfg.seed)
  scorer = scorers.get_scorer("mf")
  tcfg = train_lib.TrainConfig(lrs=tuple(cfg.lrs), epochs=cfg.epochs,
                               batch_size=cfg.batch_size, seed=cfg.seed,
                               dim=cfg.dim)
  res = train_lib.train_scorer(scorer, dom, tcfg, key)
  p = np.asarray(scorer.user_repr(res.params, np.arange(len(lengths))))
  q = np.asarray(scorer.item_matrix(res.params))
  return p, q, {"lr": res.lr, "epoch": res.epoch,
                "heldout_mse": res.heldout_mse}
