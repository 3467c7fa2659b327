"""The synthetic generator's distinct-items draw: re-checking only the users whose rows
were redrawn gives the same items, and leaves the generator in the same state, as
re-checking every row."""
import numpy as np
import pytest

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
