"""data_profile on hand-made splits whose answers do not depend on the random draw."""

import json
import math

import pytest

from pfcdr_jax.data import profile, splits
from pfcdr_jax.data.interactions import make_frame


def _sparse_split() -> splits.CDRData:
  """4 overlap users u0..u3 (1 test, 1 val, 2 bridge, whichever are drawn).

  Source: every u_k rates x (5); u0 also rates y (1); source-only v0 rates x, y,
  z (3 each). Target: every u_k rates its private items a_k, b_k (2) and the
  shared item s (4); target-only t0 rates s, c, d and t1 rates s, c (4 each).
  """
  su, si, sr = [], [], []
  for k in range(4):
    su.append(f"u{k}"), si.append("x"), sr.append(5)
  su += ["u0", "v0", "v0", "v0"]
  si += ["y", "x", "y", "z"]
  sr += [1, 3, 3, 3]
  tu, ti, tr = [], [], []
  for k in range(4):
    tu += [f"u{k}"] * 3
    ti += [f"a{k}", f"b{k}", "s"]
    tr += [2, 2, 4]
  tu += ["t0", "t0", "t0", "t1", "t1"]
  ti += ["s", "c", "d", "s", "c"]
  tr += [4] * 5
  return splits.make_cdr_split(make_frame(su, si, sr), make_frame(tu, ti, tr), beta=0.25,
                               seed=3, val_fraction=1 / 3, name="sparse")


def _dense_split() -> splits.CDRData:
  """120 overlap users, each rating all 5 items of both domains; no val users."""
  users = [f"u{k:03d}" for k in range(120)]
  u = [x for x in users for _ in range(5)]
  src = make_frame(u, [f"x{j}" for _ in users for j in range(5)], [3] * len(u))
  tgt = make_frame(u, [f"p{j}" for _ in users for j in range(5)], [4] * len(u))
  return splits.make_cdr_split(src, tgt, beta=0.2, seed=0, val_fraction=0.0, name="dense")


def _assert_python_types(obj):
  if isinstance(obj, dict):
    for v in obj.values():
      _assert_python_types(v)
  else:
    assert obj is None or type(obj) in (int, float), (obj, type(obj))


def test_sparse_profile_exact():
  p = profile.data_profile(_sparse_split())
  assert json.loads(json.dumps(p, allow_nan=False)) == p
  _assert_python_types(p)
  s = p["source"]
  assert (s["ratings"], s["users"], s["items"]) == (8, 5, 3)
  assert s["density"] == pytest.approx(8 / 15, rel=1e-6)
  # Per user [1, 1, 1, 2, 3]; per item [1, 2, 5].
  assert s["ratings_per_user"] == {"median": 1.0, "p10": 1.0, "p90": 2.6, "mean": 1.6}
  assert s["ratings_per_item"] == {"median": 2.0, "p10": 1.2, "p90": 4.4, "mean": 2.66667}
  assert s["rating_mean"] == 3.75
  assert s["rating_std"] == 1.39194  # sqrt(15.5 / 8), 6 significant digits
  t = p["target"]
  assert (t["ratings"], t["users"], t["items"]) == (17, 6, 11)
  assert t["density"] == pytest.approx(17 / 66, rel=1e-6)
  # Per user [2, 3, 3, 3, 3, 3]; per item [1 x 9, 2, 6].
  assert t["ratings_per_user"] == {"median": 3.0, "p10": 2.5, "p90": 3.0, "mean": 2.83333}
  assert t["ratings_per_item"] == {"median": 1.0, "p10": 1.0, "p90": 2.0, "mean": 1.54545}
  assert t["rating_mean"] == pytest.approx(52 / 17, rel=1e-5)
  assert t["rating_std"] == pytest.approx(2 * math.sqrt(72) / 17, rel=1e-5)
  assert p["overlap_users"] == 4 and p["bridge_users"] == 2
  assert p["test_users"] == 1 and p["val_users"] == 1 and p["test_ratings"] == 3
  # Train: 2 bridge users (a, b, s each) + t0 (s, c, d) + t1 (s, c).
  assert p["target_train_ratings"] == 11
  assert p["target_train_ratings_per_item"]["median"] == 1.0  # [1, 1, 1, 1, 1, 2, 4]
  assert p["test_cold_item_share"] == p["val_cold_item_share"] == 0.666667  # a_k, b_k
  assert p["target_items_with_one_train_rating_share"] == 0.714286  # 5 of 7


def test_sparse_warnings_fire():
  p = profile.data_profile(_sparse_split())
  w = profile.profile_warnings(p)
  assert len(w) == 4, w
  assert w[0].startswith("66.7% of test ratings are on items with no training rating")
  assert "median ratings per item in target train is 1 (< 3)" in w[1]
  assert "median ratings per user in the source domain is 1 (< 3)" in w[2]
  assert not any("target domain" in x for x in w)  # target median is exactly 3
  assert w[3].startswith("only 4 overlapping users (< 100)")
  assert all("\n" not in x for x in w)


def test_dense_profile_no_warnings():
  p = profile.data_profile(_dense_split())
  json.dumps(p, allow_nan=False)
  _assert_python_types(p)
  assert p["overlap_users"] == 120 and p["test_users"] == 24 and p["bridge_users"] == 96
  assert p["val_users"] == 0 and p["val_cold_item_share"] is None
  assert p["test_ratings"] == 120 and p["target_train_ratings"] == 480
  assert p["test_cold_item_share"] == 0.0
  assert p["target_items_with_one_train_rating_share"] == 0.0
  assert p["target_train_ratings_per_item"]["median"] == 96.0
  for dom in ("source", "target"):
    assert p[dom]["density"] == 1.0 and p[dom]["rating_std"] == 0.0
    assert p[dom]["ratings_per_user"]["median"] == 5.0
  assert profile.profile_warnings(p) == []


def test_warning_thresholds_are_strict():
  p = profile.data_profile(_dense_split())
  p["test_cold_item_share"] = profile.MAX_TEST_COLD_ITEM_SHARE
  p["target_train_ratings_per_item"]["median"] = float(profile.MIN_MEDIAN_RATINGS_PER_ITEM)
  p["overlap_users"] = profile.MIN_OVERLAP_USERS
  assert profile.profile_warnings(p) == []
  p["test_cold_item_share"] = 0.25
  assert len(profile.profile_warnings(p)) == 1


def test_format_profile():
  text = profile.format_profile(profile.data_profile(_sparse_split()))
  lines = text.splitlines()
  assert 1 <= len(lines) <= 6
  assert lines[0].startswith("source: 8 ratings, 5 users, 3 items, density 5.3e-01, "
                             "per user median 1 (p10 1, p90 2.6)")
  assert any("4 overlap users (2 bridge, 1 val, 1 test), 3 test ratings" in x for x in lines)
  assert "cold-item share: test 66.7%, val 66.7%" in text
  empty_val = profile.format_profile(profile.data_profile(_dense_split()))
  assert "val n/a" in empty_val and "120 overlap users" in empty_val
