"""Synthetic cross-domain data with a planted shared user factor.

Sizes follow a template times ``scale``: the paper's Table 2 (Amazon 5-core
counts, :data:`TABLE2`) or the shape of a small real pair (:data:`SHAPES`,
sizes at ``scale=1``). Every user has one latent factor ``p_u`` used in *both*
domains (so overlapping users carry real cross-domain signal), each domain has
its own item factors ``q_j``, and a rating is
``clip(round(m + signal * p_u . q_j + b_u + c_j + noise), 1, 5)`` with ``m``
the template's mean rating (3.6 for Table 2), ``b_u`` a user bias shared by
both domains and ``c_j`` an item bias (both normal with std ``bias_std``: 0.5 in
every template). Factor entries are normal with std dim**-0.25 so that
``p_u . q_j`` has unit variance.

What a model can learn of it depends on the density. At the Table 2 sizes (about 15
ratings per user and 17 per item) the 10-dimensional interaction ``p_u . q_j`` is not
recoverable by the pretrained scorers (held-out MSE at the mean predictor's with
``bias_std=0``, every learned method then at or above GlobalMean), while the biases
are: the shared user bias is the signal a cross-domain method can transfer at these
sizes. Until 2026-12-05 the Table 2 templates planted no bias (``bias_std=0`` gives
their frames of before: the biases come from a stream of their own).

Per-user rating counts are heavy-tailed (log-normal weights, at least one
rating per user and domain), item choice is popularity-skewed (log-normal
popularity, every item rated at least once), and every (user, item) pair is
unique. Everything is vectorised numpy, deterministic for a seed; the biases
come from a stream of their own, so a knob that only changes the ratings
(``signal``, ``bias_std``, ``mean_rating``, ``noise``) keeps the same users
and items.
"""

from __future__ import annotations


from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.interactions import make_frame, stable_order
from pfcdr_jax.data.sampling import popularity_draw

# Table 2 of the PFCDR paper: (source, target) items, users, ratings; overlap users.
TABLE2 = {
    "music2movie": {
        "source_name": "CDs_and_Vinyl", "target_name": "Movies_and_TV",
        "items": (64_443, 50_052), "users": (75_258, 123_960), "overlap": 18_031,
        "ratings": (1_097_592, 1_697_533)},
    "book2movie": {
        "source_name": "Books", "target_name": "Movies_and_TV",
        "items": (367_982, 50_052), "users": (603_668, 123_960), "overlap": 37_388,
        "ratings": (8_898_041, 1_697_533)},
    "book2music": {
        "source_name": "Books", "target_name": "CDs_and_Vinyl",
        "items": (367_982, 64_443), "users": (603_668, 75_258), "overlap": 16_738,
        "ratings": (8_898_041, 1_097_592)},
}

# Shapes of small real pairs, sizes at scale 1.0 (the default scale 0.01 is meant for
# TABLE2). "mean_rating" is the centre m of the planted ratings before rounding and
# clipping, chosen so that the observed mean is the pair's (clipping at 5 lowers it);
# "user_tail" / "item_tail" multiply the log-normal sigma of the users' rating counts /
# of the item popularity (``tail``); "bias_std" is the default of ``bias_std`` (real
# pairs have rating habits: ItemMean and BiasFloor beat GlobalMean on the reported ones).
SHAPES = {
    # A sparse pair a user reported: ~1.7 ratings per target item (about 70% of the
    # items have one), so with a random 80/20 rating split about 45% of the test
    # ratings fall on items without training rating; observed mean ~4.4.
    "sparse": {
        "source_name": "sparse-source", "target_name": "sparse-target",
        "items": (10_000, 12_600), "users": (4_000, 3_300), "overlap": 2_600,
        "ratings": (40_000, 22_000), "mean_rating": 4.65, "user_tail": 1.0,
        "item_tail": 1.5, "bias_std": 0.5},
    # Few items with very many ratings (the top 1% hold ~40% of the ratings), most with
    # 1-3; observed mean ~3.9.
    "longtail": {
        "source_name": "longtail-source", "target_name": "longtail-target",
        "items": (12_000, 8_000), "users": (5_000, 5_000), "overlap": 3_000,
        "ratings": (60_000, 30_000), "mean_rating": 4.0, "user_tail": 1.2,
        "item_tail": 2.5, "bias_std": 0.5},
}

