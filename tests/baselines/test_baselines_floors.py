"""Tests of the floors' grouped sums: chunked, and one bincount's result bit for bit."""
import numpy as np
import pytest

from pfcdr_jax.baselines import floors


@pytest.mark.parametrize("in_order", [False, True])
@pytest.mark.parametrize("center", [0.0, 3.5])
def test_grouped_sums_over_several_chunks_equal_one_bincount(center, in_order):
  # More ratings than one chunk (2^18), ratings on the half-star grid: every partial
  # sum is exact, so chunking changes no bit. In order (a domain's users): each chunk
  # adds only the stretch of bins it covers, with bins left empty at both ends.
  rng = np.random.default_rng(0)
  n, k = 700_000, 5_000
  idx = rng.integers(3, k - 3, n).astype(np.int32)
  if in_order:
    idx.sort()
  values = (rng.integers(1, 11, n) / 2).astype(np.float32)
  count, total = floors.grouped_sums(idx, values, k, center)
  np.testing.assert_array_equal(count, np.bincount(idx, minlength=k))
  np.testing.assert_array_equal(
      total, np.bincount(idx, weights=values.astype(np.float64) - center, minlength=k))


def test_grouped_sums_in_order_are_the_chunked_sums_bit_for_bit():
  """Off the half-star grid the chunk order shows in the last bits: the in-order path
  keeps the same chunks, so its sums are those of adding every bin each chunk."""
  rng = np.random.default_rng(1)
  n, k = 600_000, 300_000
  idx = np.sort(rng.integers(0, k, n)).astype(np.int32)
  values = rng.random(n).astype(np.float32) * 5
  count, total = floors.grouped_sums(idx, values, k, 3.14159)
  want = np.zeros(k)
  chunk = max(1 << 18, k)
  for lo in range(0, n, chunk):
    want += np.bincount(idx[lo:lo + chunk], weights=values[lo:lo + chunk].astype(np.float64)
                        - 3.14159, minlength=k)
  np.testing.assert_array_equal(total, want)
  np.testing.assert_array_equal(count, np.bincount(idx, minlength=k))
  assert floors.grouped_sums(idx[:0], values[:0], 4, 0.0)[0].tolist() == [0, 0, 0, 0]


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
