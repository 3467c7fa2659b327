"""SourceUserMean floor: a cold user's mean source rating, shifted to the target scale.

``pred(u, j) = mean_s(u) - mean_s + mean_t`` where ``mean_s(u)`` is user u's mean
source rating, ``mean_s`` the global source mean and ``mean_t`` the global target
training mean. It transfers one scalar per user (their rating generosity) and nothing
item-specific, so it is the floor a cross-domain method must beat to show it transfers
more than a user bias. Optionally shrunk towards the global mean with ``k`` pseudo
ratings: ``(sum_u + k mean_s) / (n_u + k)`` (``k = 0`` is the plain mean).

Users without source ratings (cannot happen for overlap users) get ``mean_t``.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import numpy as np

from pfcdr_jax.infra import phase_timer

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SourceUserMeanConfig:
  """Settings.

  Attributes:
    shrinkage: pseudo-count ``k`` pulling a user's mean towards the source mean.
    clip: optional ``(low, high)`` rating range to clip predictions to.
  """
  shrinkage: float = 0.0
  clip: Optional[tuple[float, float]] = None


def user_means(user: np.ndarray, rating: np.ndarray, n_users: int,
               shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """Per-user mean rating (shrunk towards the global mean with ``shrinkage`` pseudo-counts).

  Args:
    user: ``int[R]`` user index of each rating.
    rating: ``float[R]`` ratings.
    n_users: number of users ``U``.
    shrinkage: pseudo-count ``k >= 0``.

  Returns:
    ``(mean float64[U], count int64[U])``; users without ratings get the global mean.
  """
  if rating.size == 0:
    raise ValueError("user_means: no ratings")
  if shrinkage < 0:
    raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
  sums = np.bincount(user, weights=rating, minlength=n_users)
  counts = np.bincount(user, minlength=n_users)
  g = float(np.mean(rating))
  denom = counts + shrinkage
  means = np.where(denom > 0, (sums + shrinkage * g) / np.maximum(denom, 1e-12), g)
  return means, counts


def fit_predict(source: tuple[np.ndarray, np.ndarray, np.ndarray],
                target_train: tuple[np.ndarray, np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], *, n_users_src: int,
                cfg: SourceUserMeanConfig = SourceUserMeanConfig(),
                key=None) -> np.ndarray:
  """SourceUserMean predictions for the test pairs.

  Args:
    source: ``(user int[R_s], item int[R_s], rating float[R_s])`` all source ratings.
    target_train: ``(user, item, rating)`` target training ratings (only the mean is used).
    test: ``(user int[T], item int[T])`` cold-start pairs; users are overlap users,
      whose index is the same in both domains.
    n_users_src: ``U_s``.
    cfg: settings.
    key: unused (deterministic); accepted for a uniform baseline signature.

  Returns:
    ``float32[T]`` predictions.
  """
  del key
  s_user, _, s_rating = (np.asarray(a) for a in source)
  t_rating = np.asarray(target_train[2])
  test_user = np.asarray(test[0])
  if t_rating.size == 0:
    raise ValueError("SourceUserMean: no target training ratings")
  if test_user.size and (test_user.min() < 0 or test_user.max() >= n_users_src):
    raise ValueError("SourceUserMean: test users must be source (overlap) user indices")
  means, counts = user_means(s_user, s_rating.astype(np.float64), n_users_src, cfg.shrinkage)
  shift = float(np.mean(t_rating)) - float(np.mean(s_rating))
  with phase_timer.predicting(test_user.size):
    pred = means[test_user] + shift
  n_missing = int(np.sum(counts[test_user] == 0))
  if n_missing:
    log.info("SourceUserMean: %d of %d test ratings belong to users without source "
             "ratings; they get the target mean", n_missing, test_user.size)
  if cfg.clip is not None:
    pred = np.clip(pred, *cfg.clip)
  return pred.astype(np.float32)