_MEAN_RATING = 3.6
# Every template: TABLE2's with the historical mean and tails, then SHAPES.
# The Table 2 templates plant user and item biases as SHAPES' do (module docstring).
_TABLE2_BIAS_STD = 0.5
TEMPLATES = {**{name: dict(t, mean_rating=_MEAN_RATING, user_tail=1.0, item_tail=1.0,
                           bias_std=_TABLE2_BIAS_STD)
                for name, t in TABLE2.items()},
             **SHAPES}

_MIN_ITEMS = 20
_MIN_OVERLAP = 10
# Rows per chunk of the rating pass: its gathered factor blocks (chunk x dim float32)
# stay far below glibc's 32 MB mmap threshold, so each chunk reuses the last one's
# memory instead of faulting in a fresh mapping (1 << 20 rows made 40 MB blocks).
_CHUNK = 1 << 16
# Entropy tag of the biases' random stream (next to the seed).
_BIAS_STREAM = 0xB1A5


def synthetic_sizes(like: str, scale: float, density: float = 1.0) -> dict:
  """A template's counts times ``scale``, with small floors so tiny scales still work.

  Args:
    like: One of :data:`TEMPLATES` (TABLE2's are the paper's full sizes, SHAPES' the
      real pair's).
    scale: Positive multiplier of every count.
    density: Positive multiplier of the ratings only (same users and items); the
      floors (about 2 ratings per user, 1 per item) and the cap (half the user-item
      matrix) still apply.

  Returns:
    ``{"items": (Ns, Nt), "users": (Us, Ut), "overlap": O, "ratings": (Rs, Rt)}``.

  Raises:
    ValueError: unknown ``like``, non-positive ``scale`` or ``density``.
  """
  if like not in TEMPLATES:
    raise ValueError(f"unknown synthetic template {like!r}; expected one of {list(TEMPLATES)}")
  if not scale > 0:
    raise ValueError(f"scale must be > 0, got {scale}")
  if not (np.isfinite(density) and density > 0):
    raise ValueError(f"density must be a finite number > 0, got {density}")
  t = TEMPLATES[like]
  overlap = max(_MIN_OVERLAP, round(t["overlap"] * scale))
  items, users, ratings = [], [], []
  for d in range(2):
    n_items = max(_MIN_ITEMS, round(t["items"][d] * scale))
    n_users = max(overlap + 1, round(t["users"][d] * scale))
    # At least ~2 ratings per user and one per item, at most half the
    # user-item matrix.
    n_ratings = min(max(round(t["ratings"][d] * scale * density), 2 * n_users, n_items),
                    n_users * n_items // 2)
    items.append(n_items)
    users.append(n_users)
    ratings.append(n_ratings)
  return {"items": tuple(items), "users": tuple(users), "overlap": overlap,
          "ratings": tuple(ratings)}


def _index_dtype(n: int):
  """int32 when ``0..n-1`` fits in it, else int64."""
  return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def _padded(prefix: str, n: int, width: int) -> np.ndarray:
  """``prefix`` + the zero-padded numbers 0..n-1 (width ``width``), as strings."""
  return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width))


def _counts_per_user(rng: np.random.Generator, n_users: int, n_ratings: int,
                     n_items: int, sigma: float = 1.0) -> np.ndarray:
  """Heavy-tailed per-user counts: >= 1 each, <= n_items each, summing to n_ratings.

  ``sigma``: log-normal sigma of the users' weights (0: equal weights).
  """
  weights = rng.lognormal(0.0, sigma, n_users)
  counts = 1 + rng.multinomial(n_ratings - n_users, weights / weights.sum())
  # Users above the item count give their excess to users with room.
  for _ in range(100):
    excess = int(np.maximum(counts - n_items, 0).sum())
    if excess == 0:
      break
    counts = np.minimum(counts, n_items)
    room = (n_items - counts).astype(np.float64)
    counts += rng.multinomial(excess, room / room.sum())
  else:
    raise RuntimeError("could not spread ratings over users (too dense)")
  return counts


def _repeated_rows(key: np.ndarray, first: np.ndarray,
                   rows: np.ndarray | None = None) -> np.ndarray:
  """Rows whose key repeats: all but the first of each key in (key, first-flag, row) order.

  Args:
    key: int64 >= 0 (below 2**62) per row of ``rows``; overwritten.
    first: bool per row of ``rows``; True sorts first within a key (anchors).
    rows: Increasing int64 row numbers; None: ``0..len(key)-1`` (no array made).

  Returns:
    The repeating rows, in that sort order (``lexsort((~first, key))``'s, ties by row):
    the flag joins the key as its lowest bit, and :func:`interactions.stable_order`
    sorts the two as one value.

  Raises:
    TypeError: ``key`` not int64 or ``first`` not bool.
  """
  if first.dtype != bool:
    raise TypeError(f"expected bool flags, got {first.dtype}")
  key <<= 1
  np.bitwise_or(key, ~first, out=key)
  order, key = stable_order(key)
  key >>= 1
  repeats = order[1:][key[1:] == key[:-1]]
  return repeats if rows is None else rows[repeats]


