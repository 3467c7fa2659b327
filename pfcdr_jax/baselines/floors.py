"""Honest floors: predictions that use no cross-domain signal at all.

Every table of this project keeps them, so that a method's gain is read against
what the target training ratings alone give.
"""

from __future__ import annotations

import logging

import numpy as np

from pfcdr_jax.infra import phase_timer

log = logging.getLogger(__name__)


def global_mean_predict(train_rating: np.ndarray, n_test: int) -> np.ndarray:
  """Predicts the mean target training rating for every test rating.

  Args:
    train_rating: float[R] target training ratings.
    n_test: number of test ratings.

  Returns:
    float32[n_test] constant predictions.
  """
  if train_rating.size == 0:
    raise ValueError("global_mean_predict: no target training ratings")
  mean = float(np.mean(train_rating))
  with phase_timer.predicting(n_test):
    return np.full(n_test, mean, dtype=np.float32)


def grouped_sums(idx: np.ndarray, values: np.ndarray, n: int,
                 center: float) -> tuple[np.ndarray, np.ndarray]:
  """``(count int64[n], sum float64[n])`` of ``values - center`` per index (ItemMean's
  sums with ``center`` 0, BiasFloor's residuals).

  In chunks of ``max(2^18, n)`` ratings, so the float64 temporaries of a chunk stay in
  cache: on 2 CPU cores two ``bincount``s over random items of music2movie's target
  shape grow 1.60 from 1x to 3x whole and 1.14 in chunks (and take half the time at 3x).
  The sums are added chunk by chunk in float64: for ratings that are multiples of 1/2
  (every rating scale here) each partial sum is exact, so the result is one
  ``bincount``'s bit for bit; for others the order changes only the last bits.

  Where ``idx`` is non-decreasing (a domain's users: its ratings are sorted by user), a
  chunk's indices span one stretch of the bins, and only that stretch is counted and
  added: the work is linear in ratings plus bins, where adding a whole ``n``-bin count
  per chunk grows with ratings x bins. The chunks are the same, and so are the sums, bit
  for bit (a bin outside a chunk's stretch gained exactly 0.0 before).
  """
  chunk = max(1 << 18, n)
  count, total = np.zeros(n, np.int64), np.zeros(n, np.float64)
  in_order = len(idx) < 2 or bool((idx[1:] >= idx[:-1]).all())
  for lo in range(0, len(idx), chunk):
    part = idx[lo:lo + chunk]
    weights = values[lo:lo + chunk].astype(np.float64) - center
    if in_order:
      first = int(part[0])
      span = int(part[-1]) - first + 1
      part = part - first
      count[first:first + span] += np.bincount(part, minlength=span)
      total[first:first + span] += np.bincount(part, weights=weights, minlength=span)
    else:
      count += np.bincount(part, minlength=n)
      total += np.bincount(part, weights=weights, minlength=n)
  return count, total


def item_mean_predict(train_item: np.ndarray, train_rating: np.ndarray,
                      test_item: np.ndarray, n_items: int) -> np.ndarray:
  """Predicts each test item's mean target training rating.

  Items with no training rating fall back to the global mean; their count is
  logged, never silently absorbed.

  Args:
    train_item: int[R] item index of each target training rating.
    train_rating: float[R] target training ratings.
    test_item: int[T] item index of each test rating.
    n_items: number of target items.

  Returns:
    float32[T] predictions.
  """
  counts, sums = grouped_sums(train_item, train_rating, n_items, 0.0)
  global_mean = float(np.mean(train_rating))
  means = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
  n_fallback = int(np.sum(counts[test_item] == 0))
  if n_fallback:
    log.info("ItemMean: %d of %d ratings to predict are on items without training "
             "ratings; they get the global mean", n_fallback, test_item.size)
  with phase_timer.predicting(test_item.size):
    return means[test_item].astype(np.float32)
