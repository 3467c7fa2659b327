"""A pre-training profile of a cross-domain split: sizes, sparsity, cold items.

:func:`data_profile` describes a :class:`~pfcdr_jax.data.splits.CDRData` as a
JSON-able dict (computed from the split alone, before any training),
:func:`format_profile` prints it in a few console lines and
:func:`profile_warnings` names the shapes on which learned models are known to
struggle (thresholds: the module constants below).

Conventions: the ``"target"`` block pools target train, val and test ratings;
per-user / per-item statistics are over the users / items with at least one
rating in the block (not the whole index space); ``rating_std`` is the
population standard deviation (``ddof=0``); percentiles use numpy's default
linear interpolation. Floats are rounded to 6 significant digits and ints are
Python ints. A share or statistic over nothing (e.g. the cold-item share of an
empty validation set) is ``None`` (JSON ``null``), never NaN.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from pfcdr_jax.data import splits

# profile_warnings thresholds.
MAX_TEST_COLD_ITEM_SHARE = 0.2  # warn above this share of test ratings on cold items
MIN_MEDIAN_RATINGS_PER_ITEM = 3  # warn below this median, target train
MIN_MEDIAN_RATINGS_PER_USER = 3  # warn below this median, per domain
MIN_OVERLAP_USERS = 100  # warn below this many overlapping users

_SIGNIFICANT_DIGITS = 6


def _round(x) -> Optional[float]:
  """Rounds to 6 significant digits; None for None or a non-finite value."""
  if x is None or not math.isfinite(float(x)):
    return None
  return float(f"{float(x):.{_SIGNIFICANT_DIGITS}g}")


def _count_stats(counts: np.ndarray) -> dict:
  """{"median", "p10", "p90", "mean"} of the positive entries of ``counts``.

  Args:
    counts: Ratings per user (or item) over the index space, zeros included.

  Returns:
    The statistics over the entries >= 1 (all None if there are none).
  """
  c = counts[counts > 0].astype(np.float64)
  if not len(c):
    return {"median": None, "p10": None, "p90": None, "mean": None}
  p10, median, p90 = np.percentile(c, [10, 50, 90])
  return {"median": _round(median), "p10": _round(p10), "p90": _round(p90),
          "mean": _round(c.mean())}


def _block(user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int,
           n_items: int) -> dict:
  """Profile of one set of ratings (one domain, or the pooled target splits).

  Args:
    user: int user indices.
    item: int item indices.
    rating: Ratings.
    n_users: Size of the user index space.
    n_items: Size of the item index space.

  Returns:
    Dict with ratings, users, items, density, ratings_per_user,
    ratings_per_item, rating_mean and rating_std.
  """
  per_user = np.bincount(user, minlength=n_users)
  per_item = np.bincount(item, minlength=n_items)
  users, items = int((per_user > 0).sum()), int((per_item > 0).sum())
  r = np.asarray(rating, dtype=np.float64)
  return {
      "ratings": int(len(r)),
      "users": users,
      "items": items,
      "density": _round(len(r) / (users * items)) if users and items else None,
      "ratings_per_user": _count_stats(per_user),
      "ratings_per_item": _count_stats(per_item),
      "rating_mean": _round(r.mean()) if len(r) else None,
      "rating_std": _round(r.std()) if len(r) else None,
  }


def _cold_share(d: splits.DomainData, train_counts: np.ndarray) -> Optional[float]:
  """Share of the ratings of ``d`` on items with no training rating (None if empty)."""
  if not len(d):
    return None
  return _round(np.mean(train_counts[d.item] == 0))


def data_profile(data: splits.CDRData) -> dict:
  """A JSON-able profile of a split, computed before training.

  Args:
    data: The split.

  Returns:
    Dict with:
      ``"source"``, ``"target"``: per-domain blocks (target = train + val +
        test ratings), each with ratings, users and items (those with >= 1
        rating), density (ratings / (users * items)), ratings_per_user and
        ratings_per_item ({"median", "p10", "p90", "mean"} over users / items
        with >= 1 rating), rating_mean, rating_std;
      ``"overlap_users"``, ``"test_users"``, ``"test_ratings"``,
      ``"val_users"``, ``"bridge_users"`` (overlap users kept in target
        training), ``"target_train_ratings"``;
      ``"target_train_ratings_per_item"``: the per-item statistics of target
        train alone (what :func:`profile_warnings` checks);
      ``"test_cold_item_share"``, ``"val_cold_item_share"``: share of the
        test / val ratings whose item has no target_train rating (None when
        the set is empty);
      ``"target_items_with_one_train_rating_share"``: among target items with
        >= 1 training rating, the share that have exactly one (None if none).
  """
  src, tt, tv, te = data.source, data.target_train, data.target_val, data.target_test
  target = _block(np.concatenate([tt.user, tv.user, te.user]),
                  np.concatenate([tt.item, tv.item, te.item]),
                  np.concatenate([tt.rating, tv.rating, te.rating]),
                  tt.n_users, tt.n_items)
  train_per_item = np.bincount(tt.item, minlength=tt.n_items)
  trained_items = int((train_per_item > 0).sum())
  one = int((train_per_item == 1).sum())
  return {
      "source": _block(src.user, src.item, src.rating, src.n_users, src.n_items),
      "target": target,
      "overlap_users": int(data.n_overlap),
      "test_users": int(len(data.test_users)),
      "test_ratings": int(len(te)),
      "val_users": int(len(data.val_users)),
      "bridge_users": int(len(data.train_users)),
      "target_train_ratings": int(len(tt)),
      "target_train_ratings_per_item": _count_stats(train_per_item),
      "test_cold_item_share": _cold_share(te, train_per_item),
      "val_cold_item_share": _cold_share(tv, train_per_item),
      "target_items_with_one_train_rating_share":
          _round(one / trained_items) if trained_items else None,
  }


def _num(x) -> str:
  """A count or statistic for the console: thousands separators, 'n/a' for None."""
  if x is None:
    return "n/a"
  if float(x).is_integer():
    return f"{int(x):,}"
  return f"{x:,.3g}"


def _pct(x) -> str:
  return "n/a" if x is None else f"{100 * x:.1f}%"


def _spread(stats: dict) -> str:
  return (f"median {_num(stats['median'])} (p10 {_num(stats['p10'])}, "
          f"p90 {_num(stats['p90'])})")


def _block_line(name: str, b: dict) -> str:
  density = "n/a" if b["density"] is None else f"{b['density']:.1e}"
  mean = "n/a" if b["rating_mean"] is None else f"{b['rating_mean']:.3g}"
  std = "n/a" if b["rating_std"] is None else f"{b['rating_std']:.3g}"
  return (f"{name}: {b['ratings']:,} ratings, {b['users']:,} users, {b['items']:,} items, "
          f"density {density}, per user {_spread(b['ratings_per_user'])}, "
          f"per item {_spread(b['ratings_per_item'])}, rating {mean} +- {std}")


def format_profile(profile: dict) -> str:
  """A compact console summary of :func:`data_profile` (4 lines).

  Args:
    profile: A :func:`data_profile` dict.

  Returns:
    Lines for the source, the pooled target, target train, and the split
    (overlap / bridge / val / test users, test ratings, cold-item shares).
  """
  p = profile
  return "\n".join([
      _block_line("source", p["source"]),
      _block_line("target (train+val+test)", p["target"]),
      (f"target train: {p['target_train_ratings']:,} ratings, per item "
       f"{_spread(p['target_train_ratings_per_item'])}, items with one train rating "
       f"{_pct(p['target_items_with_one_train_rating_share'])}"),
      (f"split: {p['overlap_users']:,} overlap users ({p['bridge_users']:,} bridge, "
       f"{p['val_users']:,} val, {p['test_users']:,} test), {p['test_ratings']:,} test "
       f"ratings; cold-item share: test {_pct(p['test_cold_item_share'])}, "
       f"val {_pct(p['val_cold_item_share'])}"),
  ])


def profile_warnings(profile: dict) -> list[str]:
  """One-line warnings for data shapes on which learned models struggle.

  Fires on: a test cold-item share above ``MAX_TEST_COLD_ITEM_SHARE``; a
  target-train median of ratings per item below
  ``MIN_MEDIAN_RATINGS_PER_ITEM``; a median of ratings per user below
  ``MIN_MEDIAN_RATINGS_PER_USER`` in the source or the (pooled) target; fewer
  than ``MIN_OVERLAP_USERS`` overlapping users. Undefined values (None) never
  fire.

  Args:
    profile: A :func:`data_profile` dict.

  Returns:
    The warnings, in that order (empty if none fires).
  """
  p, out = profile, []
  cold = p["test_cold_item_share"]
  if cold is not None and cold > MAX_TEST_COLD_ITEM_SHARE:
    out.append(f"{_pct(cold)} of test ratings are on items with no training rating: every "
               "model predicts those from user/global terms only")
  med = p["target_train_ratings_per_item"]["median"]
  if med is not None and med < MIN_MEDIAN_RATINGS_PER_ITEM:
    out.append(f"median ratings per item in target train is {_num(med)} (< "
               f"{MIN_MEDIAN_RATINGS_PER_ITEM}): most item factors are fit from very few "
               "ratings")
  for domain in ("source", "target"):
    med = p[domain]["ratings_per_user"]["median"]
    if med is not None and med < MIN_MEDIAN_RATINGS_PER_USER:
      out.append(f"median ratings per user in the {domain} domain is {_num(med)} (< "
                 f"{MIN_MEDIAN_RATINGS_PER_USER}): most {domain} user factors are fit from "
                 "very few ratings")
  if p["overlap_users"] < MIN_OVERLAP_USERS:
    out.append(f"only {p['overlap_users']:,} overlapping users (< {MIN_OVERLAP_USERS}): "
               f"bridge users {p['bridge_users']:,} (to learn the cross-domain mapping from), "
               f"test users {p['test_users']:,} (to measure it on)")
  return out
