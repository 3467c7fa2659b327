"""What the source sends besides the prototypes: the offsets and crowd scalars, as they
are, through the Gaussian mechanism (user level, offset only), or computed from the
per-rating Laplace-DP release of the source ratings (:func:`rating_dp_release`)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.features import crowd_agreement
from pfcdr_jax.plus.features import item_bias
from pfcdr_jax.plus.features import SOURCE_ITEM_SHRINKAGE
from pfcdr_jax.plus.features import source_offsets


def epsilon_stream(epsilon: float) -> int:
  """A seed word that differs for every budget: the bits of ``float64(epsilon)``.

  Releases at two budgets then draw independent noise. With one draw scaled by
  1 / epsilon (what this module did before), publishing two budgets reveals the
  noise-free sums: ``(e1 x1 - e2 x2) / (e1 - e2)``.
  """
  if not epsilon > 0:   # also refuses nan
    raise ValueError(f"epsilon must be > 0, got {epsilon}")
  return int(np.float64(epsilon).view(np.int64))


def gaussian_sigma(epsilon: float, delta: float, clip: float) -> float:
  """Classic Gaussian mechanism for one offset in [-clip, clip] (sensitivity 2 clip)."""
  return mechanisms.classic_gaussian_sigma(epsilon, delta, 2.0 * clip)


def noise_offsets(offsets: np.ndarray, rng: np.random.Generator, *, epsilon: float,
                  delta: float, clip: float) -> np.ndarray:
  """(epsilon, delta)-DP offsets per user: clip to [-clip, clip], add N(0, sigma^2)."""
  sigma = gaussian_sigma(epsilon, delta, clip)
  return np.clip(offsets, -clip, clip) + rng.normal(0.0, sigma, offsets.shape)


class RatingRelease(NamedTuple):
  """The source's per-rating epsilon-DP release (:func:`rating_dp_release`).

  Noised (Laplace) from the ratings' values: ``sums``, ``cross`` and the item biases.
  Functions of which items were rated, not of their values, exact: ``counts``,
  ``bias_sum``, ``bias_sq``. Everything PFCDR+ sends is computed from these (post-
  processing), at every kappa.

  Attributes:
    sums: float64[n] ``sum_u (r - m) + Lap``, m the public scale's midpoint.
    cross: float64[n] ``sum_u (r - m) * b~_i + Lap``.
    counts: int64[n] each user's number of source ratings.
    bias_sum, bias_sq: float64[n] ``sum_u b~_i`` and ``sum_u b~_i^2``.
    item_bias: float64[N] the noised source item biases b~_i, clipped to +-bias_clip.
    mu: the global mean estimated from the noised item sums.
    mean_bias_sq: mean of b~_i^2 over the source ratings (the crowd's shrinkage unit).
  """
  sums: np.ndarray
  cross: np.ndarray
  counts: np.ndarray
  bias_sum: np.ndarray
  bias_sq: np.ndarray
  item_bias: np.ndarray
  mu: float
  mean_bias_sq: float


RATING_DP_SHARES = (0.2, 0.4, 0.4)   # epsilon of item sums, user sums, user cross sums
RATING_DP_BIAS_CLIP = 1.0           # |b~_i| bound: the cross sums' sensitivity factor


def rating_dp_release(source: tuple, n_users: int, *, epsilon: float,
                      rating_scale: tuple[float, float], seed: int) -> RatingRelease:
  """The source's release under per-rating DP: epsilon for any one rating's value.

  Neighbouring data sets differ in the value of one rating, within the public scale
  [lo, hi]; that moves one item sum and one user sum by at most hi - lo, and one
  user cross sum by at most (hi - lo) * RATING_DP_BIAS_CLIP. Three Laplace mechanisms
  with budgets ``RATING_DP_SHARES * epsilon``, in sequence (the item biases, computed
  from the first, are public inputs of the third): epsilon-DP in all (delta = 0).
  The counts (which and how many items a user rated) are not protected.

  Raises:
    ValueError: a rating outside ``rating_scale``.
  """
  su, si, sr = source
  lo, hi = rating_scale
  if np.any((sr < lo) | (sr > hi)):
    raise ValueError(f"PFCDR+ rating_epsilon: source ratings outside the public scale "
                     f"[{lo:g}, {hi:g}] (rating_scale); the sensitivity would not hold")
  rng = np.random.default_rng([seed, 15, epsilon_stream(epsilon)])   # fresh noise per eps
  e_item, e_sum, e_cross = (share * epsilon for share in RATING_DP_SHARES)
  x = sr - 0.5 * (lo + hi)
  n_items = int(np.max(si)) + 1
  n_i = np.bincount(si, minlength=n_items)
  item_sums = np.bincount(si, weights=x, minlength=n_items) + rng.laplace(
      0.0, mechanisms.laplace_scale(e_item, rating_scale), n_items) * (n_i > 0)
  mu_x = float(np.sum(item_sums) / len(sr))
  b = np.clip((item_sums - mu_x * n_i) / (n_i + SOURCE_ITEM_SHRINKAGE),
              -RATING_DP_BIAS_CLIP, RATING_DP_BIAS_CLIP) * (n_i > 0)
  counts = np.bincount(su, minlength=n_users)
  rated = counts > 0
  sums = (np.bincount(su, weights=x, minlength=n_users)
          + rng.laplace(0.0, mechanisms.laplace_scale(e_sum, rating_scale), n_users)) * rated
  cross = (np.bincount(su, weights=x * b[si], minlength=n_users) + rng.laplace(
      0.0, mechanisms.laplace_scale(e_cross, rating_scale) * RATING_DP_BIAS_CLIP, n_users)) * rated
  return RatingRelease(sums, cross, counts, np.bincount(su, weights=b[si], minlength=n_users),
                       np.bincount(su, weights=b[si] ** 2, minlength=n_users), b,
                       mu_x + 0.5 * (lo + hi), float(np.mean(b[si] ** 2)))


def _release(source: tuple, n: int, cfg: "PlusConfig") -> RatingRelease:
  return rating_dp_release(source, n, epsilon=cfg.rating_epsilon,
                           rating_scale=cfg.rating_scale, seed=cfg.noise_seed)


def dp_offsets(rel: RatingRelease, kappa: float, debias: bool,
               rating_scale: tuple[float, float]) -> np.ndarray:
  """float64[n]: the offsets computed from a :class:`RatingRelease` (post-processing).

  ``(sum_u (r - mu - b~_i)) / (n_u + kappa)`` (``debias``) or without the b~_i.
  """
  centre = 0.5 * (rating_scale[0] + rating_scale[1])
  num = rel.sums - (rel.mu - centre) * rel.counts - (rel.bias_sum if debias else 0.0)
  return num / np.maximum(rel.counts + kappa, 1e-12) * (rel.counts > 0)


def dp_crowd(rel: RatingRelease, kappa: float) -> np.ndarray:
  """float64[n]: the crowd agreement computed from a :class:`RatingRelease`.

  ``sum_u (r - m_u) b~_i = cross - (sums / n_u) * bias_sum`` over
  ``bias_sq + kappa * mean_bias_sq``, centred over the rating users.
  """
  rated = rel.counts > 0
  num = rel.cross - rel.sums / np.maximum(rel.counts, 1) * rel.bias_sum
  a = num / np.maximum(rel.bias_sq + kappa * rel.mean_bias_sq, 1e-12)
  return (a - np.mean(a[rated])) * rated


def sent_crowd(source: tuple, n_users: int, cfg: "PlusConfig", kappa: float) -> np.ndarray:
  """float64[n]: the crowd scalars the source sends (:func:`crowd_agreement`, or with
  cfg.rating_epsilon :func:`dp_crowd` of the release)."""
  if cfg.rating_epsilon is None:
    return crowd_agreement(source, n_users, kappa)
  return dp_crowd(_release(source, max(n_users, int(np.max(source[0])) + 1), cfg), kappa)


def sent_offsets(source: tuple, n_users: int, cfg: "PlusConfig", kappa: float) -> np.ndarray:
  """float64[n]: the offsets the source sends (noised when cfg.offset_epsilon), or, with
  cfg.rating_epsilon, the ones the receiver computes from :func:`rating_dp_release`.

  Args:
    source: (user, item, rating) of every source rating; n_users: the user index
      size (raised to cover every source user).
  """
  su, si, sr = source
  n = max(n_users, int(np.max(su)) + 1)
  if cfg.rating_epsilon is not None:   # the same release for every kappa
    return dp_offsets(_release(source, n, cfg), kappa, cfg.offset_debias, cfg.rating_scale)
  if cfg.offset_debias:   # the user's bias after the source items' biases
    mu_s = float(np.mean(sr))
    bs = item_bias(si, sr, int(np.max(si)) + 1, mu_s, SOURCE_ITEM_SHRINKAGE)
    o = item_bias(su, sr - bs[si], n, mu_s, kappa)
  else:
    o = source_offsets(su, sr, n, kappa)
  if cfg.offset_epsilon is None:
    return o
  rng = np.random.default_rng([cfg.noise_seed, int(kappa * 1000),
                               epsilon_stream(cfg.offset_epsilon)])
  return noise_offsets(o, rng, epsilon=cfg.offset_epsilon, delta=cfg.offset_delta,
                       clip=cfg.offset_clip)
