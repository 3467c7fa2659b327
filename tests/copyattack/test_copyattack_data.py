"""Tests of platform alignment, the rating-5 filter, Table 1 and item choice."""
import numpy as np
import pandas as pd
import pytest

from pfcdr_jax.copyattack import data
from pfcdr_jax.copyattack import synthetic


def _frames():
  target = pd.DataFrame(
      [("a", "X (2000)", 5.0, 3), ("a", "Y (2001)", 5.0, 1),
       ("a", "Z (1999)", 4.0, 2), ("b", "Y (2001)", 5.0, 7),
       ("b", "T (1990)", 5.0, 5), ("c", "Z (1999)", 3.0, 1)],
      columns=["user", "item", "rating", "timestamp"])
  source = pd.DataFrame(
      [("s1", "Y (2001)", 5.0, 30), ("s1", "X (2000)", 5.0, 10),
       ("s1", "S (1980)", 5.0, 20), ("s1", "T (1990)", 2.0, 5),
       ("s2", "T (1990)", 5.0, 1), ("s3", "Z (1999)", 5.0, 1),
       ("s4", "S (1980)", 5.0, 1)],
      columns=["user", "item", "rating", "timestamp"])
  return target, source


def test_alignment_filter_and_time_order():
  cd = data.align_platforms(*_frames())
  # Target: rating-5 only; users a, b; items T, X, Y (Z has no 5).
  assert cd.item_ids == ("T (1990)", "X (2000)", "Y (2001)")
  assert cd.target_user_ids == ("a", "b")
  # a's profile in time order: Y (t=1) then X (t=3).
  a_items = cd.target_pairs[cd.target_pairs[:, 0] == 0, 1].tolist()
  assert a_items == [2, 1]
  # Source keeps only shared rating-5 interactions; s3 (Z) and s4 (S) vanish.
  assert cd.source_user_ids == ("s1", "s2")
  assert cd.source_profiles[0, :cd.source_lengths[0]].tolist() == [1, 2]
  assert cd.source_profiles[1, :cd.source_lengths[1]].tolist() == [0]
  assert (cd.source_profiles[1, 1:] == -1).all()
  assert cd.stats == {
      "target_users": 2, "target_items": 3, "target_interactions": 4,
      "source_users": 2, "overlapping_items": 3, "source_interactions": 3,
      "all_rating_overlap": 4}
  table = data.table1_markdown(cd.stats)
  assert "# of Overlapping Items | 3 |" in table


def test_missing_column_and_no_overlap_raise():
  t, s = _frames()
  with pytest.raises(ValueError, match="lacks columns"):
    data.align_platforms(t.drop(columns="timestamp"), s)
  s2 = s.assign(item="Nothing (1900)")
  with pytest.raises(ValueError, match="no shared item"):
    data.align_platforms(t, s2)


def test_select_target_items_and_popularity_groups():
  cd = data.align_platforms(*synthetic.make_synthetic_platforms(0))
  items = data.select_target_items(cd, 5, seed=0, max_target_interactions=10,
                                   min_source_profiles=3)
  assert len(set(items.tolist())) == 5
  assert (cd.target_counts()[items] < 10).all()
  assert (cd.source_counts()[items] >= 3).all()
  np.testing.assert_array_equal(
      items, data.select_target_items(cd, 5, seed=0, min_source_profiles=3))
  with pytest.raises(ValueError, match="qualify"):
    data.select_target_items(cd, 5, seed=0, min_source_profiles=10**6)
  g = data.popularity_groups(cd)
  counts = cd.target_counts()
  assert np.bincount(g).max() - np.bincount(g).min() <= 1
  assert counts[g == 0].min() >= counts[g == 9].max()
