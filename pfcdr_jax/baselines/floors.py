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
  sums = np.bincount(train_item, weights=train_rating, minlength=n_items)
  counts = np.bincount(train_item, minlength=n_items)
  global_mean = float(np.mean(train_rating))
  means = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
  n_fallback = int(np.sum(counts[test_item] == 0))
  if n_fallback:
    log.info("ItemMean: %d of %d ratings to predict are on items without training "
             "ratings; they get the global mean", n_fallback, test_item.size)
  with phase_timer.predicting(test_item.size):
    return means[test_item].astype(np.float32)
