"""Tests of the floors' grouped sums: chunked, and one bincount's result bit for bit."""
import numpy as np
import pytest

from pfcdr_jax.baselines import floors


@pytest.mark.parametrize("center", [0.0, 3.5])
def test_grouped_sums_over_several_chunks_equal_one_bincount(center):
  # More ratings than one chunk (2^18), ratings on the half-star grid: every partial
  # sum is exact, so chunking changes no bit.
  rng = np.random.default_rng(0)
  n, k = 700_000, 5_000
  idx = rng.integers(0, k, n).astype(np.int32)
  values = (rng.integers(1, 11, n) / 2).astype(np.float32)
  count, total = floors.grouped_sums(idx, values, k, center)
  np.testing.assert_array_equal(count, np.bincount(idx, minlength=k))
  np.testing.assert_array_equal(
      total, np.bincount(idx, weights=values.astype(np.float64) - center, minlength=k))


def test_item_mean_predict_is_each_items_mean_and_the_global_mean_for_unseen_items():
  rng = np.random.default_rng(1)
  item = rng.integers(0, 300, 600_000).astype(np.int32)
  item[item == 7] = 8                           # item 7 has no training rating
  rating = rng.integers(1, 6, item.size).astype(np.float32)
  test_item = np.array([0, 7, 299, 8], np.int32)
  pred = floors.item_mean_predict(item, rating, test_item, 300)
  want = [rating[item == j].astype(np.float64).mean() for j in (0, 299, 8)]
  np.testing.assert_allclose(pred[[0, 2, 3]], want, rtol=1e-6)
  assert pred[1] == np.float32(rating.astype(np.float64).mean())
  direct = (np.bincount(item, weights=rating, minlength=300)
            / np.maximum(np.bincount(item, minlength=300), 1))
  np.testing.assert_array_equal(pred[[0, 2, 3]], direct[[0, 299, 8]].astype(np.float32))
