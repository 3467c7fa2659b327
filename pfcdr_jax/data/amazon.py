"""Amazon product reviews 2014 (McAuley et al.), 5-core subsets: the PFCDR paper's data.

Files, looked up in ``<data_dir>/amazon/`` (then ``<data_dir>/``) in this order:

1. ``reviews_<Category>_5.json.gz``: one JSON object per line with (at least)
   ``reviewerID``, ``asin``, ``overall`` (1..5) and ``unixReviewTime``.
2. ``ratings_<Category>.csv``: ``user,item,rating,timestamp`` without header.
   Note: SNAP's ratings-only files hold *all* ratings of a category, not the
   5-core subset, so their counts differ from the paper's Table 2.

When neither exists (and ``download=True``), the 5-core reviews file is
downloaded from the Stanford SNAP site (``AMAZON_URL``) with a progress bar,
a Content-Length size check and a full gzip integrity check (decompressed to
the end), into ``<data_dir>/amazon/``.

Checksums: SNAP publishes no checksums for these files. The sha256 of each file
is therefore recorded in ``checksums.json`` next to it the first time it is
used (right after a successful download, or the first load of a file placed by
hand), and every later load verifies it against that record; a mismatch raises
:class:`DataError`. ``AMAZON_PINNED_SHA256`` can pin sha256 values in code
(empty for now; pinned values are checked before any recorded ones).
"""

from __future__ import annotations

import csv
import gzip
import json
import queue
import re
import threading
import zlib
from pathlib import Path
from typing import Iterator, Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data import download as dl
from pfcdr_jax.data.checksums import check_gzip, verify_recorded_checksum
from pfcdr_jax.data.delimited import parse_delimited
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike
from pfcdr_jax.data.interactions import STAR_RANGE, categorical_ids, make_frame

AMAZON_TASKS = {
    "book2movie": ("Books", "Movies_and_TV"),
    "book2music": ("Books", "CDs_and_Vinyl"),
    "music2movie": ("CDs_and_Vinyl", "Movies_and_TV"),
}

AMAZON_URL = ("https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
              "reviews_{category}_5.json.gz")

# file name -> sha256. Empty: no official checksums are published; fill in to pin.
AMAZON_PINNED_SHA256: dict[str, str] = {}

_REQUIRED_JSON = ("reviewerID", "asin", "overall", "unixReviewTime")

# Fast path for the published layout (keys in this order, ", " and ": "
# separators). Inside a JSON string every '"' is escaped, so '"overall": '
# can only match a real key. The greedy [^\n]* runs to the end of the line
# and backtracks, which is fast because these keys sit near the end of each
# record (a lazy .*? would test every character of the review text). A block
# with any line it does not match (other key order, escapes in ids, bad JSON)
# is parsed with json.loads instead.
_FAST_LINE = re.compile(
    rb'^\{"reviewerID": "([^"\\\n]+)", "asin": "([^"\\\n]+)",[^\n]*"overall": '
    rb'(-?[0-9][0-9.eE+-]*)[,}][^\n]*"unixReviewTime": (-?[0-9]+)[,}][^\n]*$', re.M)

_BLOCK = 8 << 20  # Decompressed bytes per block.


def reviews_name(category: str) -> str:
  """``reviews_<Category>_5.json.gz``."""
  return f"reviews_{category}_5.json.gz"


def ratings_name(category: str) -> str:
  """``ratings_<Category>.csv``."""
  return f"ratings_{category}.csv"


