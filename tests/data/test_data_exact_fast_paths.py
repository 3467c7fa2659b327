"""The duplicate policy's loser mask: sorting only the rows whose key repeats gives the
mask of sorting every row (the earlier form, kept here as the oracle); the split's
value sort (``interactions.stable_order``), its id hash, its id order and the
factorisation of categorical ids against their plain forms."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from pfcdr_jax.data import id_order
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


def _plain_id_order(src_users, tgt_users, src_items, tgt_items):
  """The split's earlier id order: sets, sorted(), and a hash lookup of each id."""
  overlap = sorted(set(src_users) & set(tgt_users))
  shared = set(overlap)
  lists = [overlap + sorted(u for u in src_users if u not in shared),
           overlap + sorted(u for u in tgt_users if u not in shared),
           sorted(src_items), sorted(tgt_items)]
  given = (src_users, tgt_users, src_items, tgt_items)
  return len(overlap), lists, [pd.Index(ids).get_indexer(g) for ids, g in zip(lists, given)]


@pytest.mark.parametrize("presorted", [False, True])
def test_id_order_matches_sets_and_lookups(presorted):
  rng = np.random.default_rng(7)
  names = [f"u{n}" for n in rng.choice(10**6, size=3000, replace=False)]
  src_users = [names[k] for k in rng.choice(2000, size=1500, replace=False)]
  tgt_users = [names[k] for k in 1000 + rng.choice(2000, size=1800, replace=False)]
  src_items = [f"s{n}" for n in rng.permutation(700)]
  tgt_items = [f"t{n}" for n in rng.permutation(400)]
  given = [src_users, tgt_users, src_items, tgt_items]
  if presorted:                             # as a categorical column's categories come
    given = [sorted(g) for g in given]
  n_overlap, lists, positions = _plain_id_order(*given)
  got = id_order.id_order(*given, name="t")
  assert got.n_overlap == n_overlap > 0
  assert [got.source_user_ids, got.target_user_ids, got.source_item_ids,
          got.target_item_ids] == lists
  for want, pos in zip(positions, (got.source_user_pos, got.target_user_pos,
                                   got.source_item_pos, got.target_item_pos)):
    np.testing.assert_array_equal(pos, want)


def test_factorize_ids_of_a_categorical_uses_its_codes():
  rng = np.random.default_rng(3)
  values = np.array([f"i{n:03d}" for n in rng.integers(0, 300, 5000)], dtype=object)
  column = pd.Series(interactions.categorical_ids(values))
  codes, uniques = interactions.factorize_ids(column)
  # Every category is in use: the column's own codes, not a copy.
  assert np.issubdtype(codes.dtype, np.signedinteger)
  assert np.shares_memory(codes, column.array.codes)
  np.testing.assert_array_equal(uniques.to_numpy(dtype=object)[codes], values)
  # The categories in use, in category order (sorted), once each.
  assert list(uniques) == sorted(set(values))
  plain_codes, plain_uniques = pd.factorize(pd.Series(values))
  # The same partition of the rows as pd.factorize (codes are only compared).
  np.testing.assert_array_equal(plain_uniques[plain_codes], uniques[codes])
  # A missing value keeps pd.factorize's -1 (check_ids names its row).
  holed = column.copy()
  holed.iloc[17] = np.nan
  codes, _ = interactions.factorize_ids(holed)
  assert codes[17] == -1 and (np.delete(codes, 17) >= 0).all()
  assert codes.dtype == np.int64


def test_factorize_ids_renumbers_categories_out_of_use():
  """Categories no row uses are left out; the codes of the rest close up, in order."""
  column = pd.Series(pd.Categorical(["c", "a", "c", "e"], categories=list("abcde")))
  codes, uniques = interactions.factorize_ids(column)
  assert list(uniques) == ["a", "c", "e"]
  np.testing.assert_array_equal(codes, [1, 0, 1, 2])
  assert codes.dtype == column.cat.codes.dtype