def _unique_items(rng: np.random.Generator, counts: np.ndarray, n_items: int,
                  sigma: float = 1.0) -> np.ndarray:
  """Popularity-skewed items, each item used at least once, no repeats within a user.

  Rows are grouped by user (``np.repeat(arange(U), counts)`` order); ``sigma`` is the
  log-normal sigma of the item popularity (0: uniform).
  """
  pop = rng.lognormal(0.0, sigma, n_items)
  pop /= pop.sum()
  uniform = np.full(n_items, 1.0 / n_items)
  # int32 rows (half the bytes of int64; the keys below widen them): at 3x music2movie
  # an int64 row array of the target is 41 MB, a fresh mapping each time it is made.
  users = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
  items = popularity_draw(rng, pop, len(users), dtype=np.int32)
  # Dense users (more than half of all items) draw a random subset directly;
  # rejection sampling would crawl for them.
  dense = counts > n_items // 2
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  for u in np.flatnonzero(dense):
    items[starts[u]:starts[u] + counts[u]] = rng.permutation(n_items)[:counts[u]]
  # Anchors: one row per item (on non-dense users) so that no item is left
  # without ratings, as in a 5-core data set. Anchors never get resampled.
  anchor = np.zeros(len(users), dtype=bool)
  # Without dense users every row is free: the draw from ``len(users)`` picks what the
  # draw from the array of those rows would (``Generator.choice`` draws positions).
  free_rows = np.flatnonzero(~dense[users]) if dense.any() else None
  n_free = len(users) if free_rows is None else len(free_rows)
  if n_free >= n_items:
    rows = rng.choice(len(users) if free_rows is None else free_rows, size=n_items,
                      replace=False)
    items[rows] = rng.permutation(n_items)
    anchor[rows] = True
  else:
    logging.warning("synthetic: too few ratings to cover all %d items", n_items)
  # Rows to check: all of them first, then only the rows of users that had a row
  # redrawn (no other user's rows changed). Kept in row order, the sort of a subset of
  # whole users lists its repeats exactly as the sort of all rows would, so the
  # redraws, and the data, are the same as checking every row every time (the later
  # passes were ~80 % of the generator's time at 3x music2movie).
  key = users.astype(np.int64)
  key *= n_items
  key += items
  dup = _repeated_rows(key, anchor)
  del key
  for it in range(200):
    if len(dup) == 0:
      return items
    # Drift towards uniform so users with many popular items converge.
    mix = min(1.0, it / 10)
    items[dup] = rng.choice(n_items, size=len(dup), p=(1 - mix) * pop + mix * uniform)
    redrawn = np.zeros(len(counts), dtype=bool)
    redrawn[users[dup]] = True
    rows = np.flatnonzero(redrawn[users])
    key = users[rows].astype(np.int64)
    key *= n_items
    key += items[rows]
    dup = _repeated_rows(key, anchor[rows], rows)
  raise RuntimeError("could not draw distinct items per user")


def _ratings(rng: np.random.Generator, user_f: np.ndarray, item_f: np.ndarray,
             users: np.ndarray, items: np.ndarray, noise: float, *, signal: float = 1.0,
             offset: float = _MEAN_RATING, bias: np.ndarray | None = None) -> np.ndarray:
  """Rounded, clipped ``offset + signal * p_u . q_j (+ bias) + noise`` per row.

  ``bias``: per-row bias (user plus item), or None for none.
  """
  out = np.empty(len(users), dtype=np.float32)
  for lo in range(0, len(users), _CHUNK):
    hi = min(lo + _CHUNK, len(users))
    dot = np.einsum("rd,rd->r", user_f[users[lo:hi]], item_f[items[lo:hi]])
    centre = signal * dot + offset
    if bias is not None:
      centre = centre + bias[lo:hi]
    out[lo:hi] = centre + noise * rng.standard_normal(hi - lo)
  return np.clip(np.rint(out), 1.0, 5.0).astype(np.float32)


