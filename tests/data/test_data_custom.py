"""Custom CSV/TSV interaction files and the task front door."""

import pandas as pd
import pytest

from pfcdr_jax.data import TASK_NAMES, load_task, make_cdr_split
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.data.custom_tables import read_interaction_table
from pfcdr_jax.data.interactions import deduplicate, make_frame, validate


def test_task_names():
  assert TASK_NAMES[:6] == ("comedy2drama", "book2movie", "book2music", "music2movie",
                            "custom", "synthetic")
  assert {"action2romance", "ml100k_comedy2drama"} <= set(TASK_NAMES)


@pytest.mark.parametrize("text", [
    "user_id\titem_id\trating\nu1\ti1\t4\nu2\ti2\t3.5\n",
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t-1\n"
    "u2\ti2\t3.5\t-1\n",
    "userId,movieId,rating,timestamp\nu1,i1,4,-1\nu2,i2,3.5,-1\n",
    "reviewerID;asin;overall\nu1;i1;4\nu2;i2;3.5\n",
    "USER ITEM RATING\nu1 i1 4\nu2  i2 3.5\n",
    'user,item,rating,comment\nu1,i1,4,"a, b"\nu2,i2,3.5,ok\n',
])
def test_read_interaction_table_formats(tmp_path, text):
  path = tmp_path / "inter.txt"
  path.write_text(text)
  df = read_interaction_table(path)
  expected = make_frame(["u1", "u2"], ["i1", "i2"], [4.0, 3.5])
  pd.testing.assert_frame_equal(df, expected)


def test_timestamps_and_any_finite_rating(tmp_path):
  path = tmp_path / "a.csv"
  path.write_text("user,item,rating,unixReviewTime\nu1,i1,-2.5,100\nu1,i2,17,200\n")
  df = read_interaction_table(path)
  assert df["rating"].tolist() == [-2.5, 17.0] and df["timestamp"].tolist() == [100, 200]


@pytest.mark.parametrize("text, line, field, pattern", [
    ("user\titem\nu1\ti1\n", 1, "rating", "no rating column"),
    ("user\tuser_id\titem\trating\n", 1, "user_id", "two columns"),
    ("user\titem\trating\nu1\ti1\t4\nu2\ti2\tbad\n", 3, "rating", "numeric"),
    ("user\titem\trating\nu1\ti1\t4\nu2\ti2\tinf\n", 3, "rating", "finite"),
    ("user\titem\trating\nu1\ti1\t4\nu2\ti2\n", 3, None, "expected 3 fields"),
    ("user\titem\trating\nu1\ti1\t4\t9\n", 2, None, "expected 3 fields"),
    ("user,item,rating,timestamp\nu1,i1,4,1.5\n", 2, "timestamp", "integer"),
    ("", 1, None, "empty"),
])
def test_custom_bad_input(tmp_path, text, line, field, pattern):
  path = tmp_path / "bad_custom.tsv"
  path.write_text(text)
  with pytest.raises(DataError, match=pattern) as info:
    read_interaction_table(path)
  assert info.value.line == line and info.value.field == field
  assert f"bad_custom.tsv:{line}" in str(info.value)


def test_missing_file(tmp_path):
  with pytest.raises(DataError, match="not found") as info:
    read_interaction_table(tmp_path / "nope.csv")
  assert "nope.csv" in str(info.value)


def test_deduplicate_policy():
  df = make_frame(["a", "a", "a", "b", "a"], ["x", "x", "y", "x", "x"],
                  [1, 2, 3, 4, 5], [10, 30, 5, 1, 30])
  out, n = deduplicate(df, name="t")
  assert n == 2
  # (a, x): ts 30 twice -> the last line (rating 5) wins; order of survivors kept.
  assert out.values.tolist() == [["a", "y", 3.0, 5], ["b", "x", 4.0, 1], ["a", "x", 5.0, 30]]


def test_validate():
  with pytest.raises(DataError, match="empty domain"):
    validate(make_frame([], [], []), name="t")
  with pytest.raises(DataError, match="rating"):
    validate(make_frame(["a"], ["b"], [7.0]), name="t", rating_range=(1, 5))
  validate(make_frame(["a"], ["b"], [7.0]), name="t", rating_range=None)


def test_load_task_custom(tmp_path):
  a, b = tmp_path / "books.tsv", tmp_path / "movies.csv"
  a.write_text("user_id:token\titem_id:token\trating:float\nu1\tb1\t5\nu2\tb2\t3\nu1\tb1\t4\n")
  b.write_text("userId,movieId,rating\nu1,m1,2\nu3,m2,4\n")
  src, tgt, info = load_task("custom", data_dir=tmp_path, source_file=a, target_file=b)
  assert info["task"] == "custom" and info["synthetic"] is False
  assert (info["source_name"], info["target_name"]) == ("books", "movies")
  assert [f["role"] for f in info["files"]] == ["source", "target"]
  assert info["n_duplicates_dropped"] == {"source": 1, "target": 0}
  assert len(src) == 2 and len(tgt) == 2 and info["counts"]["n_overlap"] == 1


def test_custom_zero_overlap_and_empty_domain(tmp_path):
  a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
  a.write_text("user,item,rating\nu1,i1,5\n")
  b.write_text("user,item,rating\nu2,i1,5\n")
  c.write_text("user,item,rating\n")
  src, tgt, _ = load_task("custom", data_dir=tmp_path, source_file=a, target_file=b)
  with pytest.raises(DataError, match="zero overlapping users"):
    make_cdr_split(src, tgt, beta=0.2, seed=0, name="custom")
  with pytest.raises(DataError, match=r"c\.csv:2: no ratings after the header"):
    load_task("custom", data_dir=tmp_path, source_file=a, target_file=c)


def test_load_task_argument_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown task"):
    load_task("nope", data_dir=tmp_path)
  with pytest.raises(ValueError, match="source_file"):
    load_task("custom", data_dir=tmp_path)
  with pytest.raises(ValueError, match="only used"):
    load_task("synthetic", data_dir=tmp_path, source_file="x")


def test_default_data_dir(monkeypatch, tmp_path):
  from pfcdr_jax.data import default_data_dir
  monkeypatch.setenv("PFCDR_DATA_DIR", str(tmp_path))
  assert default_data_dir() == tmp_path
  monkeypatch.delenv("PFCDR_DATA_DIR")
  assert str(default_data_dir()).endswith(".cache/pfcdr_jax")
