"""The universal interaction frame, delimited-file parsing, deduplication, validation.

Universal raw format (every loader returns it): a ``pandas.DataFrame`` with
columns ``user`` (str), ``item`` (str), ``rating`` (float32) and ``timestamp``
(int64, -1 when unknown), in file order.

Parsing strategy: a fast vectorised pandas pass reads the whole file; if it
fails or any value is malformed, a slow per-line scanner re-reads the file only
to report the *first* bad line as a :class:`DataError` with file, line number,
field and what was expected.

Duplicate policy (:func:`deduplicate`): for each (user, item) pair keep the
rating with the latest timestamp; among equal timestamps (including unknown
timestamps, -1) keep the last line in file order. The number of dropped rows is
logged and reported.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.errors import DataError, PathLike

COLUMNS = ("user", "item", "rating", "timestamp")

# Accepted header names (compared lower-case, after stripping a RecBole
# ``name:type`` suffix) for each universal column.
COLUMN_ALIASES = {
    "user": ("user", "user_id", "userid", "reviewerid", "uid"),
    "item": ("item", "item_id", "itemid", "movieid", "asin", "iid"),
    "rating": ("rating", "overall", "score"),
    "timestamp": ("timestamp", "unixreviewtime", "time", "ts"),
}
_ALIAS_TO_COLUMN = {a: c for c, aliases in COLUMN_ALIASES.items() for a in aliases}

RatingRange = Optional[tuple[float, float]]

# Stars of the Amazon and MovieLens formats.
STAR_RANGE = (1.0, 5.0)


def make_frame(user, item, rating, timestamp=None) -> pd.DataFrame:
  """Builds a universal interaction frame with the canonical dtypes.

  Args:
    user: Sequence of user ids (converted to str).
    item: Sequence of item ids (converted to str).
    rating: Sequence of ratings (converted to float32).
    timestamp: Sequence of integer timestamps, or None for unknown (-1).

  Returns:
    DataFrame with columns ``user, item, rating, timestamp``.
  """
  rating = np.asarray(rating, dtype=np.float32)
  if timestamp is None:
    timestamp = np.full(len(rating), -1, dtype=np.int64)
  else:
    timestamp = np.asarray(timestamp, dtype=np.int64)
  return pd.DataFrame({
      "user": pd.Series(user, dtype=str).reset_index(drop=True),
      "item": pd.Series(item, dtype=str).reset_index(drop=True),
      "rating": rating,
      "timestamp": timestamp,
  })


def canonical_column(name: str) -> str:
  """Lower-cases a header name and strips a RecBole ``:type`` suffix and quotes.

  Args:
    name: Raw header field, e.g. ``"user_id:token"``.

  Returns:
    E.g. ``"user_id"``.
  """
  name = name.strip().strip('"').strip("'").strip()
  name = name.split(":", 1)[0]
  return name.strip().lower()


# ----------------------------------------------------------------------------
# Generic delimited parsing: fast pandas pass + per-line scanner for errors.


GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def is_gzip(path: PathLike) -> bool:
  """True when the file starts with gzip's magic bytes (whatever its name says)."""
  with open(path, "rb") as f:
    return f.read(2) == GZIP_MAGIC


def _open_text(path: PathLike, encoding: str):
  if is_gzip(path):
    return gzip.open(path, "rt", encoding=encoding, newline="")
  return open(path, "r", encoding=encoding, newline="")


def read_text_bytes(path: PathLike) -> bytes:
  """A text file's bytes, checked: gzip (found by its magic bytes) decompressed, a UTF-8
  byte-order mark removed, the rest valid UTF-8.

  Raises:
    DataError: naming the path for a missing file, a directory, a read failure
      (permissions, I/O), corrupt or truncated gzip data, and an invalid UTF-8 byte
      (its offset and line).
  """
  path = Path(path)
  if not path.exists():
    raise DataError(path, "file not found")
  if path.is_dir():
    raise DataError(path, "is a directory; expected an interaction file")
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(path, f"cannot read the file ({type(e).__name__}: {e.strerror or e})") from e
  if data[:2] == GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as e:
      raise DataError(path, "gzip data (found by its magic bytes) is corrupt or truncated "
                      f"({type(e).__name__}: {e})") from e
  if data.startswith(_BOM):
    logging.info("%s: skipping a UTF-8 byte-order mark", path)
    data = data[len(_BOM):]
  try:
    data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise DataError(path, f"byte 0x{data[e.start]:02x} at offset {e.start} is not UTF-8 "
                    "text (expected a UTF-8 CSV/TSV file, plain or gzip)", line=line) from e
  return data


