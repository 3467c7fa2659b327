"""Reading a user's own interaction table (task ``custom``): a CSV/TSV with a header row.

The delimiter is sniffed from the header, the user, item, rating and optional
timestamp columns are found by name (:data:`COLUMN_ALIASES`), and the ids are
checked and stripped of surrounding whitespace.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Callable, Optional, Sequence

from absl import logging
import pandas as pd

from pfcdr_jax.data.delimited import parse_delimited, read_text_bytes
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import RatingRange, make_frame
from pfcdr_jax.data.line_scanner import _line_splitter

# Accepted header names (compared lower-case, after stripping a RecBole
# ``name:type`` suffix) for each universal column.
COLUMN_ALIASES = {
    "user": ("user", "user_id", "userid", "reviewerid", "uid"),
    "item": ("item", "item_id", "itemid", "movieid", "asin", "iid"),
    "rating": ("rating", "overall", "score"),
    "timestamp": ("timestamp", "unixreviewtime", "time", "ts"),
}
_ALIAS_TO_COLUMN = {a: c for c, aliases in COLUMN_ALIASES.items() for a in aliases}


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
