"""The slow per-line scanner that names the first malformed line of a delimited file.

:func:`delimited.parse_delimited` runs it only after its fast pandas pass failed or
found a bad value; it raises a :class:`DataError` with the file, line number, field
and what was expected.
"""

from __future__ import annotations

import csv
import math
from typing import Callable, Iterable, Optional, Sequence

from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import RatingRange


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


class _NamedSplit:
  """A line splitter that knows how to name its delimiter in messages."""

  def __init__(self, fn, sep_name):
    self.fn = fn
    self.sep_name = sep_name

  def __call__(self, line):
    return self.fn(line)
