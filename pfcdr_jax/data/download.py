"""Cached, verified, atomic downloads over http(s), and the default data directory.

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
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from absl import logging

from pfcdr_jax.data.checksums import _CHUNK, _unlink_quietly, md5_file, sha256_file
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile, PathLike


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
