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
from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.checksums import write_json_atomic
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.id_order import IdOrder, id_order
from pfcdr_jax.data.interactions import (check_ids, factorize_ids, sorted_duplicate_losers,
                                         stable_order, validate_frame_shape,
                                         validate_values)


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
  return hashlib.sha256(np.ascontiguousarray(a, dtype="<i4")).hexdigest()


def _sha256_ratings(d: "DomainData") -> str:
  """sha256 of the indexed (user, item, rating) triples, in their stored order.

  Part of the data hash that keys the stage cache: editing a rating in place (same ids,
  same pairs) changes it, so nothing trained on the old ratings is served again.
  """
  h = hashlib.sha256()
  # The arrays' own buffers where they are little-endian and contiguous already (no
  # bytes copy of each): the same bytes as ``.tobytes()`` of the converted array.
  h.update(np.ascontiguousarray(d.user, dtype="<i4"))
  h.update(np.ascontiguousarray(d.item, dtype="<i4"))
  h.update(np.ascontiguousarray(d.rating, dtype="<f4"))
  return h.hexdigest()


def _prepare(df: pd.DataFrame, name: str, rating_range) -> tuple:
  """Validates and factorises one domain: ``(user codes, user ids, item codes, item ids,
  ratings, timestamps)``. Repeated (user, item) pairs are dropped later, by
  :func:`_index`, in the sort that orders the ratings anyway."""
  validate_frame_shape(df, name=name)
  ucodes, uniq_u = factorize_ids(df["user"])
  icodes, uniq_i = factorize_ids(df["item"])
  check_ids(ucodes, uniq_u, name=name, field="user")
  check_ids(icodes, uniq_i, name=name, field="item")
  validate_values(df, name=name, rating_range=rating_range)
  return (ucodes, _strings(uniq_u), icodes, _strings(uniq_i),
          df["rating"].to_numpy(dtype=np.float32), df["timestamp"].to_numpy(dtype=np.int64))


def _strings(uniques: pd.Index) -> list:
  """The checked distinct ids as a list of str."""
  if isinstance(uniques.dtype, pd.StringDtype):
    return uniques.tolist()  # already str (check_ids refused missing values)
  return [str(u) for u in uniques]


def _index(ucodes, user_pos, icodes, item_pos, rating, timestamp, n_users: int,
           n_items: int, name: str) -> tuple[DomainData, int]:
  """Indexes one domain and drops its repeated (user, item) pairs (documented policy).

  ``*_pos[code]`` is the index of the code's id (:class:`id_order.IdOrder`). Returns the
  :class:`DomainData` (ratings sorted by (user, item)) and the number of rows dropped.
  """
  key = user_pos[ucodes]
  key *= n_items
  key += item_pos[icodes]
  # One sort orders the ratings and puts repeated pairs side by side; dropping a
  # loser never removes a user or item entirely (its key's survivor stays).
  order, key = stable_order(key)
  drop = sorted_duplicate_losers(key, order, timestamp)
  n_dup = int(drop.sum())
  if n_dup:
    logging.warning("%s: dropped %d duplicate (user, item) rows (kept the latest timestamp, "
                    "ties: last in file order)", name, n_dup)
    keep = ~drop
    key, order = key[keep], order[keep]
  # The users and items come back from the sorted keys, straight into int32.
  user = np.empty(len(key), dtype=np.int32)
  item = np.empty(len(key), dtype=np.int32)
  np.floor_divide(key, n_items, out=user, casting="unsafe")
  np.remainder(key, n_items, out=item, casting="unsafe")
  return DomainData(_readonly(user), _readonly(item), _readonly(rating[order]), n_users,
                    n_items), n_dup


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
  ids = id_order(src[1], tgt[1], src[3], tgt[3], name=name)
  source, dup_s = _index(src[0], ids.source_user_pos, src[2], ids.source_item_pos, src[4],
                         src[5], len(ids.source_user_ids), len(ids.source_item_ids),
                         f"{name} (source)")
  target, dup_t = _index(tgt[0], ids.target_user_pos, tgt[2], ids.target_item_pos, tgt[4],
                         tgt[5], len(ids.target_user_ids), len(ids.target_item_ids),
                         f"{name} (target)")
  train_users, val_users, test_users = _draw_users(ids.n_overlap, beta=beta, seed=seed,
                                                   val_fraction=val_fraction, name=name)
  target_train, target_val, target_test, trained = _split_target(target, val_users,
                                                                 test_users)
  manifest = _manifest(
      name=name, beta=beta, seed=seed, val_fraction=val_fraction, ids=ids, source=source,
      target=target, target_train=target_train, target_val=target_val,
      target_test=target_test, train_users=train_users, val_users=val_users,
      test_users=test_users, trained=trained, duplicates=(dup_s, dup_t))
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


def _manifest(*, name: str, beta: float, seed: int, val_fraction: float, ids: IdOrder,
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