def _line_splitter(sep: str, quoting: int) -> Callable[[str], list[str]]:
  if sep == r"\s+":
    return lambda line: line.split()
  if quoting == csv.QUOTE_NONE or len(sep) != 1:
    return lambda line: line.split(sep)
  return lambda line: next(csv.reader([line], delimiter=sep, quoting=quoting))


def scan_lines(lines: Iterable[str], *, path: PathLike, fields: Sequence[str],
               split: Callable[[str], list[str]], header_lines: int = 0,
               required: Sequence[str] = (), rating_field: Optional[str] = "rating",
               rating_range: RatingRange = None,
               int_fields: Sequence[str] = ("timestamp",),
               float_fields: Sequence[str] = ()) -> None:
  """Per-line validator: raises a DataError for the first malformed line.

  Slow (pure Python); only used after the fast path found a problem.

  Args:
    lines: The file's lines (with or without line terminators).
    path: File name for messages.
    fields: Field names in file order; each line must have exactly this many.
    split: Splits a line into fields.
    header_lines: Number of leading header lines to skip.
    required: Fields that must be non-empty (default: all).
    rating_field: Name of the rating field, checked to be a finite number.
    rating_range: Inclusive (lo, hi) for ratings, or None for any finite number.
    int_fields: Fields that must hold integers (e.g. unix timestamps).
    float_fields: Other fields that must hold finite numbers.

  Raises:
    DataError: describing the first bad line.
  """
  required = tuple(required) or tuple(fields)
  idx = {f: i for i, f in enumerate(fields)}
  for lineno, raw in enumerate(lines, start=1):
    if lineno <= header_lines:
      continue
    line = raw.rstrip("\r\n")
    if not line.strip():
      continue
    try:
      parts = split(line)
    except (csv.Error, StopIteration) as e:
      raise DataError(path, f"cannot split line: {e}", line=lineno) from e
    if len(parts) != len(fields):
      raise DataError(path, f"expected {len(fields)} fields ({', '.join(fields)}) separated "
                      f"by {_sep_name(split)}, found {len(parts)}: {line[:120]!r}", line=lineno)
    for f in required:
      if not parts[idx[f]]:
        raise DataError(path, "empty value", line=lineno, field=f)
    if rating_field is not None:
      _check_rating(parts[idx[rating_field]], path, lineno, rating_field, rating_range)
    for f in int_fields:
      if f in idx:
        _check_number(parts[idx[f]], path, lineno, f, integer=True)
    for f in float_fields:
      _check_number(parts[idx[f]], path, lineno, f, integer=False)


def _sep_name(split) -> str:
  return getattr(split, "sep_name", "the delimiter")


def _check_number(value: str, path, lineno: int, field: str, *, integer: bool) -> None:
  """Raises a DataError unless ``value`` is a finite number (an integer if ``integer``).

  Args:
    value: The raw field text (surrounding whitespace is ignored).
    path: File name for messages.
    lineno: 1-based line number for messages.
    field: Field name for messages.
    integer: Also require an integral value (e.g. unix timestamps).

  Raises:
    DataError: "expected an integer" / "expected a finite number".
  """
  value = value.strip()
  try:
    x = float(value)
  except ValueError:
    x = math.nan
  if not math.isfinite(x) or (integer and x != int(x)):
    expected = "an integer" if integer else "a finite number"
    raise DataError(path, f"expected {expected}, got {value!r}", line=lineno, field=field)


