"""The universal interaction frame: its columns and dtypes, deduplication and validation.

Universal raw format (every loader returns it): a ``pandas.DataFrame`` with
columns ``user`` (str), ``item`` (str), ``rating`` (float32) and ``timestamp``
(int64, -1 when unknown), in file order. An id column may also be a ``category`` whose
categories are distinct strings (the synthetic generator's frames): every
factorisation of such a column runs on its integer codes, linear in the rows, where a
string column hashes every row's string.

Duplicate policy (:func:`deduplicate`): for each (user, item) pair keep the
rating with the latest timestamp; among equal timestamps (including unknown
timestamps, -1) keep the last line in file order. The number of dropped rows is
logged and reported.
"""

from __future__ import annotations

from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.errors import DataError

COLUMNS = ("user", "item", "rating", "timestamp")

RatingRange = Optional[tuple[float, float]]

# Stars of the Amazon and MovieLens formats.
STAR_RANGE = (1.0, 5.0)


def make_frame(user, item, rating, timestamp=None, *, copy: bool = True) -> pd.DataFrame:
  """Builds a universal interaction frame with the canonical dtypes.

  Args:
    user: Sequence of user ids (converted to str; a ``pd.Categorical`` with string
      categories is kept as it is).
    item: Sequence of item ids (likewise).
    rating: Sequence of ratings (converted to float32).
    timestamp: Sequence of integer timestamps, or None for unknown (-1).
    copy: False hands the arrays over: the frame may share their memory (no copy of
      each column), so the caller must not change them afterwards.

  Returns:
    DataFrame with columns ``user, item, rating, timestamp``.
  """
  rating = np.asarray(rating, dtype=np.float32)
  if timestamp is None:
    timestamp = np.full(len(rating), -1, dtype=np.int64)
  else:
    timestamp = np.asarray(timestamp, dtype=np.int64)
  return pd.DataFrame({
      "user": _id_column(user),
      "item": _id_column(item),
      "rating": rating,
      "timestamp": timestamp,
  }, copy=copy)


def categorical_ids(ids) -> pd.Categorical:
  """Ids as a categorical of their distinct strings, sorted: one hashing pass over the
  rows, after which every factorisation of the column works on integer codes."""
  return pd.Categorical(pd.Series(ids, dtype=str))


def _id_column(ids) -> pd.Series:
  """An id column: strings, or a categorical of distinct string categories kept as is."""
  if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
    cats = ids.cat.categories if isinstance(ids, pd.Series) else ids.categories
    if pd.api.types.is_string_dtype(cats.dtype) and cats.is_unique:
      return pd.Series(ids).reset_index(drop=True)
  return pd.Series(ids, dtype=str).reset_index(drop=True)


# ----------------------------------------------------------------------------
# Dedup and validation.


