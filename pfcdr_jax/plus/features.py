"""The bilinear model's features: item biases, the per-user source scalars (offset,
rating spread, crowd agreement) and the feature rows z_u and x_j."""

from __future__ import annotations

import numpy as np

SOURCE_ITEM_SHRINKAGE = 10.0   # lambda of the source item biases (offset_debias, crowd)


def item_bias(item: np.ndarray, rating: np.ndarray, n_items: int, mu: float,
              shrinkage: float) -> np.ndarray:
  """float64[n_items]: ``sum_j (r - mu) / (n_j + shrinkage)`` (0 for unrated items)."""
  sums = np.bincount(item, weights=rating - mu, minlength=n_items)
  counts = np.bincount(item, minlength=n_items)
  return sums / np.maximum(counts + shrinkage, 1e-12) * (counts > 0)


def source_offsets(user: np.ndarray, rating: np.ndarray, n_users: int,
                   shrinkage: float = 0.0) -> np.ndarray:
  """float64[n_users]: each user's source offset (the one scalar PFCDR+ sends).

  ``sum_u (r - mu_s) / (n_u + shrinkage)``, mu_s the source global mean; 0 for users
  without source ratings.
  """
  return item_bias(user, rating, n_users, float(np.mean(rating)), shrinkage)


def source_spread(user: np.ndarray, rating: np.ndarray, n_users: int,
                  shrinkage: float = 0.0) -> np.ndarray:
  """float64[n_users]: each user's source rating spread minus the global one.

  ``sqrt((SS_u + shrinkage * s^2) / (n_u + shrinkage)) - s``, SS_u the user's sum of
  squared deviations from their own mean, s the std of all source ratings; 0 for users
  without source ratings.
  """
  n = np.bincount(user, minlength=n_users).astype(np.float64)
  mean_u = np.bincount(user, weights=rating, minlength=n_users) / np.maximum(n, 1)
  ss = np.bincount(user, weights=(rating - mean_u[user]) ** 2, minlength=n_users)
  s = float(np.std(rating))
  return (np.sqrt((ss + shrinkage * s * s) / np.maximum(n + shrinkage, 1e-12)) - s) * (n > 0)


def crowd_agreement(source: tuple, n_users: int, shrinkage: float) -> np.ndarray:
  """float64[n_users]: how strongly each user's source ratings follow the items' biases.

  The shrunk slope ``sum_u (r - m_u) b_i / (sum_u b_i^2 + shrinkage * mean(b^2))`` of
  the user's centred source ratings on the source item biases b_i, minus its mean over
  users (0 for users without source ratings).
  """
  su, si, sr = source
  mu_s = float(np.mean(sr))
  bs = item_bias(si, sr, int(np.max(si)) + 1, mu_s, SOURCE_ITEM_SHRINKAGE)[si]
  cnt = np.bincount(su, minlength=n_users)
  m_u = np.bincount(su, weights=sr, minlength=n_users) / np.maximum(cnt, 1)
  num = np.bincount(su, weights=(sr - m_u[su]) * bs, minlength=n_users)
  den = np.bincount(su, weights=bs * bs, minlength=n_users) + shrinkage * np.mean(bs * bs)
  a = num / np.maximum(den, 1e-12)
  return (a - np.mean(a[cnt > 0])) * (cnt > 0)


def user_features(protos: np.ndarray | None, offsets: np.ndarray | None,
                  *scalars: np.ndarray) -> np.ndarray:
  """z_u: float64[n, f] = [P_u(r) for r in rs, o_u, *scalars, 1] (None parts left out).

  Args:
    protos: float[n_r, n, d] or None; offsets and each of `scalars`: float[n] or None.
  """
  parts = []
  if protos is not None:
    parts += [np.asarray(p, np.float64) for p in protos]
  for x in (offsets, *scalars):
    if x is not None:
      parts.append(np.asarray(x, np.float64)[:, None])
  n = (protos.shape[1] if protos is not None else
       offsets.shape[0] if offsets is not None else 0)
  parts.append(np.ones((n, 1)))
  return np.concatenate(parts, axis=1)


def item_features(V_t: np.ndarray | None, n_items: int,
                  bias: np.ndarray | None = None) -> np.ndarray:
  """x_j: float64[n_items, g] = [v_j, b_j, 1] (v_j / b_j left out when None)."""
  parts = [] if V_t is None else [np.asarray(V_t, np.float64)]
  if bias is not None:
    parts.append(np.asarray(bias, np.float64)[:, None])
  return np.concatenate(parts + [np.ones((n_items, 1))], 1)
