"""Advisory file locks: one run per workdir, one writer per stage-cache entry.

``with file_lock(path): ...`` holds an exclusive ``fcntl.flock`` on ``path`` (created if
absent; it holds the owner's pid and command for the message others see). A second
holder waits; while it waits it says once which process holds the lock. The lock goes
with the process: a run killed with -9 releases it, so no stale lock blocks later runs.
POSIX only (Linux, macOS); elsewhere the lock is a no-op with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Iterator

try:
  import fcntl
except ImportError:  # pragma: no cover - Windows
  fcntl = None

log = logging.getLogger(__name__)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, what: str = "", poll_s: float = 0.2
              ) -> Iterator[None]:
  """Holds an exclusive lock on `path` for the ``with`` block (waits for other holders).

  Args:
    path: the lock file (its directory is created).
    what: what the lock protects, for the waiting message (default: the path).
    poll_s: seconds between attempts while another process holds it.
  """
  path = Path(path)
  if fcntl is None:  # pragma: no cover
    log.warning("file locks are not supported here; %s is not protected", path)
    yield
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    said = False
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if not said:
          log.warning("waiting for %s: held by %s", what or path, _holder(path))
          said = True
        time.sleep(poll_s)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode())
    try:
      yield
    finally:
      os.ftruncate(fd, 0)
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def _holder(path: Path) -> str:
  try:
    text = path.read_text().strip()
  except OSError:
    text = ""
  return text or "another process"
