"""Tiny synthetic target/source platforms for tests and smoke runs.

Users belong to one of ``n_groups`` taste groups; items are split into the same
groups; a user rates a random subset of mostly in-group items with 5 (and some
with 3), at increasing timestamps. Both platforms share the item catalogue
except for a few platform-only items, so alignment and masking are exercised.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _platform(rng, prefix, n_users, items, n_groups, per_user, p_in_group,
              popularity_exponent=0.0):
  rows = []
  item_group = np.arange(len(items)) % n_groups
  # Item j's popularity weight (j + 1)^-a: a long tail for a > 0.
  pop = (np.arange(len(items)) + 1.0) ** -popularity_exponent
  for u in range(n_users):
    g = u % n_groups
    n = int(rng.integers(per_user // 2, per_user + 1))
    w = np.where(item_group == g, p_in_group, 1.0 - p_in_group)
    if popularity_exponent:
      w = w * pop
    w = w / w.sum()
    chosen = rng.choice(len(items), size=min(n, len(items)), replace=False,
                        p=w)
    for t, j in enumerate(chosen):
      rating = 5.0 if rng.random() < 0.8 else 3.0
      rows.append((f"{prefix}{u}", items[j], rating, t * 10 + u))
  return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


def make_synthetic_platforms(seed: int = 0, n_target_users: int = 60,
                             n_source_users: int = 120, n_items: int = 40,
                             n_groups: int = 4, per_user: int = 10,
                             p_in_group: float = 0.9,
                             popularity_exponent: float = 0.0):
  """Builds (target_df, source_df) in the universal ratings format.

  Args:
    seed: numpy seed.
    n_target_users: users of platform A.
    n_source_users: users of platform B.
    n_items: shared catalogue size (each platform adds 3 own items).
    n_groups: taste groups.
    per_user: maximum interactions per user.
    p_in_group: probability weight of in-group items.
    popularity_exponent: a > 0 weights item j by (j + 1)^-a on both
      platforms (a long-tailed catalogue, as real ones: most items rare on
      the target, the head shared); 0: every item alike.

  Returns:
    (target_df, source_df), item ids ``"Movie j (2000)"``.
  """
  rng = np.random.default_rng(seed)
  shared = [f"Movie {j} (2000)" for j in range(n_items)]
  t_items = shared + [f"TargetOnly {j} (1999)" for j in range(3)]
  s_items = shared + [f"SourceOnly {j} (1998)" for j in range(3)]
  target = _platform(rng, "a", n_target_users, t_items, n_groups, per_user,
                     p_in_group, popularity_exponent)
  source = _platform(rng, "b", n_source_users, s_items, n_groups,
                     per_user * 2, p_in_group, popularity_exponent)
  return target, source
