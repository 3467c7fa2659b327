"""Safe extraction of zip archives (and wheels, which are zip files) into a directory.

:func:`safe_extract` writes only regular files inside the target directory: absolute
names, ``..``, ``.``, drive letters and symlink members are refused by name before
anything is written, and the total uncompressed size is capped.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

from absl import logging

from pfcdr_jax.data.checksums import _CHUNK, _unlink_quietly
from pfcdr_jax.data.errors import DataError, PathLike

# safe_extract's default cap on the uncompressed bytes it writes (ML-1M's zip: 24 MB).
MAX_EXTRACT_BYTES = 4 << 30


def _member_target(out_dir: Path, name: str, zip_path: PathLike) -> Path:
  """Validates a zip member name and returns its path under ``out_dir``."""
  pure = PurePosixPath(name.replace("\\", "/"))
  if (pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts
      or (pure.parts and ":" in pure.parts[0])):
    raise DataError(zip_path, f"unsafe member path {name!r} (absolute or contains '..'); "
                    "refusing to extract", field="member")
  if not pure.parts or pure.parts == (".",) or name.strip("/") in ("", "."):
    raise DataError(zip_path, f"unsafe member path {name!r} (names the target directory "
                    "itself); refusing to extract", field="member")
  target = (out_dir / Path(*pure.parts)).resolve()
  root = out_dir.resolve()
  if target != root and root not in target.parents:
    raise DataError(zip_path, f"member {name!r} would be written outside {root}",
                    field="member")
  return target


def _is_symlink(info: zipfile.ZipInfo) -> bool:
  return stat.S_ISLNK(info.external_attr >> 16)


def safe_extract(zip_path: PathLike, out_dir: PathLike,
                 members: Optional[Sequence[str]] = None, *,
                 max_bytes: int = MAX_EXTRACT_BYTES) -> list[Path]:
  """Extracts (some) members of a zip file, refusing path traversal.

  Every member name is checked before anything is written: absolute paths,
  drive letters and ``..`` components are rejected. Each file is written to a
  ``.part`` file and renamed atomically.

  Args:
    zip_path: The archive (zip or wheel).
    out_dir: Directory to extract into (created).
    members: Member names to extract; None extracts all files.
    max_bytes: Cap on the total uncompressed size of the members written.

  Returns:
    Paths of the extracted files, in the order of ``members`` (or the archive).

  Raises:
    DataError: unsafe member name (absolute, ``..``, ``.``), a symlink member, a
      missing member, more than ``max_bytes`` to write, or a corrupt archive.
  """
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  try:
    zf = zipfile.ZipFile(zip_path)
  except (zipfile.BadZipFile, OSError) as e:
    raise DataError(zip_path, f"not a readable zip archive: {e}") from e
  with zf:
    infos = {i.filename: i for i in zf.infolist()}
    # Check every name first so that a bad archive writes nothing at all.
    for name, info in infos.items():
      _member_target(out_dir, name, zip_path)
      if _is_symlink(info):
        raise DataError(zip_path, f"member {name!r} is a symbolic link; refusing to extract",
                        field="member")
    if members is None:
      wanted = [n for n, i in infos.items() if not i.is_dir()]
    else:
      missing = [m for m in members if m not in infos]
      if missing:
        raise DataError(zip_path, f"archive lacks member(s) {missing}", field="member")
      wanted = list(members)
    total = sum(infos[n].file_size for n in wanted)
    if total > max_bytes:
      raise DataError(zip_path, f"members to extract hold {total} bytes uncompressed, more "
                      f"than the cap of {max_bytes}; refusing to extract", field="member")
    written = []
    for name in wanted:
      target = _member_target(out_dir, name, zip_path)
      target.parent.mkdir(parents=True, exist_ok=True)
      part = target.with_name(target.name + ".part")
      try:
        with zf.open(infos[name]) as src, open(part, "wb") as dst:
          shutil.copyfileobj(src, dst, _CHUNK)
        os.replace(part, target)
      except (zipfile.BadZipFile, OSError, zlib.error) as e:
        _unlink_quietly(part)
        raise DataError(zip_path, f"cannot extract member {name!r}: {e}") from e
      except BaseException:
        _unlink_quietly(part)
        raise
      written.append(target)
  logging.info("Extracted %d file(s) from %s into %s", len(written), zip_path, out_dir)
  return written
