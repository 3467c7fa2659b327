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
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pfcdr_jax.infra import locks

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


def read_json(path: str | Path, label: str = "") -> Any:
  """The JSON in `path`; ValueError ``"<label><path>: <why>"`` when unreadable or not
  JSON (one line for the scripts' ``error:``)."""
  try:
    return json.loads(Path(path).read_text())
  except OSError as e:
    raise ValueError(f"{label}{path}: {e.strerror or e}") from None
  except ValueError as e:
    raise ValueError(f"{label}{path}: not JSON ({e})") from None


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
    self.sweep_temporaries()

  def path(self, stage: str, key: str) -> Path | None:
    return None if self.root is None else self.root / f"{stage}-{key}.npz"

  def load(self, stage: str, key: str) -> tuple[dict[str, np.ndarray], dict] | None:
    """Returns (arrays, meta) of a finished stage, or None on a miss.

    An entry that cannot be read whole (truncated or bit-flipped zip, bad CRC, missing
    or non-dict metadata, any other exception of the reader) is moved aside (see
    :meth:`quarantine`) with a warning and reported as a miss, so it is recomputed.
    """
    path = self.path(stage, key)
    if path is None or not path.exists():
      return None
    try:
      with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.array(z[k]) for k in z.files if k != _META_KEY}
        meta = json.loads(bytes(z[_META_KEY]).decode())
      if not isinstance(meta, dict):
        raise ValueError(f"metadata is {type(meta).__name__}, expected a JSON object")
    except Exception as e:  # pylint: disable=broad-except
      # A file we cannot read is never trusted: moved aside and recomputed.
      self.quarantine(stage, key, f"unreadable ({type(e).__name__}: {e})")
      return None
    log.info("cache hit: %s", path.name)
    return arrays, meta

  def quarantine(self, stage: str, key: str, why: str) -> Path | None:
    """Moves entry (stage, key) aside to ``<name>.bad`` with a warning; returns the new path."""
    path = self.path(stage, key)
    if path is None or not path.exists():
      return None
    bad = path.with_name(path.name + ".bad")
    try:
      os.replace(path, bad)
    except OSError as e:
      log.warning("cache entry %s is %s and could not be moved aside (%s); recomputing",
                  path, why, e)
      return None
    log.warning("cache entry %s is %s; moved to %s and recomputing", path, why, bad.name)
    return bad

  def sweep_temporaries(self, older_than_s: float = 3600.0) -> int:
    """Deletes temporaries (``.*.tmp``) left by killed writers; returns how many.

    Only files older than `older_than_s` go, so a writer still running is not hurt.
    """
    if self.root is None or not self.root.is_dir():
      return 0
    now, removed = time.time(), 0
    for tmp in self.root.glob(".*.tmp"):
      try:
        if now - tmp.stat().st_mtime > older_than_s:
          tmp.unlink()
          removed += 1
      except OSError:
        continue
    if removed:
      log.warning("removed %d stale temporary file(s) from %s", removed, self.root)
    return removed

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
  if cache.root is None:
    return _load_or_compute(cache, stage, key, compute, validate, record)
  # One writer per entry: a second run needing it waits, then finds it cached.
  with locks.file_lock(cache.root / f".{stage}-{key}.lock", what=f"cache entry {stage}-{key}"):
    return _load_or_compute(cache, stage, key, compute, validate, record)


def _load_or_compute(cache, stage, key, compute, validate, record) -> tuple[Arrays, dict]:
  hit = cache.load(stage, key)
  if hit is not None:
    arrays, meta = hit
    why = _rejection(arrays, meta, validate)
    if why is None:
      record.update(meta)
      record["cached"] = True
      return arrays, meta
    cache.quarantine(stage, key, why)
  arrays, meta = compute()
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  meta = dict(meta)
  cache.save(stage, key, arrays, meta)
  record.update(meta)
  return arrays, meta


def _rejection(arrays: Arrays, meta: dict,
               validate: Callable[[Arrays, dict], bool] | None) -> str | None:
  """Why a cached entry cannot be used (None: it can).

  Every floating array must be finite (no stage stores NaN or inf on purpose); then
  the stage's own `validate` (shapes, metadata fields) must accept it. An exception
  raised by `validate` (a chex shape assertion, a missing key) is a rejection too.
  """
  for name, a in arrays.items():
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
      return f"not finite (array {name!r})"
  if validate is None:
    return None
  try:
    ok = validate(arrays, meta)
  except Exception as e:  # pylint: disable=broad-except
    return f"not what this run needs ({type(e).__name__}: {e})"
  return None if ok else "not what this run needs (shapes or contents differ)"
