"""Markdown (GitHub pipe) tables, in the one layout every report of the package writes.

A row is ``| a | b | c |``: each cell is ``str(cell)`` with one space either side, so an
empty body cell reads ``|  |``. The separator under the header is ``|---|---|``, one
``---`` per column (``:---``, ``---:`` or ``:---:`` where an alignment is asked for).
An empty header cell is written ``| |``.
"""

from __future__ import annotations

from typing import Iterable
from typing import Sequence

_RULES = {None: "---", "left": ":---", "right": "---:", "center": ":---:"}


def row(cells: Iterable[object]) -> str:
  """One table row: ``| a | b |`` from the cells' ``str``."""
  return "| " + " | ".join(str(c) for c in cells) + " |"


def header_row(cells: Iterable[object]) -> str:
  """The header line: :func:`row`, but an empty cell is ``| |`` instead of ``|  |``."""
  texts = [str(c) for c in cells]
  return " ".join(["|"] + [f"{t} |" if t else "|" for t in texts])


def separator(n: int, align: Sequence[str | None] | None = None) -> str:
  """The line under the header for ``n`` columns: ``|---|---|``.

  Args:
    n: number of columns.
    align: per column ``None``, ``"left"``, ``"right"`` or ``"center"``; None = all plain.
  """
  align = [None] * n if align is None else list(align)
  if len(align) != n:
    raise ValueError(f"{len(align)} alignments for {n} columns")
  return "|" + "".join(_RULES[a] + "|" for a in align)


def table(header: Sequence[object], rows: Iterable[Iterable[object]],
          align: Sequence[str | None] | None = None) -> list[str]:
  """The lines of a table: header, separator, then one line per row (no trailing newline).

  Args:
    header: the column names.
    rows: the body, each an iterable of cells (not checked against the header's width).
    align: as in :func:`separator`.
  """
  return [header_row(header), separator(len(header), align)] + [row(r) for r in rows]
