"""Cross-platform data for CopyAttack: alignment, rating-5 filter, Table 1.

Section 5.1.1: the target platform A and source platform B share items aligned
by movie title and year; only rating-5 interactions are kept, user profiles are
time-ordered, and the source keeps only the shared items. Here A = MovieLens
100K and B = MovieLens 1M (both loaded by ``pfcdr_jax.data.movielens`` with
``"Title (Year)"`` item ids, so alignment is string equality).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from pfcdr_jax.infra import markdown


@dataclasses.dataclass(frozen=True)
class CrossDomain:
  """Aligned target and source platforms (numpy arrays).

  Attributes:
    item_ids: tuple[str] of the N target items (sorted); item index = position.
    target_user_ids: tuple[str] of the U target users (sorted).
    target_pairs: int32[R, 2] (user, item) rating-5 target interactions in
      time order per user.
    source_user_ids: tuple[str] of the U_B source users kept.
    source_profiles: int32[U_B, L_max] time-ordered source profiles in target
      item indices (shared items only), -1 padded.
    source_lengths: int32[U_B].
    shared_items: int32[S] target indices of the items in both platforms.
    stats: the Table 1 numbers.
  """

  item_ids: tuple
  target_user_ids: tuple
  target_pairs: np.ndarray
  source_user_ids: tuple
  source_profiles: np.ndarray
  source_lengths: np.ndarray
  shared_items: np.ndarray
  stats: dict

  @property
  def n_items(self) -> int:
    return len(self.item_ids)

  @property
  def n_target_users(self) -> int:
    return len(self.target_user_ids)

  @property
  def n_source_users(self) -> int:
    return len(self.source_user_ids)

  def target_counts(self) -> np.ndarray:
    """Rating-5 interactions per target item. int64[N]."""
    return np.bincount(self.target_pairs[:, 1], minlength=self.n_items)

  def source_counts(self) -> np.ndarray:
    """Source profiles containing each target item. int64[N]."""
    valid = self.source_profiles[self.source_profiles >= 0]
    return np.bincount(valid, minlength=self.n_items)


def _time_order(df: pd.DataFrame) -> pd.DataFrame:
  # Stable sort keeps file order for equal timestamps.
  return df.sort_values(["user", "timestamp"], kind="stable")


def align_platforms(target: pd.DataFrame, source: pd.DataFrame, *,
                    min_rating: float = 5.0) -> CrossDomain:
  """Filters to rating-5, aligns items and builds time-ordered profiles.

  Args:
    target: ratings of platform A (columns user, item, rating, timestamp).
    source: ratings of platform B, same columns and item-id convention.
    min_rating: keep interactions rated at least this (paper: 5).

  Returns:
    CrossDomain. Target items = items with a kept target interaction; source
    users = users with a kept interaction on a shared item.

  Raises:
    ValueError: if a frame lacks a column or no item is shared.
  """
  need = {"user", "item", "rating", "timestamp"}
  for name, df in (("target", target), ("source", source)):
    if not need <= set(df.columns):
      raise ValueError(f"{name} frame lacks columns {need - set(df.columns)}")
  t = _time_order(target[target["rating"] >= min_rating])
  item_ids = tuple(sorted(t["item"].unique()))
  item_index = {v: i for i, v in enumerate(item_ids)}
  user_ids = tuple(sorted(t["user"].unique()))
  user_index = {u: i for i, u in enumerate(user_ids)}
  pairs = np.stack([t["user"].map(user_index).to_numpy(),
                    t["item"].map(item_index).to_numpy()], 1).astype(np.int32)

  s = source[(source["rating"] >= min_rating)
             & source["item"].isin(item_index)]
  if s.empty:
    raise ValueError("no shared item between the platforms after filtering")
  s = _time_order(s)
  src_users = tuple(sorted(s["user"].unique()))
  s_items = s["item"].map(item_index).to_numpy().astype(np.int32)
  s_users = s["user"].to_numpy()
  groups = pd.Series(s_items).groupby(s_users, sort=True)
  lengths = groups.size().reindex(src_users).to_numpy().astype(np.int32)
  profiles = np.full((len(src_users), int(lengths.max())), -1, np.int32)
  for r, (_, items) in enumerate(groups):
    profiles[r, :len(items)] = items.to_numpy()
  shared = np.unique(s_items).astype(np.int32)
  stats = {
      "target_users": len(user_ids),
      "target_items": len(item_ids),
      "target_interactions": int(len(pairs)),
      "source_users": len(src_users),
      "overlapping_items": int(len(shared)),
      "source_interactions": int(len(s)),
      "all_rating_overlap": int(len(set(target["item"]) & set(source["item"]))),
  }
  return CrossDomain(item_ids=item_ids, target_user_ids=user_ids,
                     target_pairs=pairs, source_user_ids=src_users,
                     source_profiles=profiles, source_lengths=lengths,
                     shared_items=shared, stats=stats)


def table1_markdown(stats: dict, name: str = "(ML100K, ML1M)") -> str:
  """Table 1 of the paper ("Statistics of Two Datasets") for our platforms."""
  rows = [
      ("Target Domain", "# of Users", stats["target_users"]),
      ("", "# of Items", stats["target_items"]),
      ("", "# of Interactions", stats["target_interactions"]),
      ("Source Domain", "# of Users", stats["source_users"]),
      ("", "# of Overlapping Items", stats["overlapping_items"]),
      ("", "# of Interactions", stats["source_interactions"]),
  ]
  return "\n".join(markdown.table(["Datasets (Target, Source)", "", name],
                                  [(a, b, f"{c:,}") for a, b, c in rows]))


def select_target_items(cd: CrossDomain, n: int, seed: int,
                        max_target_interactions: int = 10,
                        min_source_profiles: int = 1) -> np.ndarray:
  """Samples the target items v* (Section 5.1.3).

  "50 target items with less than 10 interactions" that exist in the source
  (so masking never empties the tree, Section 4.3.2).

  Args:
    cd: aligned platforms.
    n: number of items.
    seed: numpy seed.
    max_target_interactions: strict upper bound on target interactions.
    min_source_profiles: minimum number of source profiles containing it.

  Returns:
    int32[n] sorted target item indices.

  Raises:
    ValueError: if fewer than ``n`` items qualify.
  """
  ok = ((cd.target_counts() < max_target_interactions)
        & (cd.source_counts() >= min_source_profiles))
  pool = np.flatnonzero(ok)
  if len(pool) < n:
    raise ValueError(f"only {len(pool)} items qualify as targets, asked {n}")
  rng = np.random.default_rng(seed)
  return np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int32)


def split_target_items(cd: CrossDomain, n_test: int, n_validation: int,
                       seed: int, max_target_interactions: int = 10,
                       min_source_profiles: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Disjoint validation and test target items (Section 5.1.3 plus a split).

  The qualifying items (as ``select_target_items``) are shuffled once by
  ``seed``: the first ``n_validation`` are the validation items, on which
  attack settings are chosen, the next ``n_test`` the test items Table 2
  scores. So a run with fewer test items scores a prefix of the longer run's
  test items, and the validation items do not depend on ``n_test``.

  Returns:
    (validation int32[n_validation], test int32[n_test]), each sorted.

  Raises:
    ValueError: if fewer than ``n_test + n_validation`` items qualify.
  """
  ok = ((cd.target_counts() < max_target_interactions)
        & (cd.source_counts() >= min_source_profiles))
  pool = np.flatnonzero(ok)
  if len(pool) < n_test + n_validation:
    raise ValueError(
        f"only {len(pool)} items qualify as targets, asked {n_test} test + "
        f"{n_validation} validation items")
  perm = np.random.default_rng(seed).permutation(pool)
  val = np.sort(perm[:n_validation]).astype(np.int32)
  test = np.sort(perm[n_validation:n_validation + n_test]).astype(np.int32)
  return val, test


def popularity_groups(cd: CrossDomain, n_groups: int = 10) -> np.ndarray:
  """Popularity decile of each target item (Section 5.3.2); 0 = most popular.

  Returns:
    int32[N].
  """
  order = np.argsort(-cd.target_counts(), kind="stable")
  group = np.empty(cd.n_items, np.int32)
  group[order] = np.arange(cd.n_items) * n_groups // cd.n_items
  return group
