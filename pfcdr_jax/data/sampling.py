"""Draws of items by popularity: ``Generator.choice(n, size, p=p)``'s items, faster.

numpy's ``choice`` with ``p`` draws ``size`` uniforms and binary-searches each in the
cumulative popularity; :func:`popularity_draw` draws the same uniforms and finds the
same items through a guide table (:func:`search_right`), so the synthetic generator's
data are those of ``choice`` (tested against it).
"""

from __future__ import annotations

import numpy as np


def search_right(cdf: np.ndarray, u: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
  """``cdf.searchsorted(u, side="right")`` for a non-decreasing ``cdf`` and ``u`` in [0, 1).

  The same indices, found through a guide table (the index of the first entry above
  each of ``len(cdf)`` equally spaced points) instead of a binary search per query: a
  binary search makes ~log2(len(cdf)) dependent reads of a table that outgrows the
  caches at the Table 2 sizes, the guide table one read, then a few steps forward.
  The queries go ``chunk`` at a time, so that the steps' index arrays stay in the core's
  cache (``bench_data_stage`` times it beside numpy's search).

  Exact: the start ``g[floor(u * B) - 1]`` counts only entries <= a point below ``u``
  (the 1/B margin dwarfs rounding), and the steps move on while ``cdf[i] <= u``.
  """
  if len(cdf) == 0 or len(u) == 0:
    return cdf.searchsorted(u, side="right")
  guide = guide_table(cdf)
  out = np.empty(len(u), dtype=np.int64)
  for lo in range(0, len(u), chunk):
    out[lo:lo + chunk] = search_chunk(cdf, guide, u[lo:lo + chunk])
  return out


def guide_table(cdf: np.ndarray) -> np.ndarray:
  """:func:`search_right`'s guide table of a non-empty ``cdf``."""
  n = len(cdf)
  return cdf.searchsorted(np.arange(n, dtype=np.float64) / n, side="right")


def search_chunk(cdf: np.ndarray, guide: np.ndarray, q: np.ndarray) -> np.ndarray:
  """:func:`search_right` of one chunk of queries ``q``, through ``guide``."""
  n = len(cdf)
  idx = np.maximum((q * n).astype(np.int64) - 1, 0)
  idx = guide[idx]
  active = np.flatnonzero(idx < n)
  active = active[cdf[idx[active]] <= q[active]]
  for _ in range(64):
    if len(active) == 0:
      break
    idx[active] += 1
    active = active[idx[active] < n]
    active = active[cdf[idx[active]] <= q[active]]
  else:  # Crowded buckets (a very skewed cdf): the rest by binary search.
    idx[active] = cdf.searchsorted(q[active], side="right")
  return idx


def popularity_draw(rng: np.random.Generator, p: np.ndarray, size: int,
                     chunk: int = 1 << 16, dtype=np.int64) -> np.ndarray:
  """``rng.choice(len(p), size=size, p=p)``: the same items, the generator left in the
  same state (numpy draws ``rng.random(size)`` and searches the normalised cumulative
  sum; tested against it), with :func:`search_right` in place of the binary search.

  The uniforms are drawn ``chunk`` at a time, each chunk searched as it comes: the
  generator's stream is the same in any chunking, and no float64 array of ``size``
  rows is made (at 3x music2movie it would be a fresh 34 MB mapping, above glibc's
  32 MB mmap threshold, faulted in page by page). ``dtype``: of the returned items."""
  if not (np.isfinite(p).all() and (p >= 0).all() and p.sum() > 0):
    raise ValueError("popularity must be finite, non-negative and not all zero")
  cdf = np.cumsum(p, dtype=np.float64)
  cdf /= cdf[-1]
  guide = guide_table(cdf)
  out = np.empty(size, dtype=dtype)
  for lo in range(0, size, chunk):
    hi = min(lo + chunk, size)
    out[lo:hi] = search_chunk(cdf, guide, rng.random(hi - lo))
  return out