def _check_knobs(dim: int, noise: float, signal: float, bias_std: float,
                 tail: float, mean_rating: float | None) -> None:
  """ValueError naming the first bad generator argument."""
  checks = (("dim", dim, dim >= 1, ">= 1"),
            ("noise", noise, noise >= 0, ">= 0"),
            ("signal", signal, np.isfinite(signal) and signal >= 0, "a finite number >= 0"),
            ("bias_std", bias_std, np.isfinite(bias_std) and bias_std >= 0,
             "a finite number >= 0"),
            ("tail", tail, np.isfinite(tail) and tail >= 0, "a finite number >= 0"),
            ("mean_rating", mean_rating, mean_rating is None or np.isfinite(mean_rating),
             "a finite number or None"))
  for name, value, ok, expected in checks:
    if not ok:
      raise ValueError(f"{name} must be {expected}, got {value}")


def _biases(seed: int, bias_std: float, n_users: int, n_items: tuple[int, int]
            ) -> tuple[np.ndarray, list[np.ndarray]]:
  """Planted user biases (shared by both domains) and item biases per domain.

  Drawn from a stream of their own (so the main stream, and with it the users, items
  and factors, does not depend on ``bias_std``); all zero when ``bias_std`` is 0.
  """
  rng = np.random.default_rng([int(seed), _BIAS_STREAM])
  user_b = (bias_std * rng.standard_normal(n_users)).astype(np.float32)
  item_b = [(bias_std * rng.standard_normal(n)).astype(np.float32) for n in n_items]
  return user_b, item_b


