"""File integrity: sha256 and md5 digests, gzip completeness, trust-on-first-use records.

:func:`verify_recorded_checksum` checks a file against a sha256 pinned in code, or
records its sha256 in ``checksums.json`` next to it on first use and checks every later
use against that record; :func:`write_json_atomic` writes such records via a temp file
and ``os.replace``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Optional

from absl import logging

from pfcdr_jax.data.errors import DataError, PathLike

_CHUNK = 1 << 20  # 1 MiB: big enough to be fast, small enough for a smooth bar.


def _hash_file(path: PathLike, algo: str) -> str:
  """Hex digest of a file, read in 1 MiB blocks.

  Args:
    path: The file.
    algo: A :mod:`hashlib` algorithm name, e.g. ``"sha256"`` (or ``"md5"``,
      only to compare with published md5 sums).

  Returns:
    The lowercase hex digest.
  """
  h = hashlib.new(algo)
  with open(path, "rb") as f:
    while True:
      block = f.read(_CHUNK)
      if not block:
        break
      h.update(block)
  return h.hexdigest()


def sha256_file(path: PathLike) -> str:
  """Lowercase hex sha256 of the file at ``path`` (read in 1 MiB blocks)."""
  return _hash_file(path, "sha256")


def md5_file(path: PathLike) -> str:
  """Lowercase hex md5 of the file at ``path``; only to compare with published md5 sums."""
  return _hash_file(path, "md5")


def check_gzip(path: PathLike) -> None:
  """Decompresses a gzip file to the end to prove it is complete and intact.

  Args:
    path: The ``.gz`` file.

  Raises:
    DataError: naming the file if it is truncated or corrupt.
  """
  try:
    with gzip.open(path, "rb") as f:
      while f.read(8 * _CHUNK):
        pass
  except (EOFError, OSError, zlib.error) as e:
    raise DataError(path, f"corrupt or truncated gzip file ({type(e).__name__}: {e}); "
                    "delete it and download it again") from e


def _unlink_quietly(path: Path) -> None:
  try:
    path.unlink()
  except FileNotFoundError:
    pass


def load_checksums(path: PathLike) -> dict[str, str]:
  """Reads a ``checksums.json`` (``{file name: sha256}``); {} when absent.

  Args:
    path: The json file.

  Returns:
    The mapping.

  Raises:
    DataError: the file is not a json object of strings.
  """
  path = Path(path)
  if not path.exists():
    return {}
  try:
    data = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise DataError(path, f"invalid JSON: {e.msg}", line=e.lineno) from e
  if not isinstance(data, dict) or not all(
      isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
    raise DataError(path, "expected a JSON object mapping file names to sha256 strings")
  return data


def write_json_atomic(obj, path: PathLike) -> None:
  """Writes ``obj`` as indented, key-sorted JSON via a temp file + ``os.replace``.

  Args:
    obj: JSON-serialisable object.
    path: Destination.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".part")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    _unlink_quietly(Path(tmp))
    raise


def verify_recorded_checksum(path: PathLike, *, pinned: Optional[str] = None) -> str:
  """Trust-on-first-use sha256 check against ``checksums.json`` next to ``path``.

  If a pinned sha256 is given it must match. Otherwise, the first time a file
  is used its sha256 is recorded in ``checksums.json`` in the same directory,
  and every later use must reproduce it (so silent corruption or replacement
  of a cached file is detected).

  Args:
    path: The data file.
    pinned: Hex sha256 fixed in code, or None.

  Returns:
    The file's sha256.

  Raises:
    DataError: the sha256 differs from the pinned or recorded one.
  """
  path = Path(path)
  digest = sha256_file(path)
  if pinned is not None and digest != pinned.lower():
    raise DataError(path, f"sha256 {digest} != pinned {pinned.lower()}; "
                    "delete the file to download it again")
  table_path = path.parent / "checksums.json"
  table = load_checksums(table_path)
  recorded = table.get(path.name)
  if recorded is None:
    table[path.name] = digest
    write_json_atomic(table, table_path)
    logging.info("Recorded sha256 %s of %s in %s", digest, path.name, table_path)
  elif recorded != digest:
    raise DataError(path, f"sha256 {digest} != {recorded} recorded in {table_path} on first "
                    "use; the file changed. Delete it (and its entry) to fetch it again")
  return digest