def _check_rating(value, path, lineno, field, rating_range: RatingRange) -> float:
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise DataError(path, f"expected a numeric rating, got {value!r}", line=lineno,
                    field=field) from None
  if not math.isfinite(x):
    raise DataError(path, f"expected a finite rating, got {value!r}", line=lineno, field=field)
  if rating_range is not None and not rating_range[0] <= x <= rating_range[1]:
    raise DataError(path, f"rating {value!r} out of range [{rating_range[0]:g}, "
                    f"{rating_range[1]:g}]", line=lineno, field=field)
  return x


def parse_delimited(path: PathLike, *, sep: str, fields: Sequence[str],
                    header_lines: int = 0, encoding: str = "utf-8",
                    quoting: int = csv.QUOTE_NONE, data: Optional[bytes] = None,
                    lines_for_errors: Optional[Callable[[], Iterator[str]]] = None,
                    required: Sequence[str] = ("user", "item", "rating"),
                    rating_range: RatingRange = None,
                    int_fields: Sequence[str] = ("timestamp",),
                    float_fields: Sequence[str] = (), display_path: Optional[str] = None,
                    sep_name: Optional[str] = None) -> pd.DataFrame:
  """Reads a delimited text table quickly; reports bad lines precisely.

  Args:
    path: The file (plain or ``.gz``); also used in messages.
    sep: Single-character delimiter, or ``r"\\s+"`` for runs of whitespace.
    fields: Field names in file order (exactly this many per line).
    header_lines: Leading lines to skip.
    encoding: Text encoding.
    quoting: A ``csv.QUOTE_*`` constant.
    data: The file contents (possibly pre-processed) to parse instead of
      reading ``path``.
    lines_for_errors: Callable returning the *original* lines, used by the
      error scanner when ``data`` was pre-processed; defaults to the file.
    required: Fields that must be non-empty.
    rating_range: Inclusive (lo, hi) for the ``rating`` field, or None for any
      finite number.
    int_fields: Fields that must hold integers (parsed to int64).
    float_fields: Other numeric fields (parsed to float64).
    display_path: Name used in messages instead of ``path``.
    sep_name: Human name of the delimiter for messages.

  Returns:
    DataFrame with one column per field: ``rating`` and ``float_fields`` as
    float64, ``int_fields`` as int64, everything else as str.

  Raises:
    DataError: missing file or the first malformed line.
  """
  shown = display_path or os.fspath(path)
  fields = _checked_fields(path, fields, shown=shown, data=data)
  numeric = [f for f in fields if f == "rating" or f in int_fields or f in float_fields]

  def report_first_bad_line() -> None:
    options = _scan_options(shown, fields, sep=sep, quoting=quoting, sep_name=sep_name,
                            header_lines=header_lines, required=required,
                            rating_range=rating_range, int_fields=int_fields,
                            float_fields=float_fields)
    _scan_source(path, options, shown=shown, encoding=encoding, data=data,
                 lines_for_errors=lines_for_errors)

  try:
    df = _read_table_fast(path, data, sep=sep, fields=fields, numeric=numeric,
                          header_lines=header_lines, quoting=quoting, encoding=encoding)
  except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError,
          EOFError, OSError) as e:
    # ValueError covers non-numeric values in numeric columns and ParserError
    # wrong field counts; the scanner finds the line.
    report_first_bad_line()
    raise DataError(shown, f"cannot parse ({type(e).__name__}: {e})") from e
  if not _fast_values_ok(df, required=required, numeric=numeric, int_fields=int_fields,
                         rating_range=rating_range):
    report_first_bad_line()
    raise DataError(shown, "malformed values found by the fast parser but not by the "
                    "line scanner (please report)")
  for f in int_fields:
    if f in df:
      df[f] = df[f].to_numpy().astype(np.int64)
  return df


def _checked_fields(path: PathLike, fields: Sequence[str], *, shown: str,
                    data: Optional[bytes]) -> list[str]:
  """The field names as a list, after checking that the input exists.

  Args:
    path: The file; only checked to exist when ``data`` is None.
    fields: Field names in file order.
    shown: Name used in messages.
    data: In-memory contents, or None to read ``path``.

  Returns:
    ``list(fields)``.

  Raises:
    DataError: "file not found", or duplicate field names (line 1).
  """
  if data is None and not Path(path).exists():
    raise DataError(shown, "file not found")
  fields = list(fields)
  if len(set(fields)) != len(fields):
    raise DataError(shown, f"duplicate column names {fields}", line=1)
  return fields


