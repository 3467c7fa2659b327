"""Host-side argument checks shared by the baselines (raise ``ValueError`` early).

A bad index would otherwise be clipped silently by a JAX gather (out-of-range
reads return the edge row), so every ``fit_predict`` checks its index arrays on the
host before anything is traced.
"""
from __future__ import annotations

import numpy as np


def check_index(idx: np.ndarray, n: int, name: str) -> None:
  """Checks that ``idx`` is a 1-D array of indices into ``range(n)``.

  Args:
    idx: ``int[m]`` indices (``m`` may be 0).
    n: size of the indexed axis.
    name: what ``idx`` indexes, for the error message.

  Raises:
    ValueError: ``idx`` is not 1-D, or an entry lies outside ``[0, n)``.
  """
  idx = np.asarray(idx)
  if idx.ndim != 1:
    raise ValueError(f"{name}: expected a 1-D index array, got shape {idx.shape}")
  if idx.size and (idx.min() < 0 or idx.max() >= n):
    raise ValueError(f"{name}: indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
