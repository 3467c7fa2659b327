"""The MovieLens genre tasks: disjoint item sets, shared users, as comedy2drama."""

import pandas as pd
import pytest

from pfcdr_jax.data import movielens
from pfcdr_jax.data import tasks
from pfcdr_jax.data.interactions import make_frame

GENRES = {"m1": ("Action",), "m2": ("Romance",), "m3": ("Action", "Romance"),
          "m4": ("Comedy",), "m5": ("Drama",), "m6": ("Comedy", "Drama"), "m7": ("War",),
          "m8": ("Action", "Comedy")}


def _fake_movielens(seen):
  users = ["u1", "u1", "u2", "u2", "u3", "u3", "u4", "u1", "u2", "u3", "u4", "u4"]
  items = ["m1", "m2", "m1", "m3", "m2", "m7", "m4", "m5", "m6", "m4", "m5", "m8"]
  ratings = make_frame(users, items, [float(1 + i % 5) for i in range(len(users))])
  movies = pd.DataFrame({"item": list(GENRES),
                         "genres": pd.Series(list(GENRES.values()), dtype=object)})

  def load(variant, data_dir=None, *, download=True):
    del data_dir, download
    seen.append(variant)
    return ratings, movies, {"files": [{"path": variant, "sha256": "0"}]}

  return load


@pytest.mark.parametrize("task, variant, src_genre, tgt_genre", [
    ("comedy2drama", "ml-1m", "Comedy", "Drama"),
    ("action2romance", "ml-1m", "Action", "Romance"),
    ("ml100k_comedy2drama", "ml-100k", "Comedy", "Drama"),
])
def test_genre_task_construction(monkeypatch, tmp_path, task, variant, src_genre, tgt_genre):
  seen = []
  monkeypatch.setattr(movielens, "load_movielens", _fake_movielens(seen))
  source, target, info = tasks.load_task(task, data_dir=tmp_path)
  assert seen == [variant]
  assert task in tasks.TASK_NAMES
  assert info["source_name"] == f"{variant}:{src_genre}"
  assert info["target_name"] == f"{variant}:{tgt_genre}"
  # Source: movies of the source genre without the target genre; target: the reverse.
  want_s = {m for m, g in GENRES.items() if src_genre in g and tgt_genre not in g}
  want_t = {m for m, g in GENRES.items() if tgt_genre in g and src_genre not in g}
  assert set(source["item"]) <= want_s and set(target["item"]) <= want_t
  assert not set(source["item"]) & set(target["item"])
  # The same user ids in both domains (users are shared, items disjoint).
  overlap = set(source["user"]) & set(target["user"])
  assert info["counts"]["n_overlap"] == len(overlap) >= 1
  assert info["counts"]["source"]["ratings"] == len(source)
