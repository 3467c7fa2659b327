"""glibc's heap can keep the data stage's freed large arrays (opt-in: ``PFCDR_HEAP_REUSE=1``).

glibc's ``malloc`` serves a request above its mmap threshold with a fresh ``mmap`` and
gives it back to the kernel on ``free``. The threshold adapts to the largest block freed
so far, but never above 32 MB (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit). So an array
up to 32 MB, once freed, is reused by the next one of its size from memory that is
already mapped, while every array above 32 MB is a fresh mapping whose pages the kernel
faults in and zeroes one by one, each time.

The data stage makes dozens of temporaries of one column's size (int64 keys, codes,
orders, gathers). At music2movie size (4-5M rows a domain at 3x) those cross 32 MB
between 1x and 3x, and from there on each one pays its page faults, so part of the
stage's growth between 1x and 3x is a step of the allocator, not of the work.
:func:`reuse_freed_memory` removes that step: it raises the mmap threshold (and the
top-of-heap trim threshold) for the stage, so its large arrays come from the heap and
freed ones are reused; on exit it sets the thresholds to the values the adaptive rule
reaches once a 32 MB array has been freed (32 MB, and 64 MB for trimming) and hands the
heap's free memory back to the kernel (``malloc_trim``).

It is off by default, because it costs memory later in the job. On the project's 2-core
machine:

* the stage alone (``python experiments/bench_data_stage.py --like=music2movie
  --scales=1,3 --reps=3``, medians of interleaved runs) grew 1->3x with an exponent of
  1.07 with the reuse against 1.17 without (3x: 3.44 against 3.90 s; 1x: 1.06 against
  1.08 s; ``git show 516e12b:docs/results/bench_data_stage_music2movie.json``). Since
  the stage makes few row-sized temporaries (2026-12-06, seventh session), the step is
  gone without it: the committed file has 1.102 without and 1.103 with the reuse;
* book2movie's main job (before that change) (``python experiments/bench_heap.py --like=book2movie --scales=1
  --repeats=3``, ``docs/results/bench_heap_book2movie.json``): data stage 5.47 -> 4.44 s,
  peak memory 3.15 -> 3.48 GB (+10-11 % in each of 3 paired rounds), wall 182.1 ->
  186.3 s (paired ratios 0.98-1.03) (medians, default -> reuse). Where the extra
  memory sits (pretraining, in an uncommitted trace) and why was not established.

:func:`release_free_memory` (``malloc_trim(0)``), called after the split once the input
frames are dropped, is on in both settings. No result depends on either, only where
memory comes from. Where the C library is not glibc, nothing changes.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
from typing import Iterator, Optional

ENV = "PFCDR_HEAP_REUSE"   # "1": turn the reuse on (off by default, see above)

# mallopt parameters (<malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Inside the stage: no array of the paper's tasks reaches 1 GiB a column.
STAGE_MMAP_THRESHOLD = 1 << 30
STAGE_TRIM_THRESHOLD = (1 << 31) - 1
# After it: glibc's adaptive values once a 32 MB array has been freed.
AFTER_MMAP_THRESHOLD = 32 << 20
AFTER_TRIM_THRESHOLD = 64 << 20


@functools.lru_cache(maxsize=None)
def _glibc() -> Optional[ctypes.CDLL]:
  """The process's C library when it has ``mallopt`` and ``malloc_trim``, else None."""
  name = ctypes.util.find_library("c")
  try:
    libc = ctypes.CDLL(name)
  except OSError:
    return None
  if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
    return None
  libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  libc.mallopt.restype = ctypes.c_int
  libc.malloc_trim.argtypes = (ctypes.c_size_t,)
  libc.malloc_trim.restype = ctypes.c_int
  return libc


def enabled() -> bool:
  """True where :func:`reuse_freed_memory` changes something: ``$PFCDR_HEAP_REUSE=1``
  and glibc."""
  return os.environ.get(ENV, "").strip() == "1" and _glibc() is not None


def release_free_memory() -> None:
  """Hands the heap's free memory back to the kernel (``malloc_trim(0)``; glibc only).

  For after the data stage, once its input frames are dropped: blocks freed in the
  middle of the heap stay mapped otherwise.
  """
  libc = _glibc()
  if libc is not None:
    libc.malloc_trim(0)


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
  """Large arrays allocated inside come from the heap, and freed ones are reused.

  Process-wide while it lasts: not for use while other threads allocate. On exit the
  thresholds are set to :data:`AFTER_MMAP_THRESHOLD` / :data:`AFTER_TRIM_THRESHOLD`
  and the heap's free memory goes back to the kernel. Does nothing unless
  ``$PFCDR_HEAP_REUSE`` is ``1`` and the C library is glibc.
  """
  libc = _glibc() if enabled() else None
  if libc is None:
    yield
    return
  libc.mallopt(M_MMAP_THRESHOLD, STAGE_MMAP_THRESHOLD)
  libc.mallopt(M_TRIM_THRESHOLD, STAGE_TRIM_THRESHOLD)
  try:
    yield
  finally:
    libc.mallopt(M_MMAP_THRESHOLD, AFTER_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
    libc.malloc_trim(0)
