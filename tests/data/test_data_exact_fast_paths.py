"""The duplicate policy's loser mask: sorting only the rows whose key repeats gives the
mask of sorting every row (the earlier form, kept here as the oracle); the split's
value sort (``interactions.stable_order``) and its id hash against their plain forms."""
import hashlib

import numpy as np
import pytest

from pfcdr_jax.data import interactions
from pfcdr_jax.data import splits


def _every_row(keys, timestamps):
  order = np.lexsort((np.arange(len(keys)), timestamps, keys))
  k = keys[order]
  loser = np.zeros(len(keys), dtype=bool)
  loser[order[:-1][k[:-1] == k[1:]]] = True
  return loser


@pytest.mark.parametrize("n,n_keys,n_stamps", [(1, 1, 1), (50, 10, 1), (20_000, 19_000, 3),
                                               (20_000, 500, 50), (5000, 10**9, 10)])
def test_duplicate_losers_match_sorting_every_row(n, n_keys, n_stamps):
  rng = np.random.default_rng(n_keys)
  keys = rng.integers(0, n_keys, size=n).astype(np.int64)
  stamps = rng.integers(-1, n_stamps, size=n).astype(np.int64)
  got = interactions.duplicate_losers(keys, stamps)
  np.testing.assert_array_equal(got, _every_row(keys, stamps))
  # One survivor per key: the latest timestamp, ties to the last row.
  assert (~got).sum() == len(np.unique(keys))


def test_duplicate_losers_without_repeats_is_all_false():
  keys = np.random.default_rng(0).permutation(10_000).astype(np.int64)
  assert not interactions.duplicate_losers(keys, np.full(10_000, -1)).any()


def test_sha256_strings_hashes_each_id_and_newline():
  ids = ["u1", "é", "", "u10", "x" * 300]
  h = hashlib.sha256()
  for s in ids:
    h.update(s.encode("utf-8"))
    h.update(b"\n")
  assert splits._sha256_strings(ids) == h.hexdigest()
  assert splits._sha256_strings([]) == hashlib.sha256().hexdigest()


@pytest.mark.parametrize("offset", [0, 1 << 50])   # 1 << 50: too wide to pack, argsort
def test_stable_order_is_the_stable_argsort(offset):
  keys = np.random.default_rng(4).choice(10**9, size=30_000, replace=False) + offset
  order, sorted_keys = interactions.stable_order(keys.astype(np.int64))
  np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
  np.testing.assert_array_equal(sorted_keys, np.sort(keys))
  empty_order, empty_keys = interactions.stable_order(np.zeros(0, dtype=np.int64))
  assert len(empty_order) == len(empty_keys) == 0


def test_stable_order_refuses_narrow_keys():
  with pytest.raises(TypeError):
    interactions.stable_order(np.arange(10, dtype=np.int32))


def test_stable_order_breaks_ties_by_row():
  keys = np.random.default_rng(5).integers(0, 50, size=5000)
  order, sorted_keys = interactions.stable_order(keys.astype(np.int64))
  np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
  np.testing.assert_array_equal(sorted_keys, np.sort(keys))
