"""Atomic on-disk cache of finished pipeline stages.

A stage's result (a dict of numpy arrays plus JSON metadata) is stored under a
key that hashes everything the stage depends on: the data hash of the split and
the part of the configuration the stage reads. Writes go to a temporary file in
the same directory and are renamed into place, so an interrupted run never leaves
a file that looks complete: a cache entry either exists whole or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

log = logging.getLogger(__name__)

_META_KEY = "__meta_json__"


def jsonable(obj: Any) -> Any:
  """`obj` as plain JSON types (dataclasses and mappings as dicts, sorted keys)."""
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return {k: jsonable(v) for k, v in dataclasses.asdict(obj).items()}
  if isinstance(obj, Mapping):
    return {str(k): jsonable(v) for k, v in sorted(obj.items())}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, (np.integer,)):
    return int(obj)
  if isinstance(obj, (np.floating,)):
    return float(obj)
  if isinstance(obj, Path):
    return str(obj)
  return obj


def stable_hash(*parts: Any, length: int = 16) -> str:
  """Hex digest of a JSON rendering of `parts` (dataclasses and dicts sorted)."""
  text = json.dumps(jsonable(list(parts)), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:length]


def atomic_write_text(path: Path, text: str) -> None:
  """Writes `text` to `path` through a same-directory temp file and a rename."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


class StageCache:
  """Directory of `<stage>-<key>.npz` files, each written atomically.

  Args:
    root: cache directory; None disables caching (every load misses).
  """

  def __init__(self, root: str | os.PathLike | None):
    self.root = Path(root) if root is not None else None

  def path(self, stage: str, key: str) -> Path | None:
    return None if self.root is None else self.root / f"{stage}-{key}.npz"

  def load(self, stage: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """Returns (arrays, meta) of a finished stage, or None on a miss."""
    path = self.path(stage, key)
    if path is None or not path.exists():
      return None
    try:
      with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != _META_KEY}
        meta = json.loads(bytes(z[_META_KEY]).decode())
    except (OSError, ValueError, KeyError) as e:
      # A file we cannot read is treated as absent and recomputed, not trusted.
      log.warning("cache entry %s is unreadable (%s); recomputing", path, e)
      return None
    log.info("cache hit: %s", path.name)
    return arrays, meta

  def save(self, stage: str, key: str, arrays: Mapping[str, np.ndarray],
           meta: Mapping[str, Any] | None = None) -> None:
    """Stores a finished stage atomically (temp file + rename)."""
    path = self.path(stage, key)
    if path is None:
      return
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[_META_KEY] = np.frombuffer(
        json.dumps(jsonable(dict(meta or {}))).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, **payload)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.unlink(tmp)
      raise


Arrays = dict[str, np.ndarray]


def cached_stage(cache: StageCache, stage: str, key: str,
                 compute: Callable[[], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]],
                 validate: Callable[[Arrays, dict], bool] | None = None,
                 record: dict | None = None) -> tuple[Arrays, dict]:
  """A stage's (arrays, meta): from the cache when a valid entry exists, else computed.

  Args:
    cache: the run's stage cache (a disabled cache always computes).
    stage, key: the entry's name and key (the hash of what the stage reads).
    compute: ``() -> (arrays, meta)``; its result is stored under (stage, key).
    validate: ``(arrays, meta) -> bool``; a cached entry it rejects is recomputed
      with a warning (e.g. parameters of the wrong shape).
    record: the stage's metrics record, updated with ``meta`` (and ``cached=True``
      on a hit).
  """
  record = {} if record is None else record
  hit = cache.load(stage, key)
  if hit is not None:
    arrays, meta = hit
    if validate is None or validate(arrays, meta):
      record.update(meta)
      record["cached"] = True
      return arrays, meta
    log.warning("cached %s-%s is not what this run needs (shapes or contents differ); "
                "recomputing", stage, key)
  arrays, meta = compute()
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  meta = dict(meta)
  cache.save(stage, key, arrays, meta)
  record.update(meta)
  return arrays, meta