def _read_table_fast(path: PathLike, data: Optional[bytes], *, sep: str, fields: list[str],
                     numeric: list[str], header_lines: int, quoting: int,
                     encoding: str) -> pd.DataFrame:
  """The fast vectorised pass of :func:`parse_delimited` (pandas C parser).

  Args:
    path: The file (``.gz`` is decompressed), used when ``data`` is None.
    data: In-memory contents to parse instead of ``path`` (never decompressed).
    sep: Delimiter as given to pandas.
    fields: Field names in file order.
    numeric: Fields parsed as float64; all others are str.
    header_lines: Leading lines to skip.
    quoting: A ``csv.QUOTE_*`` constant.
    encoding: Text encoding.

  Returns:
    The raw table, one column per field (no value checks yet).

  Raises:
    ValueError, pd.errors.ParserError, pd.errors.ParserWarning,
    UnicodeDecodeError, EOFError, OSError: whatever pandas raises on bad input
    (a ParserWarning, e.g. a too-long first row, is raised as an error).
  """
  dtype = {f: (np.float64 if f in numeric else str) for f in fields}
  source = io.BytesIO(data) if data is not None else path
  with warnings.catch_warnings():
    # pandas only *warns* (and drops data) when the first row is too long.
    warnings.simplefilter("error", pd.errors.ParserWarning)
    return pd.read_csv(source, sep=sep, header=None, skiprows=header_lines, names=fields,
                       dtype=dtype, na_filter=False, quoting=quoting, encoding=encoding,
                       index_col=False, engine="c", skip_blank_lines=True,
                       compression="infer" if data is None else None)


def _fast_values_ok(df: pd.DataFrame, *, required: Sequence[str], numeric: list[str],
                    int_fields: Sequence[str], rating_range: RatingRange) -> bool:
  """Vectorised value checks of :func:`parse_delimited` on the fast-pass table.

  Args:
    df: Output of :func:`_read_table_fast`.
    required: Fields that must be non-empty (checked on str columns only).
    numeric: The float64 columns; each must be finite.
    int_fields: Numeric fields that must also be integral.
    rating_range: Inclusive bounds for ``rating``, or None.

  Returns:
    False when any value is malformed (the line scanner then finds it).
  """
  bad = False
  for f in required:
    if f in df and f not in numeric and df[f].eq("").any():
      bad = True
  for f in numeric:
    col = df[f].to_numpy()
    ok = np.isfinite(col)
    if f in int_fields:
      ok &= np.floor(col) == col
    if f == "rating" and rating_range is not None:
      ok &= (col >= rating_range[0]) & (col <= rating_range[1])
    if not ok.all():
      bad = True
  return not bad


def _scan_options(shown: str, fields: list[str], *, sep: str, quoting: int,
                  sep_name: Optional[str], header_lines: int, required: Sequence[str],
                  rating_range: RatingRange, int_fields: Sequence[str],
                  float_fields: Sequence[str]) -> dict:
  """Keyword arguments of :func:`scan_lines` (all but ``lines``) for one table.

  Args:
    shown: Name used in messages.
    fields: Field names in file order.
    sep: Delimiter, as for :func:`parse_delimited`.
    quoting: A ``csv.QUOTE_*`` constant.
    sep_name: Human name of the delimiter, or None for ``repr(sep)``.
    header_lines: Leading lines to skip.
    required: Fields that must be non-empty.
    rating_range: Inclusive bounds for ``rating``, or None.
    int_fields: Integer fields (those not in ``fields`` are dropped).
    float_fields: Other numeric fields (those not in ``fields`` are dropped).

  Returns:
    The keyword dict.
  """
  split = _NamedSplit(_line_splitter(sep, quoting), sep_name or repr(sep))
  return dict(path=shown, fields=fields, split=split, header_lines=header_lines,
              required=required, rating_field="rating" if "rating" in fields else None,
              rating_range=rating_range, int_fields=[f for f in int_fields if f in fields],
              float_fields=[f for f in float_fields if f in fields])


