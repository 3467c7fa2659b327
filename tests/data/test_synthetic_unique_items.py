"""The synthetic generator's distinct-items draw: re-checking only the users whose rows
were redrawn gives the same items, and leaves the generator in the same state, as
re-checking every row."""
import numpy as np
import pytest

from pfcdr_jax.data import sampling
from pfcdr_jax.data import synthetic


def _every_row(rng, counts, n_items, sigma=1.0):
  """The draw re-checking every row each pass (the generator's earlier form)."""
  pop = rng.lognormal(0.0, sigma, n_items)
  pop /= pop.sum()
  uniform = np.full(n_items, 1.0 / n_items)
  users = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
  items = rng.choice(n_items, size=len(users), p=pop)
  dense = counts > n_items // 2
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  for u in np.flatnonzero(dense):
    items[starts[u]:starts[u] + counts[u]] = rng.permutation(n_items)[:counts[u]]
  anchor = np.zeros(len(users), dtype=bool)
  free_rows = np.flatnonzero(~dense[users])
  rows = rng.choice(free_rows, size=n_items, replace=False)
  items[rows] = rng.permutation(n_items)
  anchor[rows] = True
  for it in range(200):
    key = users * n_items + items
    order = np.lexsort((~anchor, key))
    sorted_key = key[order]
    dup = order[1:][sorted_key[1:] == sorted_key[:-1]]
    if len(dup) == 0:
      return items
    mix = min(1.0, it / 10)
    items[dup] = rng.choice(n_items, size=len(dup), p=(1 - mix) * pop + mix * uniform)
  raise RuntimeError("no convergence")


@pytest.mark.parametrize("n_users,n_items,mean", [(200, 50, 30), (3000, 400, 40),
                                                  (2000, 5000, 12)])
def test_rechecking_redrawn_users_only_changes_nothing(n_users, n_items, mean):
  counts = np.random.default_rng(3).poisson(mean, n_users).clip(1, n_items)
  a, b = np.random.default_rng(7), np.random.default_rng(7)
  got = synthetic._unique_items(a, counts.copy(), n_items)
  want = _every_row(b, counts.copy(), n_items)
  np.testing.assert_array_equal(got, want)
  assert a.random() == b.random()           # the same draws were consumed
  users = np.repeat(np.arange(n_users), counts)
  assert len(np.unique(users * n_items + got)) == len(got)   # no repeats within a user


@pytest.mark.parametrize("n,size,sigma", [(1, 10, 1.0), (7, 1000, 0.0), (5000, 200_000, 1.0),
                                          (3000, 100_000, 3.0), (20_000, 70_000, 6.0)])
def test_popularity_draw_is_numpys_choice(n, size, sigma):
  """Same items and generator state as ``Generator.choice(p=...)``, on uniform, skewed
  and very skewed popularity (crowded guide buckets take the binary-search fallback)."""
  p = np.random.default_rng(1).lognormal(0.0, sigma, n)
  p /= p.sum()
  a, b = np.random.default_rng(5), np.random.default_rng(5)
  got = sampling.popularity_draw(a, p, size)
  np.testing.assert_array_equal(got, b.choice(n, size=size, p=p))
  assert got.dtype == np.int64
  assert a.random() == b.random()


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_popularity_draw_in_any_chunking_is_numpys_choice(chunk):
  """The uniforms drawn a chunk at a time are the stream of one draw of all of them."""
  p = np.random.default_rng(2).lognormal(0.0, 1.0, 300)
  p /= p.sum()
  a, b = np.random.default_rng(9), np.random.default_rng(9)
  got = sampling.popularity_draw(a, p, 5000, chunk=chunk, dtype=np.int32)
  np.testing.assert_array_equal(got, b.choice(300, size=5000, p=p))
  assert got.dtype == np.int32
  assert a.random() == b.random()


def test_search_right_is_searchsorted_at_ties_and_edges():
  """Flat stretches of the cdf (zero-popularity items), queries exactly at its entries,
  at 0 and just below 1, and chunk boundaries."""
  cdf = np.array([0.0, 0.0, 0.25, 0.25, 0.25, 0.5, 0.75, 1.0, 1.0])
  u = np.concatenate([cdf[cdf < 1], [0.0, np.nextafter(1.0, 0.0), 0.1, 0.3, 0.6]])
  u = np.tile(u, 5)
  for chunk in (1, 3, 1 << 16):
    np.testing.assert_array_equal(sampling.search_right(cdf, u, chunk=chunk),
                                  cdf.searchsorted(u, side="right"))
  u = np.random.default_rng(0).random(50_000)
  cdf = np.cumsum(np.random.default_rng(1).lognormal(0.0, 2.0, 999))
  cdf /= cdf[-1]
  np.testing.assert_array_equal(sampling.search_right(cdf, u, chunk=4096),
                                cdf.searchsorted(u, side="right"))


def test_repeated_rows_packed_and_lexsort_paths_agree():
  """The packed value sort (in place: ``key`` is overwritten) lists the same rows, in the
  same order, as the lexsort (the path taken when key, flag and row do not fit in 63
  bits)."""
  rng = np.random.default_rng(2)
  rows = np.sort(rng.choice(100_000, size=20_000, replace=False))
  key = rng.integers(0, 3000, size=len(rows))
  first = rng.random(len(rows)) < 0.1
  order = np.lexsort((~first, key))
  sorted_key = key[order]
  want = rows[order[1:][sorted_key[1:] == sorted_key[:-1]]]
  np.testing.assert_array_equal(synthetic._repeated_rows(key.copy(), first, rows), want)
  wide = key + (1 << 45)   # 46 + 1 + 17 bits > 63: the lexsort path
  np.testing.assert_array_equal(synthetic._repeated_rows(wide, first, rows), want)
  assert len(synthetic._repeated_rows(key[:0], first[:0], rows[:0])) == 0


def test_popularity_draw_refuses_what_choice_refuses():
  for p in (np.array([0.5, np.nan, 0.5]), np.array([1.5, -0.5]), np.zeros(3)):
    with pytest.raises(ValueError, match="popularity"):
      sampling.popularity_draw(np.random.default_rng(0), p, 10)
  with pytest.raises(TypeError):
    synthetic._repeated_rows(np.arange(4, dtype=np.int32), np.zeros(4, bool), np.arange(4))
