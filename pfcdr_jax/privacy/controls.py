"""Transferred vectors that carry no information about their user (chance levels).

* :func:`random_users`: every user is sent another user's vector (a derangement of
  the rows), so the marginal distribution is exactly the method's but the link to
  the user is cut.
* :func:`pure_noise`: Gaussian vectors with the per-coordinate mean and standard
  deviation of the method's vectors (aggregates only).
"""

from __future__ import annotations

import numpy as np


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
  """A permutation of ``0..n-1`` with no fixed point (n >= 2): a random shift of a
  random order, ``perm[order[i]] = order[(i + s) % n]`` with ``1 <= s < n``."""
  if n < 2:
    raise ValueError(f"a derangement needs n >= 2, got {n}")
  order = rng.permutation(n)
  shift = int(rng.integers(1, n))
  perm = np.empty(n, np.int64)
  perm[order] = order[(np.arange(n) + shift) % n]
  return perm


def random_users(x: np.ndarray, seed: int) -> np.ndarray:
  """float[n, m]: row i is the vector of another user (a derangement)."""
  x = np.asarray(x)
  return x[derangement(len(x), np.random.default_rng(seed))]


def pure_noise(x: np.ndarray, seed: int) -> np.ndarray:
  """float[n, m]: ``N(mean_j, std_j^2)`` per coordinate, independent of the users."""
  x = np.asarray(x, np.float64)
  rng = np.random.default_rng(seed)
  return x.mean(0) + x.std(0) * rng.standard_normal(x.shape)
