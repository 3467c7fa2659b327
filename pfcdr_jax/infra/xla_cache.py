"""JAX's persistent compilation cache for the experiment scripts.

Every script compiles the same kernels again in each new process (pretraining epochs,
the inversion, the top-k kernels: several seconds of a comedy2drama main job on 2 CPU
cores). JAX can keep compiled executables on disk, keyed by the program, the jax/jaxlib
versions, the backend and the compile options, so a later run with the same shapes
loads them instead (measured: the K-grid kernel 3.6 s cold, 0.8 s from the cache).
It changes no result: a cache hit is the same executable.

Where: ``$PFCDR_XLA_CACHE``, else ``<data dir>/xla`` (``download.default_data_dir``,
``~/.cache/pfcdr_jax`` by default); ``PFCDR_XLA_CACHE=0`` turns it off. Only programs
that took at least ``MIN_COMPILE_S`` to compile are stored, so tiny ones do not fill
the directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax

from pfcdr_jax.data import download

MIN_COMPILE_S = 0.5
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
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
  return path