@pytest.mark.parametrize("n,n_keys,n_stamps", [(1, 1, 1), (50, 10, 1), (20_000, 19_000, 3),
                                               (20_000, 500, 50), (5000, 10**9, 10)])
def test_sorted_duplicate_losers_are_the_policys_losers(n, n_keys, n_stamps):
  """The split's mask over key-sorted rows: the rows of the file-order mask."""
  rng = np.random.default_rng(n_keys + 1)
  keys = rng.integers(0, n_keys, size=n).astype(np.int64)
  stamps = rng.integers(-1, n_stamps, size=n).astype(np.int64)
  order, sorted_keys = interactions.stable_order(keys.copy())
  got = interactions.sorted_duplicate_losers(sorted_keys, order, stamps)
  np.testing.assert_array_equal(got, _every_row(keys, stamps)[order])


def test_split_drops_the_policys_duplicates():
  """make_cdr_split on frames with repeated pairs: the survivors of ``deduplicate``."""
  rng = np.random.default_rng(11)
  def frame(n_users):
    n = 4000
    return interactions.make_frame(
        [f"u{k}" for k in rng.integers(0, n_users, n)],
        [f"i{k}" for k in rng.integers(0, 60, n)],
        rng.integers(1, 6, n).astype(np.float32), rng.integers(-1, 3, n))
  source, target = frame(300), frame(400)
  data = splits.make_cdr_split(source, target, beta=0.2, seed=0, name="t")
  for df, d, label in ((source, data.source, "source"), (target, None, "target")):
    kept, n_dup = interactions.deduplicate(df, name="t")
    assert n_dup > 0 and data.manifest["duplicates_dropped"][label] == n_dup
    if d is None:
      continue
    ids_u, ids_i = np.array(data.source_user_ids), np.array(data.source_item_ids)
    got = sorted(zip(ids_u[d.user], ids_i[d.item], d.rating))
    want = sorted(zip(kept["user"], kept["item"], kept["rating"]))
    assert got == want


def test_check_ids_of_string_uniques_names_the_empty_ids_row():
  values = pd.Series(["a", "b", "", "b"], dtype=str)
  codes, uniques = interactions.factorize_ids(pd.Series(interactions.categorical_ids(values)))
  assert isinstance(uniques.dtype, pd.StringDtype)
  with pytest.raises(interactions.DataError, match="row 2"):
    interactions.check_ids(codes, uniques, name="t", field="user")
  interactions.check_ids(*interactions.factorize_ids(pd.Series(["a", "b"], dtype=str)),
                         name="t", field="user")


def _plain_counts(source, target):
  """The task counts' earlier form: nunique and an intersection of the uniques."""
  counts = {label: {"users": int(df["user"].nunique()), "items": int(df["item"].nunique()),
                    "ratings": len(df)} for label, df in (("source", source), ("target", target))}
  counts["n_overlap"] = len(pd.Index(source["user"].unique()).intersection(
      pd.Index(target["user"].unique())))
  return counts


def test_task_counts_match_nunique_and_intersection():
  """Shared categories (the generator's frames), categories of their own, unused
  categories and plain strings: the same counts as the plain form."""
  from pfcdr_jax.data import synthetic, tasks
  source, target, _ = synthetic.make_synthetic_cdr(3, like="sparse", scale=0.05)
  assert source["user"].array.categories is target["user"].array.categories
  cases = [(source, target),
           (source.iloc[::3], target.iloc[1::2]),           # categories out of use
           (source.astype({"user": str, "item": str}), target)]  # one side plain strings
  rng = np.random.default_rng(0)
  own = [interactions.make_frame(
      interactions.categorical_ids([f"u{k}" for k in rng.integers(0, n, 500)]),
      [f"i{k}" for k in rng.integers(0, 40, 500)], np.ones(500)) for n in (80, 120)]
  cases.append(tuple(own))
  for s, t in cases:
    assert tasks._counts(s, t) == _plain_counts(s, t)