def _scan_source(path: PathLike, options: dict, *, shown: str, encoding: str,
                 data: Optional[bytes],
                 lines_for_errors: Optional[Callable[[], Iterator[str]]]) -> None:
  """Runs :func:`scan_lines` over the original lines of a table that failed the fast pass.

  The lines come from ``lines_for_errors()`` if given, else from ``data``
  (decoded, undecodable bytes replaced), else from the file.

  Args:
    path: The file (plain or ``.gz``), read when neither of the others is given.
    options: Keyword arguments from :func:`_scan_options`.
    shown: Name used in messages.
    encoding: Text encoding.
    data: In-memory contents, or None.
    lines_for_errors: Callable returning the original lines, or None.

  Raises:
    DataError: the first bad line; or, reading the file, undecodable text or a
      corrupt gzip file. Returns normally when every line is fine.
  """
  if lines_for_errors is not None:
    scan_lines(lines_for_errors(), **options)
  elif data is not None:
    scan_lines(io.StringIO(data.decode(encoding, errors="replace")), **options)
  else:
    try:
      with _open_text(path, encoding) as f:
        scan_lines(f, **options)
    except UnicodeDecodeError as e:
      raise DataError(shown, f"not valid {encoding} text: {e}") from e
    except (EOFError, gzip.BadGzipFile) as e:
      raise DataError(shown, f"corrupt or truncated gzip file: {e}") from e


class _NamedSplit:
  """A line splitter that knows how to name its delimiter in messages."""

  def __init__(self, fn, sep_name):
    self.fn = fn
    self.sep_name = sep_name

  def __call__(self, line):
    return self.fn(line)


# ----------------------------------------------------------------------------
# Custom tables with a header.


def sniff_delimiter(header: str) -> str:
  """Guesses the delimiter of a header line.

  Tab, comma, semicolon and pipe are tried in this order of preference by
  count; a header with none of them is split on whitespace.

  Args:
    header: The header line.

  Returns:
    The delimiter, or ``r"\\s+"`` for whitespace.
  """
  counts = {d: header.count(d) for d in ("\t", ",", ";", "|")}
  best = max(counts, key=lambda d: counts[d])
  if counts[best] > 0:
    return best
  return r"\s+"


def read_interaction_table(path: PathLike, *, rating_range: RatingRange = None
                          ) -> pd.DataFrame:
  """Reads any CSV/TSV interaction file with a header row.

  The delimiter is sniffed from the header (tab, comma, semicolon, pipe or
  whitespace). Header names are matched case-insensitively after stripping a
  RecBole ``name:type`` suffix: user = user/user_id/userId/reviewerID,
  item = item/item_id/movieId/asin, rating = rating/overall, and the optional
  timestamp = timestamp/unixReviewTime. Other columns are ignored. Standard CSV
  quoting is honoured for single-character delimiters other than tab.

  Args:
    path: The file (``.gz`` allowed).
    rating_range: Inclusive (lo, hi) bound for ratings; None accepts any finite
      number.

  Returns:
    The universal frame (not deduplicated).

  Raises:
    DataError: missing file, bad header, or the first malformed line.
  """
  path = Path(path)
  data = read_text_bytes(path)
  text = data.decode("utf-8")
  header = next((l.rstrip("\r") for l in text.split("\n") if l.strip()), "")
  if not header:
    raise DataError(path, "file is empty; expected a header naming user, item and rating "
                    "columns", line=1)
  sep = sniff_delimiter(header)
  quoting = csv.QUOTE_NONE if sep in ("\t", r"\s+") else csv.QUOTE_MINIMAL
  raw_names = _line_splitter(sep, quoting)(header)
  names = []
  for i, raw in enumerate(raw_names):
    canon = _ALIAS_TO_COLUMN.get(canonical_column(raw))
    if canon is not None and canon in names:
      raise DataError(path, f"header has two columns for '{canon}' ({raw!r} is the second)",
                      line=1, field=raw)
    names.append(canon if canon is not None else f"_extra{i}_{canonical_column(raw)}")
  for col in ("user", "item", "rating"):
    if col not in names:
      raise DataError(path, f"header {header!r} has no {col} column; expected one of "
                      f"{list(COLUMN_ALIASES[col])} (case-insensitive, ':type' suffix allowed)",
                      line=1, field=col)
  sep_name = {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "pipes"}.get(sep, "whitespace")
  # Blank lines before the header are skipped by pandas too.
  header_lines = _header_offset(text)
  df = parse_delimited(path, sep=sep, fields=names, header_lines=header_lines,
                       quoting=quoting, rating_range=rating_range, data=data,
                       int_fields=("timestamp",) if "timestamp" in names else (),
                       sep_name=sep_name)
  if len(df) == 0:
    raise DataError(path, "no ratings after the header; expected one line per "
                    "(user, item, rating)", line=header_lines + 1)
  _clean_ids(df, path, text, header_lines, _line_splitter(sep, quoting), names)
  n_extra = sum(1 for n in names if n.startswith("_extra"))
  if n_extra:
    logging.info("%s: ignoring %d extra column(s)", path, n_extra)
  logging.info("%s: read %d interactions", path, len(df))
  return make_frame(df["user"], df["item"], df["rating"],
                    df["timestamp"] if "timestamp" in df else None)