def _gzip_blocks(path: Path) -> Iterator[bytes]:
  """Yields decompressed blocks; decompression runs in a thread.

  zlib releases the GIL, so decompressing the next block overlaps with parsing
  the current one (about 1.4x faster on 2 cores than doing both in turn).
  """
  q: queue.Queue = queue.Queue(maxsize=4)
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        q.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def reader():
    try:
      with gzip.open(path, "rb") as f:
        while True:
          block = f.read(_BLOCK)
          if not put(block) or not block:
            return
    except BaseException as e:  # pylint: disable=broad-except
      put(e)

  thread = threading.Thread(target=reader, name=f"gunzip-{path.name}", daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if isinstance(item, BaseException):
        if isinstance(item, (EOFError, OSError, zlib.error)):
          raise DataError(path, f"corrupt or truncated gzip file ({type(item).__name__}: "
                          f"{item}); delete it and download it again") from item
        raise item
      if not item:
        return
      yield item
  finally:
    stop.set()
    thread.join(timeout=5)


def _json_block(path: Path, buf: bytes, first_line: int, out: dict) -> None:
  """Slow path for one block: json.loads per line with line-level errors."""
  for offset, raw in enumerate(buf.split(b"\n")):
    lineno = first_line + offset
    if not raw.strip():
      continue
    try:
      obj = json.loads(raw)
    except json.JSONDecodeError as e:
      raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno}); expected one "
                      "review object per line", line=lineno) from None
    except UnicodeDecodeError as e:
      raise DataError(path, f"not valid UTF-8: {e}", line=lineno) from None
    if not isinstance(obj, dict):
      raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
    for key in _REQUIRED_JSON:
      if key not in obj:
        raise DataError(path, f"missing field; expected keys {list(_REQUIRED_JSON)}",
                        line=lineno, field=key)
    user, item, rating, ts = (obj[k] for k in _REQUIRED_JSON)
    for key, value in (("reviewerID", user), ("asin", item)):
      if not isinstance(value, str) or not value:
        raise DataError(path, f"expected a non-empty string, got {value!r}", line=lineno,
                        field=key)
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
      raise DataError(path, f"expected a numeric rating, got {rating!r}", line=lineno,
                      field="overall")
    if (isinstance(ts, bool) or not isinstance(ts, (int, float))
        or not np.isfinite(ts) or ts != int(ts)):
      raise DataError(path, f"expected an integer unix time, got {ts!r}", line=lineno,
                      field="unixReviewTime")
    out["user"].append(user)
    out["item"].append(item)
    out["rating"].append(float(rating))
    out["timestamp"].append(int(ts))
    out["line"].append(lineno)


def read_reviews_json_gz(path: PathLike) -> pd.DataFrame:
  """Parses a ``reviews_<Category>_5.json.gz`` file into the universal frame.

  Fast path: gzip decompression in a background thread and a regular
  expression over whole blocks for the published key layout; any block with a
  line it does not match is re-parsed line by line with ``json.loads``, which
  reports errors with their line number.

  Args:
    path: The gzip file.

  Returns:
    Universal frame (file order, not deduplicated).

  Raises:
    DataError: missing file, truncated/corrupt gzip, invalid JSON, missing
      field, wrong type, or a rating outside 1..5 (with the line number).
  """
  path = Path(path)
  if not path.exists():
    raise DataError(path, "file not found")
  reviews = _ReviewCollector(path)
  for buf in _whole_lines(_gzip_blocks(path)):
    reviews.add(buf)
  users, items, rating, stamp, line = reviews.in_file_order()
  bad = ~((rating >= STAR_RANGE[0]) & (rating <= STAR_RANGE[1]))
  if bad.any():
    k = int(np.flatnonzero(bad)[0])
    raise DataError(path, f"rating {rating[k]:g} out of range [1, 5]", line=int(line[k]),
                    field="overall")
  if len(users) == 0:
    raise DataError(path, "no reviews in file (empty domain)")
  logging.info("%s: parsed %d reviews (%d block(s) needed the slow JSON path)", path,
               len(users), reviews.n_slow_blocks)
  return make_frame(categorical_ids(users), categorical_ids(items), rating, stamp)


def _whole_lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
  """Re-cuts a stream of byte blocks at line ends.

  Args:
    blocks: Consecutive pieces of a file.

  Yields:
    Non-empty buffers that each end with ``b"\\n"`` and hold whole lines, in
    file order; a last line without a terminator gets one.
  """
  rest = b""
  for block in blocks:
    buf = rest + block
    cut = buf.rfind(b"\n")
    if cut < 0:
      rest = buf
      continue
    rest = buf[cut + 1:]
    yield buf[:cut + 1]
  if rest:
    yield rest + b"\n"


