"""Synthetic cross-domain data with a planted shared user factor.

Sizes follow the paper's Table 2 (Amazon 5-core counts) times ``scale``. Every
user has one latent factor ``p_u`` used in *both* domains (so overlapping
users carry real cross-domain signal), each domain has its own item factors
``q_j``, and a rating is ``clip(round(3.6 + p_u . q_j + noise), 1, 5)``.
Factor entries are N(0, dim**-0.25) so that ``p_u . q_j`` has unit variance.

Per-user rating counts are heavy-tailed (log-normal weights, at least one
rating per user and domain), item choice is popularity-skewed, and every
(user, item) pair is unique. Everything is vectorised numpy, deterministic
for a seed.
"""

from __future__ import annotations


from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data.interactions import make_frame

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

_MEAN_RATING = 3.6
_MIN_ITEMS = 20
_MIN_OVERLAP = 10
_CHUNK = 1 << 20


def synthetic_sizes(like: str, scale: float) -> dict:
  """Table 2 counts times ``scale``, with small floors so tiny scales still work.

  Args:
    like: One of :data:`TABLE2`.
    scale: Positive multiplier.

  Returns:
    ``{"items": (Ns, Nt), "users": (Us, Ut), "overlap": O, "ratings": (Rs, Rt)}``.

  Raises:
    ValueError: unknown ``like`` or non-positive ``scale``.
  """
  if like not in TABLE2:
    raise ValueError(f"unknown synthetic template {like!r}; expected one of {list(TABLE2)}")
  if not scale > 0:
    raise ValueError(f"scale must be > 0, got {scale}")
  t = TABLE2[like]
  overlap = max(_MIN_OVERLAP, round(t["overlap"] * scale))
  items, users, ratings = [], [], []
  for d in range(2):
    n_items = max(_MIN_ITEMS, round(t["items"][d] * scale))
    n_users = max(overlap + 1, round(t["users"][d] * scale))
    # At least ~2 ratings per user and one per item, at most half the
    # user-item matrix.
    n_ratings = min(max(round(t["ratings"][d] * scale), 2 * n_users, n_items),
                    n_users * n_items // 2)
    items.append(n_items)
    users.append(n_users)
    ratings.append(n_ratings)
  return {"items": tuple(items), "users": tuple(users), "overlap": overlap,
          "ratings": tuple(ratings)}


def _counts_per_user(rng: np.random.Generator, n_users: int, n_ratings: int,
                     n_items: int) -> np.ndarray:
  """Heavy-tailed per-user counts: >= 1 each, <= n_items each, summing to n_ratings."""
  weights = rng.lognormal(0.0, 1.0, n_users)
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


def _unique_items(rng: np.random.Generator, counts: np.ndarray, n_items: int) -> np.ndarray:
  """Popularity-skewed items, each item used at least once, no repeats within a user.

  Rows are grouped by user (``np.repeat(arange(U), counts)`` order).
  """
  pop = rng.lognormal(0.0, 1.0, n_items)
  pop /= pop.sum()
  uniform = np.full(n_items, 1.0 / n_items)
  users = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
  items = rng.choice(n_items, size=len(users), p=pop)
  # Dense users (more than half of all items) draw a random subset directly;
  # rejection sampling would crawl for them.
  dense = counts > n_items // 2
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  for u in np.flatnonzero(dense):
    items[starts[u]:starts[u] + counts[u]] = rng.permutation(n_items)[:counts[u]]
  # Anchors: one row per item (on non-dense users) so that no item is left
  # without ratings, as in a 5-core data set. Anchors never get resampled.
  anchor = np.zeros(len(users), dtype=bool)
  free_rows = np.flatnonzero(~dense[users])
  if len(free_rows) >= n_items:
    rows = rng.choice(free_rows, size=n_items, replace=False)
    items[rows] = rng.permutation(n_items)
    anchor[rows] = True
  else:
    logging.warning("synthetic: too few ratings to cover all %d items", n_items)
  for it in range(200):
    key = users * n_items + items
    # Sorted by key, anchors first within a key, so only non-anchors repeat.
    order = np.lexsort((~anchor, key))
    sorted_key = key[order]
    dup = order[1:][sorted_key[1:] == sorted_key[:-1]]
    if len(dup) == 0:
      return items
    # Drift towards uniform so users with many popular items converge.
    mix = min(1.0, it / 10)
    items[dup] = rng.choice(n_items, size=len(dup), p=(1 - mix) * pop + mix * uniform)
  raise RuntimeError("could not draw distinct items per user")


def _ratings(rng, user_f: np.ndarray, item_f: np.ndarray, users: np.ndarray,
             items: np.ndarray, noise: float) -> np.ndarray:
  out = np.empty(len(users), dtype=np.float32)
  for lo in range(0, len(users), _CHUNK):
    hi = min(lo + _CHUNK, len(users))
    dot = np.einsum("rd,rd->r", user_f[users[lo:hi]], item_f[items[lo:hi]])
    out[lo:hi] = dot + _MEAN_RATING + noise * rng.standard_normal(hi - lo)
  return np.clip(np.rint(out), 1.0, 5.0).astype(np.float32)


def make_synthetic_cdr(seed: int, *, like: str = "music2movie", scale: float = 0.01,
                       dim: int = 10, noise: float = 0.3
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Two-domain synthetic ratings with shared user factors for overlapping users.

  Args:
    seed: Seed of the single ``np.random.default_rng`` behind every choice.
    like: Table 2 template: ``"music2movie"``, ``"book2movie"`` or ``"book2music"``.
    scale: Multiplier of the Table 2 counts (1.0 = full size).
    dim: Latent dimension of the planted factors.
    noise: Std of the Gaussian rating noise (before rounding).

  Returns:
    ``(source_df, target_df, info)``: universal frames (timestamps -1) and
    ``info`` with ``task`` (``"synthetic-<like>"``), ``synthetic=True``,
    ``source_name``, ``target_name``, the generator arguments and the counts.
  """
  if dim < 1:
    raise ValueError(f"dim must be >= 1, got {dim}")
  if noise < 0:
    raise ValueError(f"noise must be >= 0, got {noise}")
  sizes = synthetic_sizes(like, scale)
  rng = np.random.default_rng(seed)
  n_overlap = sizes["overlap"]
  (us, ut), (ns, nt), (rs, rt) = sizes["users"], sizes["items"], sizes["ratings"]
  n_global = us + ut - n_overlap
  # Global users: [0, O) overlap, [O, Us) source only, [Us, n_global) target only.
  # Their string ids are a random permutation so that overlap users are not
  # simply the smallest ids.
  width = len(str(n_global))
  id_numbers = rng.permutation(n_global)
  user_ids = np.array([f"u{k:0{width}d}" for k in id_numbers], dtype=object)
  sigma = dim ** -0.25
  user_f = (sigma * rng.standard_normal((n_global, dim))).astype(np.float32)

  frames = []
  domains = (("source", np.arange(0, us), ns, rs, "s"),
             ("target", np.concatenate([np.arange(0, n_overlap), np.arange(us, n_global)]),
              nt, rt, "t"))
  for label, members, n_items, n_ratings, prefix in domains:
    item_f = (sigma * rng.standard_normal((n_items, dim))).astype(np.float32)
    counts = _counts_per_user(rng, len(members), n_ratings, n_items)
    local_items = _unique_items(rng, counts, n_items)
    global_users = np.repeat(members, counts)
    rating = _ratings(rng, user_f, item_f, global_users, local_items, noise)
    item_width = len(str(n_items))
    item_ids = np.array([f"{prefix}{k:0{item_width}d}" for k in range(n_items)], dtype=object)
    frames.append(make_frame(user_ids[global_users], item_ids[local_items], rating))
    logging.info("synthetic-%s %s: %d users, %d items, %d ratings", like, label,
                 len(members), n_items, n_ratings)
  t = TABLE2[like]
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
      "counts": {
          "source": {"users": us, "items": ns, "ratings": rs},
          "target": {"users": ut, "items": nt, "ratings": rt},
          "n_overlap": n_overlap,
      },
      "files": [],
  }
  return frames[0], frames[1], info
