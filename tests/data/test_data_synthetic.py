"""Synthetic two-domain data: sizes, determinism, uniqueness, planted signal."""

import numpy as np
import pandas as pd
import pytest

from pfcdr_jax.data import load_task, make_synthetic_cdr
from pfcdr_jax.data.synthetic import TABLE2


@pytest.mark.parametrize("like", sorted(TABLE2))
def test_sizes_follow_table2(like):
  scale = 0.002
  src, tgt, info = make_synthetic_cdr(0, like=like, scale=scale)
  t = TABLE2[like]
  assert info["synthetic"] is True and info["task"] == f"synthetic-{like}"
  for d, df in enumerate((src, tgt)):
    assert df["user"].nunique() == round(t["users"][d] * scale)
    assert df["item"].nunique() == max(20, round(t["items"][d] * scale))
    assert len(df) == round(t["ratings"][d] * scale)
    assert not df.duplicated(["user", "item"]).any()
    assert df["rating"].between(1, 5).all()
    assert list(df.columns) == ["user", "item", "rating", "timestamp"]
    assert df["rating"].dtype == np.float32 and df["timestamp"].dtype == np.int64
  assert len(set(src["user"]) & set(tgt["user"])) == max(10, round(t["overlap"] * scale))
  assert info["counts"]["n_overlap"] == len(set(src["user"]) & set(tgt["user"]))


def test_deterministic():
  a = make_synthetic_cdr(3, scale=0.005)
  b = make_synthetic_cdr(3, scale=0.005)
  c = make_synthetic_cdr(4, scale=0.005)
  pd.testing.assert_frame_equal(a[0], b[0])
  pd.testing.assert_frame_equal(a[1], b[1])
  assert a[2] == b[2]
  assert not a[1].equals(c[1])


def test_tiny_scale_still_valid():
  src, tgt, info = make_synthetic_cdr(0, scale=1e-6)
  assert info["counts"]["n_overlap"] == 10
  assert not src.duplicated(["user", "item"]).any() and not tgt.duplicated(["user", "item"]).any()


def test_ratings_spread_over_the_scale():
  src, tgt, _ = make_synthetic_cdr(0, scale=0.01, noise=0.0)
  for df in (src, tgt):
    counts = df["rating"].value_counts(normalize=True)
    assert len(counts) >= 4 and counts.max() < 0.6


def test_load_task_synthetic(tmp_path):
  src, tgt, info = load_task("synthetic", data_dir=tmp_path, seed=1, scale=0.002,
                             like="book2music")
  assert info["task"] == "synthetic-book2music" and info["synthetic"] is True
  assert info["source_name"] == "synthetic-Books"
  assert info["n_duplicates_dropped"] == {"source": 0, "target": 0}