def make_synthetic_cdr(seed: int, *, like: str = "music2movie", scale: float = 0.01,
                       dim: int = 10, noise: float = 0.3, signal: float = 1.0,
                       bias_std: float | None = None, tail: float = 1.0, density: float = 1.0,
                       mean_rating: float | None = None, return_truth: bool = False):
  """Two-domain synthetic ratings with shared user factors for overlapping users.

  With every knob at its default the frames are those of the generator before the
  knobs existed (same seed, same frames).

  Args:
    seed: Seed of the single ``np.random.default_rng`` behind every choice (the biases
      use a second stream derived from it).
    like: Template (:data:`TEMPLATES`): Table 2's ``"music2movie"``, ``"book2movie"``,
      ``"book2music"``, or a real pair's shape ``"sparse"`` / ``"longtail"``.
    scale: Multiplier of the template's counts (1.0 = its full size).
    dim: Latent dimension of the planted factors.
    noise: Std of the Gaussian rating noise (before rounding).
    signal: Multiplier of the planted interaction ``p_u . q_j`` (0: none).
    bias_std: Std of the planted user bias (one per user, shared by both domains) and
      of the planted item bias (one per item and domain); 0: none; None: the
      template's (0.5 for every template; 0 for the Table 2 templates before
      2026-12-05).
    tail: Multiplier of the template's log-normal sigmas of the users' rating counts and
      of the item popularity (1.0 for the Table 2 templates, so there ``tail`` is the
      sigma itself; 0: equal weights and uniform items).
    density: Multiplier of the number of ratings at fixed users and items
      (:func:`synthetic_sizes`).
    mean_rating: Centre ``m`` of the planted ratings before rounding and clipping to
      1-5; None: the template's (3.6 for Table 2).
    return_truth: Also return the planted model (tests and oracles, see
      :func:`planted_ratings`).

  Returns:
    ``(source_df, target_df, info)``: universal frames (timestamps -1) and
    ``info`` with ``task`` (``"synthetic-<like>"``), ``synthetic=True``,
    ``source_name``, ``target_name``, the generator arguments (``mean_rating`` the one
    used) and the counts. With ``return_truth``, a fourth element: ``{"offset",
    "signal", "user_ids", "user_factors", "user_bias", "source": {"item_ids",
    "item_factors", "item_bias"}, "target": {...}}`` (rows of the arrays follow the id
    arrays).

  Raises:
    ValueError: a bad argument.
  """
  sizes = synthetic_sizes(like, scale, density)
  t = TEMPLATES[like]
  bias_std = float(t["bias_std"] if bias_std is None else bias_std)
  _check_knobs(dim, noise, signal, bias_std, tail, mean_rating)
  offset = float(t["mean_rating"] if mean_rating is None else mean_rating)
  rng = np.random.default_rng(seed)
  n_overlap = sizes["overlap"]
  (us, ut), (ns, nt), (rs, rt) = sizes["users"], sizes["items"], sizes["ratings"]
  n_global = us + ut - n_overlap
  # Global users: [0, O) overlap, [O, Us) source only, [Us, n_global) target only.
  # Their string ids are a random permutation so that overlap users are not
  # simply the smallest ids.
  width = len(str(n_global))
  id_numbers = rng.permutation(n_global).astype(_index_dtype(n_global))
  # Zero-padded, so the sorted categories are the numbers' order: a row's id is the
  # category at code id_numbers[user] (frames hold categorical ids, see make_frame).
  sorted_ids = pd.Index(_padded("u", n_global, width), dtype=str)
  sigma = dim ** -0.25
  user_f = (sigma * rng.standard_normal((n_global, dim))).astype(np.float32)
  user_b, item_bs = _biases(seed, bias_std, n_global, (ns, nt))

  frames = []
  truth = {"offset": offset, "signal": float(signal), "user_factors": user_f,
           "user_bias": user_b}
  if return_truth:
    truth["user_ids"] = sorted_ids.take(id_numbers).to_numpy(dtype=object)
  # Row-sized index arrays in int32 where the users fit (half the bytes of int64).
  dt = _index_dtype(n_global)
  domains = (("source", np.arange(0, us, dtype=dt), ns, rs, "s"),
             ("target", np.concatenate([np.arange(0, n_overlap, dtype=dt),
                                        np.arange(us, n_global, dtype=dt)]),
              nt, rt, "t"))
  for (label, members, n_items, n_ratings, prefix), item_b in zip(domains, item_bs):
    item_f = (sigma * rng.standard_normal((n_items, dim))).astype(np.float32)
    counts = _counts_per_user(rng, len(members), n_ratings, n_items, tail * t["user_tail"])
    local_items = _unique_items(rng, counts, n_items, tail * t["item_tail"])
    global_users = np.repeat(members, counts)
    bias = user_b[global_users] + item_b[local_items] if bias_std > 0 else None
    rating = _ratings(rng, user_f, item_f, global_users, local_items, noise, signal=signal,
                      offset=offset, bias=bias)
    item_cats = pd.Index(_padded(prefix, n_items, len(str(n_items))), dtype=str)
    frames.append(make_frame(
        pd.Categorical.from_codes(id_numbers[global_users], categories=sorted_ids),
        pd.Categorical.from_codes(local_items, categories=item_cats), rating, copy=False))
    truth[label] = {"item_ids": item_cats.to_numpy(dtype=object) if return_truth else None,
                    "item_factors": item_f, "item_bias": item_b}
    logging.info("synthetic-%s %s: %d users, %d items, %d ratings", like, label,
                 len(members), n_items, n_ratings)
  info = {
      "task": f"synthetic-{like}",
      "synthetic": True,
      "like": like,
      "source_name": f"synthetic-{t['source_name']}",
      "target_name": f"synthetic-{t['target_name']}",
      "seed": int(seed),
      "scale": float(scale),
      "dim": int(dim),
      "noise": float(noise),
      "signal": float(signal),
      "bias_std": float(bias_std),
      "tail": float(tail),
      "density": float(density),
      "mean_rating": offset,
      "counts": {
          "source": {"users": us, "items": ns, "ratings": rs},
          "target": {"users": ut, "items": nt, "ratings": rt},
          "n_overlap": n_overlap,
      },
      "files": [],
  }
  if return_truth:
    return frames[0], frames[1], info, truth
  return frames[0], frames[1], info


def planted_ratings(truth: dict, domain: str, users, items) -> np.ndarray:
  """The planted model's expected ratings (before noise and rounding), clipped to 1-5.

  Args:
    truth: The fourth element of ``make_synthetic_cdr(..., return_truth=True)``.
    domain: ``"source"`` or ``"target"``.
    users, items: Equal-length sequences of user and item ids of that domain.

  Returns:
    float32 array, one oracle prediction per (user, item).
  """
  u = pd.Index(truth["user_ids"]).get_indexer(np.asarray(users, dtype=object))
  d = truth[domain]
  j = pd.Index(d["item_ids"]).get_indexer(np.asarray(items, dtype=object))
  if (u < 0).any() or (j < 0).any():
    raise ValueError(f"planted_ratings: unknown user or {domain} item id")
  dot = np.einsum("rd,rd->r", truth["user_factors"][u], d["item_factors"][j])
  centre = truth["offset"] + truth["signal"] * dot + truth["user_bias"][u] + d["item_bias"][j]
  return np.clip(centre, 1.0, 5.0).astype(np.float32)