def _header_offset(text: str) -> int:
  """Number of lines up to and including the header (leading blank lines count)."""
  for n, line in enumerate(text.split("\n"), start=1):
    if line.strip():
      return n
  return 0


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean_ids(df: pd.DataFrame, path: Path, text: str, header_lines: int,
               split: Callable[[str], list[str]], names: Sequence[str]) -> None:
  """Strips surrounding whitespace from user and item ids (in place, count logged).

  Raises:
    DataError: naming the line and field of the first id that is blank after
      stripping or holds a control character (NUL, tab, bell, ...).
  """
  for field in ("user", "item"):
    raw = df[field]
    stripped = raw.str.strip()
    bad = stripped.eq("") | stripped.str.contains(_CONTROL)
    if bad.any():
      lineno, value = _first_bad_id(text, header_lines, split, names.index(field))
      what = "blank" if not value.strip() else f"{value!r} holds a control character"
      raise DataError(path, f"{field} id {what}; expected a printable, non-empty id",
                      line=lineno, field=field)
    changed = int((stripped != raw).sum())
    if changed:
      logging.warning("%s: stripped surrounding whitespace from %d %s id(s) (\"u0 \" and "
                      "\"u0\" are one %s)", path, changed, field, field)
      df[field] = stripped


def _first_bad_id(text: str, header_lines: int, split: Callable[[str], list[str]],
                  column: int) -> tuple[Optional[int], str]:
  """(line number, raw value) of the first blank or control-character id in `column`."""
  for lineno, line in enumerate(text.split("\n"), start=1):
    if lineno <= header_lines or not line.strip():
      continue
    value = split(line.rstrip("\r"))[column]
    if not value.strip() or _CONTROL.search(value.strip()):
      return lineno, value
  return None, ""


# ----------------------------------------------------------------------------
# Dedup and validation.


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
  order = np.lexsort((np.arange(n), timestamps, keys))
  k = keys[order]
  loser = np.zeros(n, dtype=bool)
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
  ucodes, uniq_u = pd.factorize(df["user"])
  icodes, uniq_i = pd.factorize(df["item"])
  keys = ucodes.astype(np.int64) * max(len(uniq_i), 1) + icodes
  return keys, ucodes, pd.Index(uniq_u), icodes, pd.Index(uniq_i)


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
    check_ids(*pd.factorize(df[col]), name=name, field=col)
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

  Working on ``pd.factorize`` output makes the string checks run over the
  distinct ids only.

  Args:
    codes: Codes from ``pd.factorize`` (-1 = missing).
    uniques: The distinct values.
    name: Data set name for messages.
    field: Column name for messages.

  Raises:
    DataError: naming the first bad row (0-based).
  """
  if (codes < 0).any():
    raise DataError(name, f"missing id in row {int(np.flatnonzero(codes < 0)[0])}",
                    field=field)
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

