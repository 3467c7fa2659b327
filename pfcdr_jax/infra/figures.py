"""Figures without a display: pyplot on the Agg backend, and PNGs written atomically.

Every plot of the project (Figure 2, Figure 3, Figure 4, Table 3's bars, the privacy
frontier, CopyAttack's Figures 3-5) gets pyplot from :func:`pyplot` and writes through
:func:`save_png`: a temporary file beside the target, renamed onto it, so a reader never
sees a half-written PNG.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence


def pyplot():
  """``matplotlib.pyplot`` with the non-interactive Agg backend (imported on first use)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_png(fig, path: str | os.PathLike, title: str = "",
             rect: Sequence[float] | None = None) -> Path:
  """Titles, lays out and writes ``fig`` to ``path`` (parents created), then closes it.

  Args:
    fig: a matplotlib figure.
    path: the PNG to write.
    title: a suptitle (none when empty).
    rect: ``tight_layout``'s rectangle (room for a figure legend), or None.
  """
  plt = pyplot()
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  os.close(fd)
  try:
    if title:
      fig.suptitle(title, fontsize=10)
    fig.tight_layout(**({} if rect is None else {"rect": tuple(rect)}))
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    if os.path.exists(tmp):
      os.unlink(tmp)
  return path
