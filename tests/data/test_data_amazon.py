"""Amazon 2014 parsers on tiny fixtures written in the published formats."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from pfcdr_jax.data import amazon
from pfcdr_jax.data.errors import DataError, DownloadError
from pfcdr_jax.data.tasks import load_task

ROWS = [  # reviewerID, asin, overall, unixReviewTime
    ("A2SUAM1J3GNN3B", "0000013714", 5.0, 1252800000),
    ("A18C9SNLZWVBIE", "0000013714", 4.0, 1368662400),
    ("A2SUAM1J3GNN3B", "0005080789", 1.0, 1353974400),
    ("AJRKMR8V0CVG3", "000503860X", 3.0, 1206489600),
]


def review_line(user, item, rating, ts, **extra):
  """One line exactly as in reviews_<Category>_5.json.gz (key order and separators)."""
  obj = {"reviewerID": user, "asin": item, "reviewerName": 'J. "Mac" Donald',
         "helpful": [2, 3], "reviewText": 'It said "overall": 1, honestly. \u00e9',
         "overall": rating, "summary": "Heavenly", "unixReviewTime": ts,
         "reviewTime": "09 13, 2009"}
  obj.update(extra)
  return json.dumps(obj)


def write_reviews(path, lines):
  with gzip.open(path, "wt", encoding="utf-8") as f:
    for line in lines:
      f.write(line + "\n")
  return path


def write_ratings_csv(path, rows):
  path.write_text("".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
  return path


def expected_frame(rows):
  return pd.DataFrame({
      "user": pd.Series([r[0] for r in rows], dtype=str),
      "item": pd.Series([r[1] for r in rows], dtype=str),
      "rating": np.array([r[2] for r in rows], dtype=np.float32),
      "timestamp": np.array([r[3] for r in rows], dtype=np.int64)})


def ids_as_strings(df):
  """The frame with its id columns as plain strings; they must be categorical."""
  for col in ("user", "item"):
    assert isinstance(df[col].dtype, pd.CategoricalDtype), (col, df[col].dtype)
  return df.astype({"user": str, "item": str})


def test_both_formats_give_identical_frames(tmp_path):
  js = amazon.read_reviews_json_gz(
      write_reviews(tmp_path / "reviews_Books_5.json.gz", [review_line(*r) for r in ROWS]))
  csv = amazon.read_ratings_csv(write_ratings_csv(tmp_path / "ratings_Books.csv", ROWS))
  pd.testing.assert_frame_equal(ids_as_strings(js), expected_frame(ROWS))
  pd.testing.assert_frame_equal(ids_as_strings(csv), expected_frame(ROWS))


def test_slow_path_blocks_keep_file_order(tmp_path):
  # An escaped id and a different key order defeat the fast regex; the block
  # is re-parsed with json.loads and the result must be the same.
  lines = [review_line(*r) for r in ROWS]
  lines[1] = json.dumps({"asin": ROWS[1][1], "reviewerID": ROWS[1][0], "overall": 4,
                         "unixReviewTime": ROWS[1][3]})
  rows = list(ROWS) + [('A"quoted', "B00X", 2.0, 5)]
  lines.append(review_line(*rows[-1]))
  df = amazon.read_reviews_json_gz(write_reviews(tmp_path / "r.json.gz", lines))
  pd.testing.assert_frame_equal(ids_as_strings(df), expected_frame(rows))


@pytest.mark.parametrize("bad_line, field, pattern", [
    ("{not json", None, "invalid JSON"),
    (json.dumps({"reviewerID": "A", "asin": "B", "overall": 5.0}), "unixReviewTime", "missing"),
    (review_line("A", "B", 7.0, 1), "overall", "out of range"),
    (review_line("A", "B", 0.0, 1), "overall", "out of range"),
    (review_line("A", "B", "five", 1), "overall", "numeric"),
    (review_line("A", "B", 5.0, "yesterday"), "unixReviewTime", "integer"),
    (review_line("", "B", 5.0, 1), "reviewerID", "non-empty"),
])
def test_reviews_bad_line(tmp_path, bad_line, field, pattern):
  lines = [review_line(*r) for r in ROWS]
  lines.insert(2, bad_line)
  path = write_reviews(tmp_path / "reviews_Bad_5.json.gz", lines)
  with pytest.raises(DataError, match=pattern) as info:
    amazon.read_reviews_json_gz(path)
  err = info.value
  assert err.line == 3 and err.field == field
  assert "reviews_Bad_5.json.gz:3" in str(err)


def test_reviews_truncated_gzip(tmp_path):
  lines = [review_line(*r) for r in ROWS] * 2000
  data = gzip.compress(("\n".join(lines) + "\n").encode())
  path = tmp_path / "reviews_Trunc_5.json.gz"
  path.write_bytes(data[: len(data) // 2])
  with pytest.raises(DataError, match="truncated") as info:
    amazon.read_reviews_json_gz(path)
  assert "reviews_Trunc_5.json.gz" in str(info.value)


def test_reviews_missing_and_empty(tmp_path):
  with pytest.raises(DataError, match="not found") as info:
    amazon.read_reviews_json_gz(tmp_path / "reviews_None_5.json.gz")
  assert "reviews_None_5.json.gz" in str(info.value)
  with pytest.raises(DataError, match="empty domain"):
    amazon.read_reviews_json_gz(write_reviews(tmp_path / "e.json.gz", []))


@pytest.mark.parametrize("bad_line, field, pattern", [
    ("A,B,5.0", None, "expected 4 fields"),
    ("A,B,5.0,1,extra", None, "expected 4 fields"),
    ("A,B,x,1", "rating", "numeric"),
    ("A,B,6,1", "rating", "out of range"),
    ("A,B,nan,1", "rating", "finite"),
    ("A,B,4,soon", "timestamp", "integer"),
    (",B,4,1", "user", "empty"),
])
def test_ratings_csv_bad_line(tmp_path, bad_line, field, pattern):
  path = tmp_path / "ratings_Bad.csv"
  good = [f"{u},{i},{r},{t}" for u, i, r, t in ROWS]
  path.write_text("\n".join(good[:3] + [bad_line] + good[3:]) + "\n")
  with pytest.raises(DataError, match=pattern) as info:
    amazon.read_ratings_csv(path)
  assert info.value.line == 4 and info.value.field == field
  assert "ratings_Bad.csv:4" in str(info.value)


def test_lookup_order_prefers_reviews_json(tmp_path):
  d = tmp_path / "amazon"
  d.mkdir()
  write_ratings_csv(d / "ratings_Books.csv", ROWS[:2])
  assert len(amazon.load_amazon_domain("Books", tmp_path, download=False)) == 2
  write_reviews(d / "reviews_Books_5.json.gz", [review_line(*r) for r in ROWS])
  assert len(amazon.load_amazon_domain("Books", tmp_path, download=False)) == 4


def test_amazon_task_and_missing_files(tmp_path):
  d = tmp_path / "amazon"
  d.mkdir()
  src_rows = ROWS + [("U_SHARED", "c1", 4.0, 10)]
  tgt_rows = [("A2SUAM1J3GNN3B", "m1", 5.0, 1), ("U_SHARED", "m2", 2.0, 2),
              ("U_SHARED", "m2", 3.0, 3), ("ONLY_T", "m1", 1.0, 4)]
  write_reviews(d / "reviews_CDs_and_Vinyl_5.json.gz", [review_line(*r) for r in src_rows])
  with pytest.raises(DownloadError) as info:
    load_task("music2movie", data_dir=tmp_path, download=False)
  assert "reviews_Movies_and_TV_5.json.gz" in str(info.value)
  assert str(d / "reviews_Movies_and_TV_5.json.gz") in str(info.value)
  assert amazon.AMAZON_URL.format(category="Movies_and_TV") in str(info.value)
  write_ratings_csv(d / "ratings_Movies_and_TV.csv", tgt_rows)
  src, tgt, info = load_task("music2movie", data_dir=tmp_path, download=False)
  assert info["task"] == "music2movie" and info["synthetic"] is False
  assert (info["source_name"], info["target_name"]) == ("CDs_and_Vinyl", "Movies_and_TV")
  assert [f["format"] for f in info["files"]] == ["reviews_json_gz", "ratings_csv"]
  assert all(len(f["sha256"]) == 64 for f in info["files"])
  assert info["n_duplicates_dropped"] == {"source": 0, "target": 1}
  assert len(src) == 5 and len(tgt) == 3
  # Latest timestamp wins.
  assert tgt[(tgt.user == "U_SHARED")]["rating"].tolist() == [3.0]
  assert info["counts"]["n_overlap"] == 2