def _fast_block(buf: bytes, n_lines: int
                ) -> Optional[tuple[list[str], list[str], np.ndarray, np.ndarray]]:
  """Parses a block of whole lines with :data:`_FAST_LINE`, if every line matches.

  Args:
    buf: Whole lines, each ending with ``b"\\n"``.
    n_lines: Number of lines in ``buf``.

  Returns:
    ``(users, items, ratings float64[n], timestamps int64[n])``, or None when a
    line does not match (or does not decode/convert): use the slow path.
  """
  matches = _FAST_LINE.findall(buf)
  if len(matches) != n_lines:
    return None
  try:
    users = [m[0].decode("utf-8") for m in matches]
    items = [m[1].decode("utf-8") for m in matches]
    ratings = np.array([m[2] for m in matches]).astype(np.float64)
    stamps = np.array([m[3] for m in matches]).astype(np.int64)
  except (UnicodeDecodeError, ValueError):
    return None
  return users, items, ratings, stamps


class _ReviewCollector:
  """Collects the reviews of consecutive whole-line blocks of one file.

  Each block goes through :func:`_fast_block`, or else line by line through
  :func:`_json_block`; every review keeps its 1-based line number.

  Attributes:
    path: The file (for messages).
    fast_parts: ``(first_line, users, items, ratings, timestamps)`` per fast block.
    slow: Lists ``user, item, rating, timestamp, line`` of the slow-path reviews.
    n_slow_blocks: Number of blocks that needed the slow path.
    next_line: Line number of the next block's first line.
  """

  def __init__(self, path: Path):
    self.path = path
    self.fast_parts = []
    self.slow = {"user": [], "item": [], "rating": [], "timestamp": [], "line": []}
    self.n_slow_blocks = 0
    self.next_line = 1

  def add(self, buf: bytes) -> None:
    """Parses the next block (whole lines ending with ``b"\\n"``).

    Raises:
      DataError: a bad line of a slow-path block (see :func:`_json_block`).
    """
    n_lines = buf.count(b"\n")
    fast = _fast_block(buf, n_lines)
    if fast is not None:
      self.fast_parts.append((self.next_line, *fast))
    else:
      self.n_slow_blocks += 1
      _json_block(self.path, buf[:-1], self.next_line, self.slow)
    self.next_line += n_lines

  def in_file_order(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """All reviews so far, in file order.

    Returns:
      ``(users, items, ratings float64[R], timestamps int64[R], lines int64[R])``.
    """
    users, items, ratings, stamps, lines = [], [], [], [], []
    for first, u, i, r, t in self.fast_parts:
      users.extend(u)
      items.extend(i)
      ratings.append(r)
      stamps.append(t)
      lines.append(np.arange(first, first + len(u), dtype=np.int64))
    users.extend(self.slow["user"])
    items.extend(self.slow["item"])
    ratings.append(np.asarray(self.slow["rating"], dtype=np.float64))
    stamps.append(np.asarray(self.slow["timestamp"], dtype=np.int64))
    lines.append(np.asarray(self.slow["line"], dtype=np.int64))
    rating = np.concatenate(ratings)
    stamp = np.concatenate(stamps)
    line = np.concatenate(lines)
    # Slow blocks were appended last; restore file order.
    if self.n_slow_blocks and len(line) and np.any(np.diff(line) < 0):
      order = np.argsort(line, kind="stable")
      users = [users[k] for k in order]
      items = [items[k] for k in order]
      rating, stamp, line = rating[order], stamp[order], line[order]
    return users, items, rating, stamp, line


def read_ratings_csv(path: PathLike) -> pd.DataFrame:
  """Parses a ratings-only ``ratings_<Category>.csv`` (``user,item,rating,timestamp``).

  Args:
    path: The csv file (no header).

  Returns:
    Universal frame (file order, not deduplicated).

  Raises:
    DataError: missing file or the first malformed line (wrong field count,
      non-numeric or out-of-range rating, non-integer timestamp).
  """
  df = parse_delimited(path, sep=",", fields=("user", "item", "rating", "timestamp"),
                       quoting=csv.QUOTE_MINIMAL, rating_range=STAR_RANGE,
                       required=("user", "item", "rating", "timestamp"), sep_name="commas")
  if len(df) == 0:
    raise DataError(path, "no ratings in file (empty domain)")
  logging.info("%s: parsed %d ratings", path, len(df))
  return make_frame(categorical_ids(df["user"]), categorical_ids(df["item"]), df["rating"],
                    df["timestamp"])


def _candidates(category: str, data_dir: Path) -> list[Path]:
  out = []
  for d in (data_dir / "amazon", data_dir):
    out += [d / reviews_name(category), d / ratings_name(category)]
  return out


def locate_amazon_files(categories, data_dir: PathLike, *, download: bool = True,
                        timeout: float = 30.0, progress: bool = True) -> dict[str, Path]:
  """Finds (or downloads) the file of each category.

  Every category is attempted before failing, so one error names all missing
  files.

  Args:
    categories: Category names, e.g. ``("Books", "Movies_and_TV")``.
    data_dir: Root data directory.
    download: Try to download missing files from SNAP.
    timeout: Socket timeout for downloads.
    progress: Show download progress bars.

  Returns:
    ``{category: path}``.

  Raises:
    DownloadError: listing every file that is missing, the URL tried and the
      path to put it at.
  """
  data_dir = Path(data_dir)
  found, missing = {}, []
  for category in dict.fromkeys(categories):
    local = next((p for p in _candidates(category, data_dir) if p.exists()), None)
    if local is not None:
      found[category] = local
      continue
    dest = data_dir / "amazon" / reviews_name(category)
    url = AMAZON_URL.format(category=category)
    if not download:
      missing.append(MissingFile(dest.name, url, str(dest), "download=False"))
      continue
    try:
      found[category] = dl.fetch(url, dest, sha256=AMAZON_PINNED_SHA256.get(dest.name),
                                 timeout=timeout, progress=progress, check=check_gzip)
    except DownloadError as e:
      reason = e.missing[0].reason if e.missing else e.message
      missing.append(MissingFile(dest.name, url, str(dest), reason))
    except DataError as e:
      missing.append(MissingFile(dest.name, url, str(dest), e.message))
  if missing:
    raise DownloadError.from_missing(
        missing, f"Amazon 5-core files not found in {data_dir / 'amazon'} and could not be "
        f"downloaded (alternatively place {', '.join(ratings_name(c) for c in categories)} "
        "there)")
  return found


def load_amazon_file(path: PathLike) -> tuple[pd.DataFrame, dict]:
  """Verifies (trust-on-first-use sha256) and parses one Amazon file.

  Args:
    path: A ``reviews_*_5.json.gz`` or ``ratings_*.csv`` file.

  Returns:
    ``(frame, provenance)`` with provenance ``{"path", "sha256", "format",
    "verification"}``: ``"pinned sha256"``, or ``"unverified"`` (SNAP publishes no
    checksums: the sha256 is recorded on first use and every later use must match it,
    which detects a changed file but cannot vouch for the first copy).

  Raises:
    DataError: checksum mismatch or bad content.
  """
  path = Path(path)
  digest = verify_recorded_checksum(path, pinned=AMAZON_PINNED_SHA256.get(path.name))
  if path.name.endswith(".json.gz"):
    df, fmt = read_reviews_json_gz(path), "reviews_json_gz"
  else:
    df, fmt = read_ratings_csv(path), "ratings_csv"
  pinned = path.name in AMAZON_PINNED_SHA256
  if not pinned:
    logging.warning("%s: no pinned sha256 (SNAP publishes none); recorded as unverified", path)
  return df, {"path": str(path), "sha256": digest, "format": fmt,
              "verification": "pinned sha256" if pinned else "unverified"}


def load_amazon_domain(category: str, data_dir: Optional[PathLike] = None,
                       download: bool = True) -> pd.DataFrame:
  """Loads one Amazon category as a universal frame.

  Args:
    category: E.g. ``"Books"``, ``"Movies_and_TV"``, ``"CDs_and_Vinyl"``.
    data_dir: Root data directory (default :func:`download.default_data_dir`).
    download: Download from SNAP when no local file exists.

  Returns:
    The universal frame (not deduplicated).

  Raises:
    DownloadError: no local file and the download failed.
    DataError: bad content or checksum mismatch.
  """
  data_dir = Path(data_dir) if data_dir is not None else dl.default_data_dir()
  path = locate_amazon_files([category], data_dir, download=download)[category]
  return load_amazon_file(path)[0]
