"""Exceptions raised by the data layer.

Every problem with input data is reported as a :class:`DataError` that names the
file, and where it is known the line and the field, so that a user can open the
file at the right place. :class:`DownloadError` is the special case "the files
could not be obtained": it lists every missing file with the URL that was tried
and the exact local path where the file can be put by hand.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class DataError(ValueError):
  """Bad or missing input data.

  ``str(err)`` reads ``"<path>:<line>: field '<field>': <message>"``; the line and
  field parts are omitted when they are None.

  Attributes:
    path: The file (or logical data set name) the problem is in.
    message: What was wrong / what was expected.
    line: 1-based line number in ``path``, or None.
    field: Name of the offending field/column, or None.
  """

  def __init__(self, path: PathLike, message: str, line: Optional[int] = None,
               field: Optional[str] = None):
    self.path = os.fspath(path)
    self.message = message
    self.line = line
    self.field = field
    super().__init__(self._format())

  def _format(self) -> str:
    parts = [self.path]
    if self.line is not None:
      parts.append(str(self.line))
    head = ":".join(parts)
    if self.field is not None:
      head += f": field '{self.field}'"
    return f"{head}: {self.message}"

  def __str__(self) -> str:
    return self._format()

  def __reduce__(self):
    # Keeps the exception picklable (e.g. across multiprocessing) despite the
    # custom constructor signature.
    return (self.__class__, (self.path, self.message, self.line, self.field))


@dataclasses.dataclass(frozen=True)
class MissingFile:
  """One file that could not be obtained.

  Attributes:
    name: File name, e.g. ``reviews_Books_5.json.gz``.
    url: The URL (or pip requirement) that was tried.
    path: The exact local path where the file can be put by hand.
    reason: Why obtaining it failed.
  """
  name: str
  url: str
  path: str
  reason: str = ""


class DownloadError(DataError):
  """Files could not be obtained (download failed and no local copy).

  The message lists every missing file, the URL tried and the local path where
  the file can be put instead.

  Attributes:
    missing: Tuple of :class:`MissingFile`.
  """

  def __init__(self, path: PathLike, message: str, line: Optional[int] = None,
               field: Optional[str] = None, *,
               missing: Iterable[MissingFile] = ()):
    self.missing = tuple(missing)
    if self.missing:
      lines = [message, f"{len(self.missing)} file(s) missing:"]
      for m in self.missing:
        lines.append(f"  - {m.name}: tried {m.url}"
                     + (f" ({m.reason})" if m.reason else "")
                     + f"; put it at {m.path}")
      message = "\n".join(lines)
    super().__init__(path, message, line, field)

  @classmethod
  def from_missing(cls, missing: Iterable[MissingFile],
                   what: str = "could not obtain the data files") -> "DownloadError":
    """Builds an error listing each missing file.

    Args:
      missing: The files that could not be obtained (at least one).
      what: Leading sentence of the message.

    Returns:
      A DownloadError whose ``path`` is the first missing file's path.
    """
    missing = tuple(missing)
    if not missing:
      raise ValueError("from_missing needs at least one MissingFile")
    return cls(missing[0].path, what, missing=missing)

  def __reduce__(self):
    return (_rebuild_download_error,
            (self.path, self.message, self.line, self.field))


def _rebuild_download_error(path, message, line, field):
  # The stored message already contains the missing-file list.
  return DownloadError(path, message, line, field)
