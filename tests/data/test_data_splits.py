"""Split invariants: id order, cold-start isolation, determinism, manifest."""

import json

import numpy as np
import pytest

from pfcdr_jax.data import DataError, make_cdr_split, make_synthetic_cdr, save_manifest
from pfcdr_jax.data.interactions import make_frame


@pytest.fixture(scope="module")
def frames():
  src, tgt, _ = make_synthetic_cdr(0, scale=0.01)
  return src, tgt


def test_invariants(frames):
  src, tgt = frames
  d = make_cdr_split(src, tgt, beta=0.2, seed=7, name="t")
  o = d.n_overlap
  assert o == len(set(src["user"]) & set(tgt["user"]))
  # Overlap users first, same index in both domains, each block sorted.
  assert d.source_user_ids[:o] == d.target_user_ids[:o]
  assert list(d.source_user_ids[:o]) == sorted(d.source_user_ids[:o])
  assert list(d.source_user_ids[o:]) == sorted(d.source_user_ids[o:])
  assert list(d.target_user_ids[o:]) == sorted(d.target_user_ids[o:])
  assert not set(d.source_user_ids[o:]) & set(d.target_user_ids[o:])
  assert list(d.source_item_ids) == sorted(d.source_item_ids)
  assert list(d.target_item_ids) == sorted(d.target_item_ids)
  # Users: test / val / train partition the overlap.
  assert len(d.test_users) == round(0.2 * o)
  assert len(d.val_users) == round(0.1 * (o - len(d.test_users)))
  parts = np.concatenate([d.train_users, d.val_users, d.test_users])
  assert sorted(parts.tolist()) == list(range(o))
  for u in (d.train_users, d.val_users, d.test_users):
    assert np.all(np.diff(u) > 0) and u.dtype == np.int32
  # No test or val user has any target training rating.
  assert not np.isin(d.target_train.user, d.test_users).any()
  assert not np.isin(d.target_train.user, d.val_users).any()
  assert set(d.target_test.user.tolist()) == set(d.test_users.tolist())
  assert set(d.target_val.user.tolist()) == set(d.val_users.tolist())
  assert not d.target_trained[d.test_users].any() and d.target_trained[d.train_users].all()
  # Counts add up.
  assert len(d.source) == len(src)
  assert len(d.target_train) + len(d.target_val) + len(d.target_test) == len(tgt)
  assert d.source.n_users == src["user"].nunique() and d.source.n_items == src["item"].nunique()
  assert d.target_train.n_users == d.target_test.n_users == len(d.target_user_ids)
  m = d.manifest
  assert m["n_test_users"] == len(d.test_users) and m["n_test_ratings"] == len(d.target_test)
  assert m["counts"]["target"]["ratings"] == len(tgt)
  # Ratings map back to the original frame.
  row = tgt.iloc[0]
  u = d.target_user_ids.index(row["user"])
  j = d.target_item_ids.index(row["item"])
  for dom in (d.target_train, d.target_val, d.target_test):
    hit = (dom.user == u) & (dom.item == j)
    if hit.any():
      assert dom.rating[hit][0] == row["rating"]
      break
  else:
    raise AssertionError("rating lost")


def test_deterministic_and_seed_dependent(frames):
  src, tgt = frames
  a = make_cdr_split(src, tgt, beta=0.2, seed=1, name="t")
  b = make_cdr_split(src.sample(frac=1.0, random_state=0), tgt, beta=0.2, seed=1, name="t")
  c = make_cdr_split(src, tgt, beta=0.2, seed=2, name="t")
  assert a.manifest == b.manifest  # row order of the input does not matter
  np.testing.assert_array_equal(a.source.user, b.source.user)
  np.testing.assert_array_equal(a.source.item, b.source.item)
  assert not np.array_equal(a.test_users, c.test_users)
  assert a.manifest["sha256"]["test_users"] != c.manifest["sha256"]["test_users"]


def test_manifest_saved_atomically(frames, tmp_path):
  d = make_cdr_split(*frames, beta=0.3, seed=0, name="synthetic-music2movie")
  path = tmp_path / "out" / "manifest.json"
  save_manifest(d, path)
  m = json.loads(path.read_text())
  assert m == d.manifest
  for key in ("task", "beta", "seed", "counts", "n_overlap", "n_test_users", "n_test_ratings",
              "n_val_users", "sha256", "duplicates_dropped"):
    assert key in m
  assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]


def test_duplicates_counted_and_arrays_read_only():
  src = make_frame(["a", "a", "b"], ["x", "x", "y"], [1, 2, 3], [1, 2, 3])
  tgt = make_frame(["a", "b", "c"], ["p", "q", "p"], [4, 5, 1])
  d = make_cdr_split(src, tgt, beta=0.5, seed=0, val_fraction=0.0, name="tiny")
  assert d.manifest["duplicates_dropped"] == {"source": 1, "target": 0}
  assert d.source.rating.tolist() == [2.0, 3.0]
  with pytest.raises(ValueError):
    d.source.rating[0] = 1.0


def test_bad_splits(frames):
  src, tgt = frames
  with pytest.raises(ValueError):
    make_cdr_split(src, tgt, beta=1.0, seed=0)
  one = make_frame(["a"], ["x"], [1])
  with pytest.raises(DataError, match="no overlapping training users"):
    make_cdr_split(one, make_frame(["a"], ["y"], [2]), beta=0.6, seed=0)
  with pytest.raises(DataError, match="empty domain"):
    make_cdr_split(one, make_frame([], [], []), beta=0.2, seed=0)
  with pytest.raises(DataError, match="zero overlapping"):
    make_cdr_split(one, make_frame(["b"], ["y"], [2]), beta=0.2, seed=0)
