"""JAX's persistent compilation cache for the experiment scripts.

Every script compiles the same kernels again in each new process (pretraining epochs,
the inversion, the top-k kernels: several seconds of a comedy2drama main job on 2 CPU
cores). JAX can keep compiled executables on disk, keyed by the program, the jax/jaxlib
versions, the backend and the compile options, so a later run with the same shapes
loads them instead (measured: the K-grid kernel 3.6 s cold, 0.8 s from the cache).
It changes no result: a cache hit is the same executable.

Where: ``$PFCDR_XLA_CACHE``, else ``<data dir>/xla`` (``download.default_data_dir``,
``~/.cache/pfcdr_jax`` by default); ``PFCDR_XLA_CACHE=0`` turns it off.

Every program is stored (``MIN_COMPILE_S = 0``), the small ones too: a comedy2drama main
job compiles about 170 programs, most of them under 0.1 s, and on 2 CPU cores their
compiles added up to 3.8 s of a warm run (0.8 s when loaded from the cache; the 170
entries take 1.5 MB). The directory is kept under ``MAX_BYTES``: when it is larger at
start-up, the least recently written entries are removed until it holds ``TRIM_TO`` of
that (JAX's own size limit needs the ``filelock`` package, which the project does not
install).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import jax

from pfcdr_jax.data import download

MIN_COMPILE_S = 0.0
MAX_BYTES = 1 << 30
TRIM_TO = 0.75
ENV = "PFCDR_XLA_CACHE"


def cache_dir() -> Path | None:
  """The cache directory to use, or None when ``$PFCDR_XLA_CACHE`` is ``0``/empty-off."""
  env = os.environ.get(ENV)
  if env is not None and env.strip().lower() in ("0", "off", "false", "no"):
    return None
  return Path(env).expanduser() if env else download.default_data_dir() / "xla"


def enable() -> Path | None:
  """Turns on the persistent compilation cache (see the module docstring).

  Returns:
    The directory used, or None when turned off or the directory cannot be created
    (then compilation simply is not cached).
  """
  path = cache_dir()
  if path is None:
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None
  prune(path)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
  return path


def prune(path: Path, max_bytes: int | None = None, trim_to: float = TRIM_TO) -> int:
  """Removes the oldest files (by modification time) of a cache directory above
  ``max_bytes`` (None: ``MAX_BYTES``), down to ``trim_to * max_bytes``; returns how many
  were removed.

  A file another process removes meanwhile, or cannot be removed, is skipped: a missing
  entry is only a cache miss.
  """
  max_bytes = MAX_BYTES if max_bytes is None else max_bytes
  files = []
  for f in path.iterdir():
    try:
      st = f.stat()
    except OSError:
      continue
    if stat.S_ISREG(st.st_mode):
      files.append((st.st_mtime, st.st_size, f))
  total = sum(size for _, size, _ in files)
  if total <= max_bytes:
    return 0
  removed = 0
  for _, size, f in sorted(files, key=lambda t: (t[0], t[2].name)):
    if total <= trim_to * max_bytes:
      break
    try:
      f.unlink()
    except OSError:
      continue
    total -= size
    removed += 1
  return removed
