"""Indexing and the cold-start cross-domain split.

Id order (both domains): the overlapping users first, sorted by their string
id, with the SAME index ``0..n_overlap-1`` in both domains; then the users of
that domain only, sorted; items sorted per domain.

Split: ``round(beta * n_overlap)`` overlap users (Python ``round``, half to
even) are drawn with ``np.random.default_rng(seed)`` as cold-start test users;
all their target ratings form ``target_test`` and are removed from target
training. Of the remaining overlap users, ``round(val_fraction * rest)`` are
drawn with the same generator as validation users; their target ratings form
``target_val`` (for model / K selection, never the test set) and are removed
from target training too. Source ratings are all kept. Ratings inside each
``DomainData`` are sorted by (user, item).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple, Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.checksums import write_json_atomic
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import (check_ids, duplicate_losers, pair_keys,
                                         stable_order,
                                         validate_frame_shape, validate_values)


def _readonly(a: np.ndarray) -> np.ndarray:
  a.setflags(write=False)
  return a


@dataclasses.dataclass(frozen=True, eq=False)
class DomainData:
  """Indexed ratings of one domain (numpy arrays, read-only).

  Attributes:
    user: int32[R] user indices.
    item: int32[R] item indices.
    rating: float32[R] ratings.
    n_users: Number of users of the domain (the index space, not only the
      users present in this slice).
    n_items: Number of items of the domain.
  """
  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  n_users: int
  n_items: int

  def __post_init__(self):
    n = len(self.rating)
    if len(self.user) != n or len(self.item) != n:
      raise ValueError(f"length mismatch: user {len(self.user)}, item {len(self.item)}, "
                       f"rating {n}")
    if n and (self.user.min() < 0 or self.user.max() >= self.n_users):
      raise ValueError("user index out of range")
    if n and (self.item.min() < 0 or self.item.max() >= self.n_items):
      raise ValueError("item index out of range")

  def __len__(self) -> int:
    return len(self.rating)


@dataclasses.dataclass(frozen=True, eq=False)
class CDRData:
  """A cross-domain data set, indexed and split.

  Attributes:
    source: All source ratings.
    target_train: Target ratings used for training.
    target_val: Target ratings of the validation overlap users.
    target_test: Target ratings of the cold-start test users.
    n_overlap: Number of overlapping users (indices ``0..n_overlap-1``).
    train_users: int32 overlap users kept in target training (sorted).
    val_users: int32 validation overlap users (sorted).
    test_users: int32 cold-start test users (sorted).
    source_user_ids: String id of each source user index.
    target_user_ids: String id of each target user index.
    source_item_ids: String id of each source item index.
    target_item_ids: String id of each target item index.
    target_trained: bool[U_t], True where the user has >= 1 target_train rating.
    manifest: JSON-serialisable description (see :func:`make_cdr_split`).
  """
  source: DomainData
  target_train: DomainData
  target_val: DomainData
  target_test: DomainData
  n_overlap: int
  train_users: np.ndarray
  val_users: np.ndarray
  test_users: np.ndarray
  source_user_ids: tuple
  target_user_ids: tuple
  source_item_ids: tuple
  target_item_ids: tuple
  target_trained: np.ndarray
  manifest: dict


def _sha256_strings(ids: list) -> str:
  """sha256 of the string ids, each followed by a newline (one joined buffer)."""
  return hashlib.sha256(("\n".join(ids) + "\n" if ids else "").encode("utf-8")).hexdigest()


def _sha256_array(a: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(a, dtype="<i4").tobytes()).hexdigest()


def _sha256_ratings(d: "DomainData") -> str:
  """sha256 of the indexed (user, item, rating) triples, in their stored order.

  Part of the data hash that keys the stage cache: editing a rating in place (same ids,
  same pairs) changes it, so nothing trained on the old ratings is served again.
  """
  h = hashlib.sha256()
  h.update(np.ascontiguousarray(d.user, dtype="<i4").tobytes())
  h.update(np.ascontiguousarray(d.item, dtype="<i4").tobytes())
  h.update(np.ascontiguousarray(d.rating, dtype="<f4").tobytes())
  return h.hexdigest()


def _prepare(df: pd.DataFrame, name: str, rating_range) -> tuple:
  """Validates, deduplicates (documented policy) and factorises one domain."""
  validate_frame_shape(df, name=name)
  keys, ucodes, uniq_u, icodes, uniq_i = pair_keys(df)
  check_ids(ucodes, uniq_u, name=name, field="user")
  check_ids(icodes, uniq_i, name=name, field="item")
  validate_values(df, name=name, rating_range=rating_range)
  drop = duplicate_losers(keys, df["timestamp"].to_numpy(dtype=np.int64))
  n_dup = int(drop.sum())
  if n_dup:
    logging.warning("%s: dropped %d duplicate (user, item) rows (kept the latest timestamp, "
                    "ties: last in file order)", name, n_dup)
  keep = ~drop
  rating = df["rating"].to_numpy(dtype=np.float32)[keep]
  # Dropping losers never removes a user or item entirely (the survivor stays).
  return ucodes[keep], _strings(uniq_u), icodes[keep], _strings(uniq_i), rating, n_dup


def _strings(uniques: pd.Index) -> list:
  """The checked distinct ids as a list of str."""
  if isinstance(uniques.dtype, pd.StringDtype):
    return uniques.tolist()  # already str (check_ids refused missing values)
  return [str(u) for u in uniques]


def _index(ucodes, user_pos, icodes, item_pos, rating, n_users: int, n_items: int
           ) -> DomainData:
  """Indexes one domain: ``*_pos[code]`` is the index of the code's id (:class:`_IdOrder`)."""
  key = user_pos[ucodes]
  key *= n_items
  key += item_pos[icodes]
  # The (user, item) pairs are distinct here (``_prepare`` dropped the repeats), so any
  # sort gives this one order; the sorted keys give the users and items back without
  # two gathers by ``order``.
  order, key = stable_order(key)
  return DomainData(_readonly((key // n_items).astype(np.int32)),
                    _readonly((key % n_items).astype(np.int32)),
                    _readonly(rating[order]), n_users, n_items)


def _subset(d: DomainData, mask: np.ndarray) -> DomainData:
  return DomainData(_readonly(d.user[mask]), _readonly(d.item[mask]),
                    _readonly(d.rating[mask]), d.n_users, d.n_items)


def make_cdr_split(source_df: pd.DataFrame, target_df: pd.DataFrame, *, beta: float,
                   seed: int, val_fraction: float = 0.1, name: str = "cdr",
                   rating_range: Optional[tuple[float, float]] = None) -> CDRData:
  """Indexes two universal frames and draws the cold-start split.

  Args:
    source_df: Source-domain universal frame.
    target_df: Target-domain universal frame.
    beta: Fraction of overlapping users made cold-start test users, in [0, 1).
    seed: Seed of the ``np.random.default_rng`` that draws test and val users.
    val_fraction: Fraction of the non-test overlap users used for validation.
    name: Task name recorded in the manifest and used in messages.
    rating_range: Optional inclusive rating bounds checked on both frames
      (None: any finite rating).

  Returns:
    The :class:`CDRData`. Its manifest holds: task, beta, seed, val_fraction,
    per-domain counts (users, items, ratings; target also per split), n_overlap,
    n_test_users, n_test_ratings, n_val_users, n_val_ratings, n_train_overlap
    users, sha256 of the four id lists, of the test/val user arrays and of the
    indexed (user, item, rating) triples of source, target train, val and test (so
    the data hash changes when any rating does), and the duplicates dropped per domain.

  Raises:
    DataError: an empty domain, no overlapping users, or too few of them for
      the requested split.
    ValueError: beta or val_fraction out of range.
  """
  _check_fractions(beta, val_fraction)
  src = _prepare(source_df, f"{name} (source)", rating_range)
  tgt = _prepare(target_df, f"{name} (target)", rating_range)
  ids = _id_order(src[1], tgt[1], src[3], tgt[3], name=name)
  source = _index(src[0], ids.source_user_pos, src[2], ids.source_item_pos, src[4],
                  len(ids.source_user_ids), len(ids.source_item_ids))
  target = _index(tgt[0], ids.target_user_pos, tgt[2], ids.target_item_pos, tgt[4],
                  len(ids.target_user_ids), len(ids.target_item_ids))
  train_users, val_users, test_users = _draw_users(ids.n_overlap, beta=beta, seed=seed,
                                                   val_fraction=val_fraction, name=name)
  target_train, target_val, target_test, trained = _split_target(target, val_users,
                                                                 test_users)
  manifest = _manifest(
      name=name, beta=beta, seed=seed, val_fraction=val_fraction, ids=ids, source=source,
      target=target, target_train=target_train, target_val=target_val,
      target_test=target_test, train_users=train_users, val_users=val_users,
      test_users=test_users, trained=trained, duplicates=(src[-1], tgt[-1]))
  logging.info("%s split: %d overlap users (%d test, %d val, %d train); target ratings "
               "%d train / %d val / %d test", name, ids.n_overlap, len(test_users),
               len(val_users), len(train_users), len(target_train), len(target_val),
               len(target_test))
  return CDRData(
      source=source, target_train=target_train, target_val=target_val,
      target_test=target_test, n_overlap=ids.n_overlap, train_users=_readonly(train_users),
      val_users=_readonly(val_users), test_users=_readonly(test_users),
      source_user_ids=tuple(ids.source_user_ids), target_user_ids=tuple(ids.target_user_ids),
      source_item_ids=tuple(ids.source_item_ids), target_item_ids=tuple(ids.target_item_ids),
      target_trained=_readonly(trained), manifest=manifest)


def _check_fractions(beta: float, val_fraction: float) -> None:
  """Raises ValueError unless ``0 <= beta < 1`` and ``0 <= val_fraction < 1``."""
  if not 0.0 <= beta < 1.0:
    raise ValueError(f"beta must be in [0, 1), got {beta}")
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")


class _IdOrder(NamedTuple):
  """The index order of users and items in both domains (see the module docstring).

  Attributes:
    n_overlap: Number of users in both domains (indices ``0..n_overlap-1``).
    source_user_ids: Overlap users sorted, then source-only users sorted.
    target_user_ids: Overlap users sorted, then target-only users sorted.
    source_item_ids: Source items sorted.
    target_item_ids: Target items sorted.
    source_user_pos: int64, the index of each distinct source user as given to
      :func:`_id_order` (``source_user_ids[source_user_pos[k]] == src_users[k]``);
      likewise the three others.
    target_user_pos: See ``source_user_pos``.
    source_item_pos: See ``source_user_pos``.
    target_item_pos: See ``source_user_pos``.
  """
  n_overlap: int
  source_user_ids: list
  target_user_ids: list
  source_item_ids: list
  target_item_ids: list
  source_user_pos: np.ndarray
  target_user_pos: np.ndarray
  source_item_pos: np.ndarray
  target_item_pos: np.ndarray


def _id_order(src_users: list, tgt_users: list, src_items: list, tgt_items: list, *,
              name: str) -> _IdOrder:
  """Orders the distinct string ids of both domains: shared users first.

  Each list is sorted by positions (``sorted(range(n), key=ids.__getitem__)``): timsort
  finds ids that come sorted (the categories of a categorical column) in one linear
  pass, and the sort itself gives each id's index (no lookup of every id). The shared
  users are found with one set a domain.

  Args:
    src_users: Distinct source user ids.
    tgt_users: Distinct target user ids.
    src_items: Distinct source item ids.
    tgt_items: Distinct target item ids.
    name: Task name for messages.

  Returns:
    The :class:`_IdOrder`.

  Raises:
    DataError: no user is in both domains.
  """
  src_set, tgt_set = set(src_users), set(tgt_users)
  in_tgt = np.fromiter((u in tgt_set for u in src_users), dtype=bool, count=len(src_users))
  in_src = np.fromiter((u in src_set for u in tgt_users), dtype=bool, count=len(tgt_users))
  n_overlap = int(in_tgt.sum())
  if not n_overlap:
    raise DataError(name, f"zero overlapping users between the source ({len(src_users)} "
                    f"users) and the target ({len(tgt_users)} users) domain; check that "
                    "both files use the same user ids")
  source_user_ids, source_user_pos = _place(src_users, in_tgt)
  target_user_ids, target_user_pos = _place(tgt_users, in_src)
  source_item_ids, source_item_pos = _place(src_items, np.zeros(len(src_items), bool))
  target_item_ids, target_item_pos = _place(tgt_items, np.zeros(len(tgt_items), bool))
  return _IdOrder(n_overlap, source_user_ids, target_user_ids, source_item_ids,
                  target_item_ids, source_user_pos, target_user_pos, source_item_pos,
                  target_item_pos)


def _place(ids: list, first: np.ndarray) -> tuple[list, np.ndarray]:
  """``(ordered ids, index of each id)``: the ids where ``first`` sorted, then the rest
  sorted."""
  order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
  in_first = first[order]
  placed = np.concatenate([order[in_first], order[~in_first]])
  pos = np.empty(len(ids), dtype=np.int64)
  pos[placed] = np.arange(len(ids))
  return [ids[k] for k in placed.tolist()], pos


def _draw_users(n_overlap: int, *, beta: float, seed: int, val_fraction: float,
                name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Draws the test and validation overlap users (module docstring: Split).

  Args:
    n_overlap: Number of overlapping users (indices ``0..n_overlap-1``).
    beta: Test fraction of the overlap users.
    seed: Seed of ``np.random.default_rng``; test users are drawn first.
    val_fraction: Validation fraction of the remaining overlap users.
    name: Task name for messages.

  Returns:
    ``(train_users, val_users, test_users)``, each int32 and sorted.

  Raises:
    DataError: ``beta > 0`` but no test user, or no training user left.
  """
  rng = np.random.default_rng(seed)
  n_test = round(beta * n_overlap)
  perm = rng.permutation(n_overlap)
  test_users = np.sort(perm[:n_test]).astype(np.int32)
  rest = perm[n_test:]
  n_val = round(val_fraction * len(rest))
  val_pick = rng.permutation(len(rest))[:n_val]
  val_users = np.sort(rest[val_pick]).astype(np.int32)
  train_users = np.setdiff1d(rest, val_users).astype(np.int32)
  if beta > 0 and n_test == 0:
    raise DataError(name, f"beta={beta} of {n_overlap} overlapping users gives no test user")
  if len(train_users) == 0:
    raise DataError(name, f"no overlapping training users left ({n_overlap} overlapping, "
                    f"{n_test} test, {n_val} validation)")
  return train_users, val_users, test_users


def _split_target(target: DomainData, val_users: np.ndarray, test_users: np.ndarray
                  ) -> tuple[DomainData, DomainData, DomainData, np.ndarray]:
  """Splits the target ratings by the role of their user.

  Args:
    target: All target ratings (sorted by (user, item)).
    val_users: int32 validation user indices.
    test_users: int32 test user indices.

  Returns:
    ``(target_train, target_val, target_test, trained)``; ``trained`` is
    bool[U_t], True where the user has >= 1 training rating (writable).
  """
  role = np.zeros(target.n_users, dtype=np.int8)  # 0 train, 1 val, 2 test
  role[val_users] = 1
  role[test_users] = 2
  r = role[target.user]
  target_train, target_val, target_test = (_subset(target, r == k) for k in (0, 1, 2))
  trained = np.zeros(target.n_users, dtype=bool)
  trained[target_train.user] = True
  return target_train, target_val, target_test, trained


def _manifest(*, name: str, beta: float, seed: int, val_fraction: float, ids: _IdOrder,
              source: DomainData, target: DomainData, target_train: DomainData,
              target_val: DomainData, target_test: DomainData, train_users: np.ndarray,
              val_users: np.ndarray, test_users: np.ndarray, trained: np.ndarray,
              duplicates: tuple[int, int]) -> dict:
  """The JSON-serialisable manifest of a split (keys: see :func:`make_cdr_split`).

  Args:
    name: Task name.
    beta: Test fraction.
    seed: Split seed.
    val_fraction: Validation fraction.
    ids: The id order of both domains.
    source: All source ratings.
    target: All target ratings.
    target_train: Target training ratings.
    target_val: Target validation ratings.
    target_test: Target test ratings.
    train_users: Overlap users kept in training.
    val_users: Validation users.
    test_users: Test users.
    trained: bool[U_t] users with a training rating.
    duplicates: ``(source, target)`` duplicate rows dropped.

  Returns:
    The manifest dict.
  """
  counts = {
      "source": {"users": source.n_users, "items": source.n_items, "ratings": len(source)},
      "target": {"users": target.n_users, "items": target.n_items, "ratings": len(target),
                 "train_ratings": len(target_train), "val_ratings": len(target_val),
                 "test_ratings": len(target_test)},
  }
  return {
      "task": name,
      "beta": float(beta),
      "seed": int(seed),
      "val_fraction": float(val_fraction),
      "counts": counts,
      "n_overlap": ids.n_overlap,
      "n_test_users": int(len(test_users)),
      "n_test_ratings": len(target_test),
      "n_val_users": int(len(val_users)),
      "n_val_ratings": len(target_val),
      "n_train_overlap_users": int(len(train_users)),
      "n_target_trained_users": int(trained.sum()),
      "sha256": {
          "source_user_ids": _sha256_strings(ids.source_user_ids),
          "target_user_ids": _sha256_strings(ids.target_user_ids),
          "source_item_ids": _sha256_strings(ids.source_item_ids),
          "target_item_ids": _sha256_strings(ids.target_item_ids),
          "test_users": _sha256_array(test_users),
          "val_users": _sha256_array(val_users),
          "source_ratings": _sha256_ratings(source),
          "target_train_ratings": _sha256_ratings(target_train),
          "target_val_ratings": _sha256_ratings(target_val),
          "target_test_ratings": _sha256_ratings(target_test),
      },
      "duplicates_dropped": {"source": duplicates[0], "target": duplicates[1]},
  }


def save_manifest(data: CDRData, path: PathLike) -> None:
  """Writes ``data.manifest`` as JSON atomically (temp file + ``os.replace``).

  Args:
    data: The split.
    path: Destination ``.json`` path (parents created).
  """
  write_json_atomic(data.manifest, path)
