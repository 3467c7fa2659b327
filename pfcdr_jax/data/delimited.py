"""Reading delimited text tables fast, and naming the first bad line when one is malformed.

Parsing strategy: a fast vectorised pandas pass reads the whole file; if it
fails or any value is malformed, a slow per-line scanner re-reads the file only
to report the *first* bad line as a :class:`DataError` with file, line number,
field and what was expected.

:func:`read_text_bytes` reads a text file as checked UTF-8 bytes (gzip found by its
magic bytes and decompressed).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
import zlib
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import RatingRange
from pfcdr_jax.data.line_scanner import _NamedSplit, _line_splitter, scan_lines

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