def stable_order(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(order, key[order])`` of a stable sort of int64 ``key`` (overwritten).

  Where the keys are non-negative and the largest one fits in 63 bits with the row
  numbers, each key is packed with its row into one value and the values are sorted
  (numpy's vectorised sort, faster than a stable argsort; the row breaks ties,
  so the order is the stable one); ``order`` is then int32 where the row numbers fit
  (half the bytes; numpy gathers by int32 indices as fast). Otherwise a stable argsort
  (``order`` in numpy's index dtype).

  Raises:
    TypeError: ``key`` is not int64 (narrower keys would overflow when packed).
  """
  if key.dtype != np.int64:
    raise TypeError(f"expected int64 keys, got {key.dtype}")
  n = len(key)
  row_bits = max(n - 1, 1).bit_length()
  if n == 0 or key.min() < 0 or int(key.max()).bit_length() + row_bits > 63:
    order = np.argsort(key, kind="stable")
    return order, key[order]
  packed = key
  packed <<= row_bits
  # The row numbers go in a slice at a time: no row-sized arange beside the keys.
  for lo in range(0, n, _ROWS_CHUNK):
    packed[lo:lo + _ROWS_CHUNK] |= np.arange(lo, min(lo + _ROWS_CHUNK, n))
  packed.sort()
  order = np.empty(n, dtype=np.int32 if n <= np.iinfo(np.int32).max else np.int64)
  np.bitwise_and(packed, (1 << row_bits) - 1, out=order, casting="unsafe")
  packed >>= row_bits
  return order, packed


_ROWS_CHUNK = 1 << 16


def sorted_duplicate_losers(sorted_keys: np.ndarray, order: np.ndarray,
                            timestamps: np.ndarray) -> np.ndarray:
  """:func:`duplicate_losers` of rows already sorted by key (the policy's own mask).

  Args:
    sorted_keys: int64[R] pair keys in stable sorted order (:func:`stable_order`).
    order: int[R] the row of each sorted position.
    timestamps: int64[R] per row (file order, not sorted).

  Returns:
    bool[R] over the sorted positions, True where that row is dropped: the same rows
    as ``duplicate_losers(keys, timestamps)[order]``. Equal keys sit next to each
    other, so finding that none repeats is one comparison of neighbours.
  """
  n = len(sorted_keys)
  loser = np.zeros(n, dtype=bool)
  same = sorted_keys[1:] == sorted_keys[:-1]
  if not same.any():
    return loser
  in_group = np.zeros(n, dtype=bool)
  in_group[1:] |= same
  in_group[:-1] |= same
  at = np.flatnonzero(in_group)               # sorted positions of repeated keys
  rows = order[at]
  k = sorted_keys[at]
  # Within a key: by timestamp, then by row; the survivor is the last of its key.
  by = np.lexsort((rows, timestamps[rows], k))
  k = k[by]
  loser[at[by[:-1][k[:-1] == k[1:]]]] = True
  return loser


def duplicate_losers(keys: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
  """Boolean mask of the rows the duplicate policy drops.

  Among rows with equal ``keys`` the one with the largest timestamp survives;
  ties go to the last row. Everything else in the group is a loser.

  Args:
    keys: int64[R] pair keys (equal key = same (user, item)).
    timestamps: int64[R].

  Returns:
    bool[R], True for rows to drop.
  """
  n = len(keys)
  loser = np.zeros(n, dtype=bool)
  # Only rows whose key repeats can lose; one value sort finds them (none, in most
  # data), and the three-key sort runs on those rows alone. A row's fate depends only
  # on the rows of its key, so the mask is the one of sorting every row.
  sorted_keys = np.sort(keys)
  repeated = np.unique(sorted_keys[1:][sorted_keys[1:] == sorted_keys[:-1]])
  if len(repeated) == 0:
    return loser
  at = np.minimum(np.searchsorted(repeated, keys), len(repeated) - 1)
  rows = np.flatnonzero(repeated[at] == keys)
  order = rows[np.lexsort((rows, timestamps[rows], keys[rows]))]
  k = keys[order]
  # In sorted order the survivor is the last row of its key group.
  loser[order[:-1][k[:-1] == k[1:]]] = True
  return loser


def pair_keys(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index, np.ndarray, pd.Index]:
  """Integer codes of users and items and a combined (user, item) key.

  Args:
    df: A universal frame.

  Returns:
    ``(keys, user_codes, user_uniques, item_codes, item_uniques)``.
  """
  ucodes, uniq_u = factorize_ids(df["user"])
  icodes, uniq_i = factorize_ids(df["item"])
  keys = ucodes.astype(np.int64)
  keys *= max(len(uniq_i), 1)
  keys += icodes
  return keys, ucodes, uniq_u, icodes, uniq_i


def factorize_ids(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
  """Integer codes of an id column and its distinct values (``codes[r]`` indexes them).

  A categorical column without missing values is factorised from its integer codes:
  the distinct values are the categories in use, in category order (sorted, for the
  frames of this package's loaders), found with one pass (:func:`used_codes`); no string is
  hashed, and where every category is in use the codes are the column's own (no
  copy). Any other column goes through ``pd.factorize`` (order of first appearance,
  -1 for a missing value). Callers use only the equality of codes, never their order.

  Args:
    column: A ``user`` or ``item`` column of a universal frame.

  Returns:
    ``(codes, uniques)``: ``codes`` a signed integer array (a categorical's own code
    dtype, int8 to int32; int64 from ``pd.factorize``; read-only where it is the
    column's), never to be written to.
  """
  if isinstance(column.dtype, pd.CategoricalDtype):
    codes = column.array.codes   # a read-only view (``.cat.codes`` copies)
    if len(codes) and codes.min() >= 0:
      cats = column.cat.categories
      used = used_codes(codes, len(cats))
      if used.all():
        return codes, cats
      renumber = np.cumsum(used, dtype=codes.dtype) - 1
      return renumber[codes], cats[used]
  codes, uniques = pd.factorize(column)
  return codes.astype(np.int64, copy=False), pd.Index(uniques)


def used_codes(codes: np.ndarray, n: int) -> np.ndarray:
  """bool[n], True at every code in ``codes`` (all in ``0..n-1``).

  One byte per code, set by a scatter: where ``bincount`` adds into 8-byte counters
  (8x the table, out of the caches sooner as ``n`` grows), the flags of 600k users
  fit in the core's cache.
  """
  used = np.zeros(n, dtype=bool)
  used[codes] = True
  return used


def deduplicate(df: pd.DataFrame, *, name: str) -> tuple[pd.DataFrame, int]:
  """Drops duplicate (user, item) pairs with one documented policy.

  Policy: keep the row with the latest ``timestamp``; among rows with equal
  timestamps (e.g. all unknown, -1) keep the last one in file (row) order. The
  surviving rows keep their original relative order. The number of dropped
  rows is logged.

  Args:
    df: A universal frame.
    name: Data set name for the log line.

  Returns:
    ``(deduplicated frame with a fresh RangeIndex, number of rows dropped)``.
  """
  if len(df) == 0:
    return df.reset_index(drop=True), 0
  keys = pair_keys(df)[0]
  drop = duplicate_losers(keys, df["timestamp"].to_numpy(dtype=np.int64))
  n_dropped = int(drop.sum())
  if n_dropped == 0:
    logging.info("%s: no duplicate (user, item) pairs among %d rows", name, len(df))
    return df.reset_index(drop=True), 0
  logging.warning("%s: dropped %d duplicate (user, item) rows (kept the latest timestamp, "
                  "ties: last in file order); %d rows remain", name, n_dropped,
                  len(df) - n_dropped)
  return df.loc[~drop].reset_index(drop=True), n_dropped


def validate(df: pd.DataFrame, *, name: str,
             rating_range: RatingRange = (0.0, 5.0)) -> None:
  """Checks that a frame is a well-formed, non-empty universal frame.

  Args:
    df: The frame.
    name: Data set / file name used in messages.
    rating_range: Inclusive (lo, hi) bound for ratings, or None for any finite
      number.

  Raises:
    DataError: naming the first problem (row numbers are 0-based frame rows).
  """
  validate_frame_shape(df, name=name)
  for col in ("user", "item"):
    check_ids(*factorize_ids(df[col]), name=name, field=col)
  validate_values(df, name=name, rating_range=rating_range)


def validate_frame_shape(df: pd.DataFrame, *, name: str) -> None:
  """Checks type, columns and non-emptiness of a universal frame.

  Args:
    df: The frame.
    name: Data set name for messages.

  Raises:
    DataError: not a DataFrame, missing columns, or no rows (empty domain).
  """
  if not isinstance(df, pd.DataFrame):
    raise DataError(name, f"expected a pandas DataFrame, got {type(df).__name__}")
  missing = [c for c in COLUMNS if c not in df.columns]
  if missing:
    raise DataError(name, f"missing column(s) {missing}; expected {list(COLUMNS)}")
  if len(df) == 0:
    raise DataError(name, "empty domain: no interactions")


def check_ids(codes: np.ndarray, uniques, *, name: str, field: str) -> None:
  """Checks factorised ids: no missing values, only non-empty strings.

  Working on :func:`factorize_ids` output makes the string checks run over the
  distinct ids only.

  Args:
    codes: Codes from :func:`factorize_ids` (-1 = missing).
    uniques: The distinct values.
    name: Data set name for messages.
    field: Column name for messages.

  Raises:
    DataError: naming the first bad row (0-based).
  """
  if (codes < 0).any():
    raise DataError(name, f"missing id in row {int(np.flatnonzero(codes < 0)[0])}",
                    field=field)
  if isinstance(getattr(uniques, "dtype", None), pd.StringDtype):
    # Every value is a str or missing: one vectorised comparison, no Python loop.
    empty = np.asarray(uniques.isna() | (uniques == ""), dtype=bool)
  else:
    empty = np.array([not isinstance(u, str) or u == "" for u in uniques], dtype=bool)
  if empty.any():
    bad_code = int(np.flatnonzero(empty)[0])
    row = int(np.flatnonzero(codes == bad_code)[0])
    raise DataError(name, f"empty or non-string id {uniques[bad_code]!r} in row {row}",
                    field=field)


def validate_values(df: pd.DataFrame, *, name: str, rating_range: RatingRange) -> None:
  """The rating and timestamp part of :func:`validate`.

  Args:
    df: A frame with ``rating`` and ``timestamp`` columns.
    name: Data set name for messages.
    rating_range: Inclusive bounds, or None for any finite rating.

  Raises:
    DataError: on the first bad row.
  """
  r = pd.to_numeric(df["rating"], errors="coerce").to_numpy(dtype=np.float64)
  ok = np.isfinite(r)
  if rating_range is not None:
    ok &= (r >= rating_range[0]) & (r <= rating_range[1])
  if not ok.all():
    row = int(np.flatnonzero(~ok)[0])
    rng_txt = (f" in [{rating_range[0]:g}, {rating_range[1]:g}]" if rating_range is not None
               else "")
    raise DataError(name, f"row {row}: expected a finite rating{rng_txt}, got "
                    f"{df['rating'].iloc[row]!r}", field="rating")
  if not np.issubdtype(df["timestamp"].dtype, np.integer):
    raise DataError(name, f"timestamp column has dtype {df['timestamp'].dtype}, expected int64",
                    field="timestamp")
