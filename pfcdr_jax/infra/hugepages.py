"""Numpy's transparent-huge-page advice, off while the data stage builds its arrays.

On Linux numpy asks the kernel (``madvise(MADV_HUGEPAGE)``) to back every array of
4 MB or more with 2 MB pages. Where fresh 2 MB pages are expensive to hand out, that
advice makes each new large array slow. On the project's 2-core machine (a virtual
machine, ``transparent_hugepage=madvise``), a child process filling fresh 32 MB arrays
one after another took ~75 ms a fill with the advice and ~12 ms without
(``experiments/bench_hugepages.py``, ``docs/results/bench_hugepages_music2movie.json``;
how much depends on how many free huge pages the kernel has at hand).

The data stage (``harness/run_inputs``: loading or generating a task, then the split)
allocates arrays of tens of MB by the dozen (4-5M int64 rows per domain at 3x
music2movie) and is the part hit: in the same bench's main jobs it took 6.18 s advised
and 4.36 s with the advice off around it (medians, 3x), while the whole job moved within
its run-to-run spread. So :func:`advice_off` turns the advice off around that stage only
and restores it.

``NUMPY_MADVISE_HUGEPAGE`` (numpy's own switch, read when numpy is imported) wins when it
is set: then nothing here changes it. The setter is the one numpy's switch uses
(``numpy._core.multiarray._set_madvise_hugepage``); where a numpy lacks it, nothing
changes. No result depends on it, only where memory comes from.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Optional

import numpy as np

ENV = "NUMPY_MADVISE_HUGEPAGE"


def _setter() -> Optional[Callable[[bool], bool]]:
  """numpy's setter of the advice (it returns the value it replaces), or None."""
  for path in ("_core", "core"):
    multiarray = getattr(getattr(np, path, None), "multiarray", None)
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
      return setter
  return None


@contextlib.contextmanager
def advice_off() -> Iterator[None]:
  """Arrays allocated inside are not advised onto huge pages (then the advice is back).

  Does nothing when ``$NUMPY_MADVISE_HUGEPAGE`` is set or numpy has no setter. Not for
  use while other threads allocate large arrays: the advice is process-wide.
  """
  setter = None if os.environ.get(ENV, "").strip() else _setter()
  if setter is None:
    yield
    return
  before = setter(False)
  try:
    yield
  finally:
    setter(before)
