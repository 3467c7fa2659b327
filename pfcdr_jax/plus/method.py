"""PFCDR+: PFCDR's prototypes with a bias floor, a task-oriented bridge and neighbours.

What crosses domains is what PFCDR sends -- each user's source prototype
``P_u = b_u* @ V_s`` (``method.prototypes``, one per inversion target rating r) -- plus
two scalars per user computed in the source domain: the *offset* ``o_u``, the user's
shrunk mean of ``r - mu_s - b^s_i`` (how much they rate above the source mean after
the source items' own biases; ``offset_debias=False``: of ``r - mu_s``), and the
*crowd agreement* ``a_u`` (:func:`crowd_agreement`: the shrunk slope of the user's
centred source ratings on the source item biases, i.e. how strongly they follow the
crowd). Bridge and validation users send them once per kappa of the grid, so that kappa
can be chosen; test users only at the chosen kappa. Neither reveals which items the
user rated. The offset can be noised by the Gaussian mechanism (:func:`noise_offsets`,
clip to [-c, c], sensitivity 2c: user-level, offset only), or both scalars computed
from a per-rating Laplace-DP release of the source (``rating_epsilon``,
:func:`rating_dp_release`). In the target
domain (which has its own ratings) the prediction of a cold user u on item j is

  floor(u, j)  = mu + b_j(lambda)                               (global + item bias)
  bilinear     = z_u^T M x_j,  z_u = [P_u(r) for r in rs, o_u, a_u, 1],
                               x_j = [v_j, b_j, 1]
  neighbours   = beta * (w_bar_u - w_all) . v_j                 (residual form), or
                 (1 - beta) * (floor + bilinear) + beta * w_bar_u . v_j    ("blend")
  pred(u, j)   = clip(floor + bilinear + neighbours, [r_min, r_max])

with ``b_j = sum(r - mu) / (n_j + lambda)`` over the target training ratings, ``v_j``
the pretrained target item vectors, ``M`` fit on the residual ``r - floor`` of the
bridge (training overlap) users' target training ratings over the features
``z_u (x) x_j`` (linear in M): a ridge regression in closed form, then (``fit_loss``)
refit to least absolute deviations by IRLS (:func:`irls_l1`), since MAE is the metric.
Its special case z_u = [o_u, 1], x_j = [1] is the BiasFloor of a fitted scale gamma;
``a_u * b_j`` lets a user follow the item biases more or less than average.
``w_bar_u`` is the similarity-weighted mean of the target user representations:
weights ``softmax(-|r - w_t . P_hat_u| / tau)`` over the trained target users (Eq. 13's
distance) or a uniform mean over the K closest (Eq. 14), ``P_hat_u`` the prototype
transferred by PFCDR's linear bridge, ``w_all`` the mean over all trained target users.

Selection (:func:`fit_predict_plus`): on the validation users (pseudo-cold overlap
users, never the test users), greedily in this order -- lambda (floor alone), raw
offset, (kappa, ridge strength) of the ridge fit, ridge vs its L1 refit, then (K or
tau, beta) jointly -- each by validation MAE, each step kept only if it lowers the
validation MAE. The test users' ratings are never read. Every part can be switched off
in :class:`PlusConfig`, which is how ``experiments/ablate_plus.py`` measures each one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.infra import phase_timer
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.pfcdr import topk as topk_lib

NEIGHBOURS = ("none", "uniform", "softmax", "both")
COMBINE = ("residual", "blend")
FIT_LOSSES = ("l2", "l1", "both")
SOURCE_ITEM_SHRINKAGE = 10.0   # lambda of the source item biases (offset_debias, crowd)


@dataclasses.dataclass(frozen=True)
class PlusConfig:
  """PFCDR+ settings: the grids chosen on validation and which parts are on.

  Attributes:
    item_shrinkage: lambda grid of the item bias.
    bilinear: fit M (else the floor adds the raw offset o_u, BiasFloor's form).
    offset_shrinkage: kappa grid of the source offset, chosen with the ridge strength
      (0 = the plain mean offset; the raw-offset floor uses the first value). Bridge and
      validation users send one offset per kappa, the test users only the chosen one.
    use_offset: the source offset enters z_u (else no scalar is sent).
    use_prototype: the prototypes enter z_u (else the bilinear part is the offset only).
    item_side: x_j = [v_j, 1] (True) or [1] (False: no item interaction).
    ridge: ridge strengths tried, relative to the mean diagonal of X^T X.
    neighbours: "none", "uniform" (top-K mean), "softmax" (tau-weighted) or "both"
      (every K and every tau are candidates).
    k_grid: fractions of the trained target users for "uniform".
    taus: temperatures for "softmax".
    combine: "residual" or "blend" (see module docstring).
    betas: neighbour weights tried.
    clip: clip predictions to the target training rating range.
    offset_epsilon: None (offsets sent as they are) or the (epsilon, offset_delta) of
      the Gaussian mechanism each offset goes through (:func:`noise_offsets`, clipped to
      [-offset_clip, offset_clip]; noise from ``noise_seed``). Per user, one release
      per kappa of the grid (test users: one). User-level: it protects the whole
      offset, so at epsilon < 1 the noise is ~20x the offsets' spread.
    rating_epsilon: None, or the epsilon of per-rating (pure, delta = 0) Laplace DP
      (:func:`rating_dp_release`): the source releases noised item sums (whence the
      item biases b~_i) and, per user, a noised rating sum and a noised sum of ratings
      times b~_i; the offset and the crowd scalar at every kappa are computed from
      that one release (post-processing: the kappa grid costs no budget). Protects
      the value of each single source rating (neighbouring data: one rating's value
      changed within ``rating_scale``), not which or how many items a user rated,
      not the user's level as a whole. Needs ``spread`` and ``offset_epsilon`` off.
    rating_scale: the public rating scale (lo, hi) of ``rating_epsilon``.
    select_steps: each step (raw offset, bilinear, neighbours) is kept only when it
      lowers the validation MAE of the step before (False: every enabled step is used,
      as the ablation rows do).
    fit_loss: "l2" (ridge), "l1" (the ridge fit at the chosen (kappa, strength) refit to
      least absolute deviations by IRLS, :func:`irls_l1`; MAE is the metric) or "both"
      (the L1 refit is a candidate next to the ridge fits, chosen on validation).
    irls_steps, irls_delta: IRLS iterations; residual floor of its weights 1/|res|.
    item_bias_feature: x_j = [v_j, b_j, 1]: the user scales the item's target bias.
    spread: one more scalar per user in z_u, its source rating spread
      (:func:`source_spread`, shrunk by the same kappa).
    offset_debias: the offset is the user's mean of ``r - mu_s - b_i`` (source item
      biases removed, still one scalar) instead of ``r - mu_s``.
    crowd: one more scalar per user in z_u, :func:`crowd_agreement` (shrunk by kappa).
    neighbour_folds: with ``select_steps``, the neighbour step is kept only if the
      (K or tau, beta) chosen on either half of the validation users also beats the
      step before on the other half (:func:`_helps_out_of_fold`); the ~84 candidates
      otherwise overfit a small validation set.
  """
  item_shrinkage: tuple[float, ...] = (0.0, 5.0, 25.0, 100.0)
  bilinear: bool = True
  offset_shrinkage: tuple[float, ...] = (0.0, 5.0, 20.0, 50.0)
  use_offset: bool = True
  use_prototype: bool = True
  item_side: bool = True
  ridge: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
  neighbours: str = "both"
  k_grid: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
  taus: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
  combine: str = "residual"
  betas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
  clip: bool = True
  offset_epsilon: float | None = None
  offset_delta: float = 1e-5
  offset_clip: float = 1.0
  rating_epsilon: float | None = None
  rating_scale: tuple[float, float] = (1.0, 5.0)
  noise_seed: int = 0
  select_steps: bool = True
  fit_loss: str = "both"
  irls_steps: int = 10
  irls_delta: float = 0.01
  item_bias_feature: bool = True
  spread: bool = False
  offset_debias: bool = True
  crowd: bool = True
  neighbour_folds: bool = True

  def __post_init__(self):
    if self.fit_loss not in FIT_LOSSES:
      raise ValueError(f"fit_loss must be one of {FIT_LOSSES}, got {self.fit_loss!r}")
    if self.neighbours not in NEIGHBOURS:
      raise ValueError(f"neighbours must be one of {NEIGHBOURS}, got {self.neighbours!r}")
    if self.combine not in COMBINE:
      raise ValueError(f"combine must be one of {COMBINE}, got {self.combine!r}")
    if self.bilinear and not (self.use_offset or self.use_prototype):
      raise ValueError("bilinear needs user features: use_offset or use_prototype")
    if self.rating_epsilon is not None:
      if not self.rating_epsilon > 0:
        raise ValueError(f"rating_epsilon must be > 0, got {self.rating_epsilon}")
      on = (["spread"] if self.spread else []) + (
          ["offset_epsilon"] if self.offset_epsilon is not None else [])
      if on:
        raise ValueError(f"rating_epsilon has no mechanism for {on}; turn them off")
      lo, hi = self.rating_scale
      if not lo < hi:
        raise ValueError(f"rating_scale must be (lo, hi) with lo < hi, got {self.rating_scale}")


class Pairs(NamedTuple):
  """(user, item) pairs to predict: int[P] each."""
  user: np.ndarray
  item: np.ndarray


class PlusInputs(NamedTuple):
  """What PFCDR+ reads, all numpy.

  Attributes:
    source: (user, item, rating) of every source rating.
    target: (user, item, rating) of the target training ratings.
    n_users, n_items_t: target user / item index sizes (users shared with the source).
    bridge_users: int[B] overlap users with target training ratings.
    cold_users: int[C] validation then test users.
    protos_src: float[n_r, B + C, d] source prototypes (bridge users then cold users)
      at each inversion target rating of ``rs``.
    rs: the inversion target ratings of ``protos_src`` (the neighbours use ``rs[-1]``).
    P_hat: float[C, d] cold users' prototypes at ``rs[-1]`` through PFCDR's bridge.
    W_t: float[U_t, d] target user representations; V_t: float[N_t, d] target items.
    trained: bool[U_t] users with target training ratings (neighbour candidates).
  """
  source: tuple
  target: tuple
  n_users: int
  n_items_t: int
  bridge_users: np.ndarray
  cold_users: np.ndarray
  protos_src: np.ndarray
  rs: tuple
  P_hat: np.ndarray
  W_t: np.ndarray
  V_t: np.ndarray
  trained: np.ndarray


class PlusFit(NamedTuple):
  """What :func:`fit_predict_plus` returns.

  Attributes:
    pred: float32[P] predictions of the requested pairs.
    chosen: the settings chosen on validation.
    val_mae: validation MAE after each step ({"floor": .., "bilinear": .., ...}).
    predict: ``(user int[Q], item int[Q]) -> float32[Q]``, the chosen model on any
      (cold user, target item) pairs (``pred`` is it on the requested pairs).
  """
  pred: np.ndarray
  chosen: dict
  val_mae: dict
  predict: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


# --- biases --------------------------------------------------------------------------

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
  rng = np.random.default_rng([seed, 15])
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
  rng = np.random.default_rng([cfg.noise_seed, int(kappa * 1000)])
  return noise_offsets(o, rng, epsilon=cfg.offset_epsilon, delta=cfg.offset_delta,
                       clip=cfg.offset_clip)


# --- the bilinear (task-oriented) bridge ---------------------------------------------

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


def _design(Z: np.ndarray, X: np.ndarray, rows: np.ndarray, items: np.ndarray
            ) -> np.ndarray:
  """float64[R, f*g]: rows of ``z_u (x) x_j`` (Z [n, f] indexed by `rows`)."""
  return (Z[rows][:, :, None] * X[items][:, None, :]).reshape(len(rows), -1)


def normal_equations(Z, X, rows, items, y, chunk: int = 65536, weights=None):
  """(D^T W D [p, p], D^T W y [p]) of the bilinear design D, accumulated in chunks.

  ``weights``: float[R] per-rating weights W (None: all 1).
  """
  p = Z.shape[1] * X.shape[1]
  A, c = np.zeros((p, p)), np.zeros(p)
  for s in range(0, len(rows), chunk):
    D = _design(Z, X, rows[s:s + chunk], items[s:s + chunk])
    Dw = D if weights is None else D * weights[s:s + chunk, None]
    A += Dw.T @ D
    c += Dw.T @ y[s:s + chunk]
  return A, c


def irls_l1(Z, X, rows, items, y, strength: float, theta: np.ndarray, *, steps: int,
            delta: float, chunk: int = 65536, max_cached: float = 5e7) -> np.ndarray:
  """theta [p] of ``min sum |y - D theta| + (strength / 2) mean(diag(D^T W D)) |theta|^2``.

  Iteratively reweighted least squares from `theta` (the ridge fit): each step solves
  the ridge problem with weights ``1 / max(|residual|, delta)``, whose fixed point is
  the least-absolute-deviation fit (``delta`` bounds the weights of exact fits). The
  design is kept in float32 chunks when it has at most `max_cached` entries.
  """
  p = Z.shape[1] * X.shape[1]
  spans = [slice(s, s + chunk) for s in range(0, len(rows), chunk)]
  cached = len(rows) * p <= max_cached
  design = lambda sl: _design(Z, X, rows[sl], items[sl]).astype(np.float32)
  chunks = [design(sl) for sl in spans] if cached else None
  for _ in range(steps):
    A, c = np.zeros((p, p)), np.zeros(p)
    for i, sl in enumerate(spans):
      D = chunks[i] if cached else design(sl)
      w = 1.0 / np.maximum(np.abs(y[sl] - D.astype(np.float64) @ theta), delta)
      Dw = D * w[:, None].astype(np.float32)
      A += (Dw.T @ D).astype(np.float64)
      c += Dw.T.astype(np.float64) @ y[sl]
    theta = ridge_solve(A, c, strength)
  return theta


def ridge_solve(A: np.ndarray, c: np.ndarray, strength: float) -> np.ndarray:
  """theta [p] of ``(A + strength * mean(diag A) * I) theta = c``."""
  scale = float(np.mean(np.diag(A))) or 1.0
  return np.linalg.solve(A + strength * scale * np.eye(len(c)), c)


def bilinear_predict(theta: np.ndarray, Z: np.ndarray, X: np.ndarray, rows: np.ndarray,
                     items: np.ndarray) -> np.ndarray:
  """float64[P]: ``z_u^T M x_j`` with ``M = theta.reshape(f, g)``."""
  M = theta.reshape(Z.shape[1], X.shape[1])
  return np.einsum("pf,fg,pg->p", Z[rows], M, X[items])


# --- neighbours ------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("chunk_size",))
def softmax_neighbour_mean(P_hat, W_t, valid, r, tau, *, chunk_size: int = 256):
  """float32[C, d]: ``sum_t softmax_t(-|r - w_t . P_hat_c| / tau) w_t`` over valid t.

  Args:
    P_hat: [C, d] transferred prototypes; W_t: [T, d]; valid: bool[T] candidates.
    r: Eq. (13)'s target rating; tau: the temperature (large: uniform over valid).
    chunk_size: cold users per step (memory ``O(chunk_size * T)``).
  """
  chex.assert_rank([P_hat, W_t, valid], [2, 2, 1])

  def one_chunk(P):
    logits = -topk_lib.match_distances(P, W_t, r) / tau              # [c, T]
    weights = jax.nn.softmax(jnp.where(valid[None, :], logits, -jnp.inf), axis=1)
    return weights @ W_t

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)


def uniform_neighbour_mean(P_hat, W_t, valid, r: float, k: int) -> np.ndarray:
  """float32[C, d]: Eq. (14)'s mean of the K closest valid users' representations."""
  idx = topk_lib.select_neighbors(jnp.asarray(P_hat), jnp.asarray(W_t), jnp.asarray(valid),
                                  r=r, k=k, sorted=False)
  return np.asarray(topk_lib.neighbor_mean(idx, jnp.asarray(W_t)))


def neighbour_means(inp: PlusInputs, cfg: PlusConfig) -> dict:
  """{setting: float[C, d] w_bar of the cold users} for each K or tau of `cfg`."""
  valid = np.asarray(inp.trained, bool)
  r = float(inp.rs[-1])
  out = {}
  if cfg.neighbours in ("softmax", "both"):
    args = (jnp.asarray(inp.P_hat, jnp.float32), jnp.asarray(inp.W_t, jnp.float32),
            jnp.asarray(valid))
    out.update({("tau", t): np.asarray(softmax_neighbour_mean(*args, r, t))
                for t in cfg.taus})
  if cfg.neighbours in ("uniform", "both"):
    ks = sorted({topk_lib.resolve_k(f, int(valid.sum())) for f in cfg.k_grid})
    out.update({("k", k): uniform_neighbour_mean(inp.P_hat, inp.W_t, valid, r, k)
                for k in ks})
  return out


# --- the method --------------------------------------------------------------------------

def _best(maes: dict):
  """The key of the lowest validation MAE (first on ties, in insertion order)."""
  return min(maes, key=maes.get)


class _Step(NamedTuple):
  """A candidate model: its validation predictions, and (unclipped) predictions of
  any (user, item) pairs, evaluated only for the chosen model (the testing step)."""
  val: np.ndarray
  predict: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _floor_step(inp: PlusInputs, val: tuple, cfg: PlusConfig, clip, chosen,
                maes) -> tuple[_Step, np.ndarray, float]:
  """mu + b_j(lambda), lambda on validation. Returns (step, b, mu)."""
  _, ti, tr = inp.target
  mu = float(np.mean(tr))
  by_lam = {lam: item_bias(ti, tr, inp.n_items_t, mu, lam) for lam in cfg.item_shrinkage}
  val_mae = {lam: float(metrics_lib.mae(clip(mu + b[val[1]]), val[2]))
             for lam, b in by_lam.items()}
  lam = _best(val_mae)
  chosen["item_shrinkage"], maes["floor"] = lam, val_mae[lam]
  b = by_lam[lam]
  return _Step(mu + b[val[1]], lambda u, i: mu + b[i]), b, mu


def _bilinear_step(inp: PlusInputs, val: tuple, pairs: Pairs, cfg: PlusConfig, clip,
                   floor: _Step, b: np.ndarray, mu: float, base: _Step, chosen, maes
                   ) -> _Step:
  """floor + z_u^T M x_j, M by ridge (or L1) on the bridge users, chosen on validation.

  With ``cfg.select_steps`` the step before (`base`) is a candidate too (ridge None).
  """
  users = np.concatenate([inp.bridge_users, inp.cold_users])
  row_of = np.full(inp.n_users, -1, np.int64)
  row_of[users] = np.arange(len(users))
  for name, u in (("validation", val[0]), ("predicted", pairs.user)):
    if np.any(row_of[u] < len(inp.bridge_users)):
      raise ValueError(f"PFCDR+: every {name} user must be a cold user")
  X = item_features(inp.V_t if cfg.item_side else None, inp.n_items_t,
                    b if cfg.item_bias_feature else None)
  tu, ti, tr = inp.target
  keep = np.isin(tu, inp.bridge_users)
  fit = (row_of[tu[keep]], ti[keep], tr[keep] - mu - b[ti[keep]])
  su, _, sr = inp.source
  n_src = max(inp.n_users, int(np.max(su)) + 1)
  steps, fits = {}, {}

  def add(key, theta, Z):
    fits[key] = (theta, Z)
    steps[key] = _Step(
        floor.val + bilinear_predict(theta, Z, X, row_of[val[0]], val[1]),
        lambda u, i: floor.predict(u, i) + bilinear_predict(theta, Z, X, row_of[u], i))

  for kappa in (cfg.offset_shrinkage if cfg.use_offset else (None,)):
    offsets = None if kappa is None else sent_offsets(inp.source, inp.n_users, cfg, kappa)[users]
    spread = (source_spread(su, sr, n_src, kappa or 0.0)[users] if cfg.spread else None)
    crowd = sent_crowd(inp.source, n_src, cfg, kappa or 0.0)[users] if cfg.crowd else None
    Z = user_features(inp.protos_src if cfg.use_prototype else None, offsets, spread,
                      crowd)
    A, c = normal_equations(Z, X, *fit)
    for strength in cfg.ridge:
      add((kappa, strength, "l2"), ridge_solve(A, c, strength), Z)
  mae_of = lambda st: float(metrics_lib.mae(clip(st.val), val[2]))
  if cfg.fit_loss != "l2":
    kappa, strength, _ = min(steps, key=lambda k: mae_of(steps[k]))
    theta, Z = fits[(kappa, strength, "l2")]
    add((kappa, strength, "l1"), irls_l1(Z, X, *fit, strength, theta,
                                         steps=cfg.irls_steps, delta=cfg.irls_delta), Z)
    if cfg.fit_loss == "l1":
      steps = {k: v for k, v in steps.items() if k[2] == "l1"}
  if cfg.select_steps:
    steps[(None, None, None)] = base     # no bilinear part: the step before
  val_mae = {k: mae_of(st) for k, st in steps.items()}
  best = _best(val_mae)
  chosen["offset_shrinkage"], chosen["ridge"], chosen["fit_loss"] = best
  chosen["n_features"] = int(Z.shape[1] * X.shape[1])
  maes["bilinear"] = val_mae[best]
  return steps[best]


def _neighbour_step(inp: PlusInputs, val: tuple, cfg: PlusConfig, clip,
                    base: _Step, chosen, maes) -> _Step:
  """base + beta * neighbour term; (K or tau, beta) on validation."""
  row_of = np.full(inp.n_users, -1, np.int64)
  row_of[inp.cold_users] = np.arange(len(inp.cold_users))
  V = np.asarray(inp.V_t, np.float64)
  w_all = np.mean(np.asarray(inp.W_t, np.float64)[np.asarray(inp.trained, bool)], axis=0)

  def term(w_bar, users, items):
    w = np.asarray(w_bar, np.float64)[row_of[users]]
    return np.sum(((w - w_all) if cfg.combine == "residual" else w) * V[items], axis=1)

  def mix(b, t, beta):
    return b + beta * t if cfg.combine == "residual" else (1 - beta) * b + beta * t

  def candidate(w_bar, t_val, beta):
    return _Step(mix(base.val, t_val, beta),
                 lambda u, i: mix(base.predict(u, i), term(w_bar, u, i), beta))

  val_mae, steps = {}, {}
  for setting, w_bar in neighbour_means(inp, cfg).items():
    t_val = term(w_bar, val[0], val[1])
    for beta in (b for b in cfg.betas if b != 0 or cfg.select_steps):
      steps[setting + (beta,)] = candidate(w_bar, t_val, beta)
      val_mae[setting + (beta,)] = float(metrics_lib.mae(clip(steps[setting + (beta,)].val),
                                                          val[2]))
  best = _best(val_mae)
  if cfg.select_steps and cfg.neighbour_folds and not _helps_out_of_fold(
      {k: st.val for k, st in steps.items()}, base.val, val, clip):
    best = None
    chosen["neighbours_cross_fold"] = "rejected"
  if best is None:
    chosen["beta"] = 0.0
    return base
  chosen[best[0]], chosen["beta"], maes["neighbours"] = best[1], best[2], val_mae[best]
  return steps[best]


def _helps_out_of_fold(candidates: dict, base: np.ndarray, val: tuple, clip) -> bool:
  """Whether choosing among `candidates` on one half of the validation users beats
  `base` on the other half, in both directions (halves by user id parity).

  Args:
    candidates: {setting: float[V] validation predictions}; base: float[V] those of
      the step before.
  """
  half = (np.asarray(val[0]) % 2).astype(bool)
  for fit_on in (half, ~half):
    if not fit_on.any() or fit_on.all():
      return False
    err = lambda p, m: float(np.mean(np.abs(clip(p[m]) - val[2][m])))
    pick = min(candidates, key=lambda k: err(candidates[k], fit_on))
    if err(candidates[pick], ~fit_on) >= err(base, ~fit_on):
      return False
  return True


def fit_predict_plus(inp: PlusInputs, val: tuple, pairs: Pairs,
                     cfg: PlusConfig = PlusConfig()) -> PlusFit:
  """PFCDR+ on one split: predictions of `pairs`, every setting chosen on `val`.

  Args:
    inp: the split's arrays (:class:`PlusInputs`).
    val: (user, item, rating) of the validation users' target ratings (cold users).
    pairs: the (cold user, item) pairs to predict (e.g. validation then test pairs).
    cfg: grids and switches.

  Returns:
    :class:`PlusFit`.

  Raises:
    ValueError: no validation ratings, or a validation / predicted user that is not cold.
  """
  if len(val[2]) == 0:
    raise ValueError("PFCDR+ chooses its settings on validation users; there are none")
  tr = inp.target[2]
  lo, hi = float(np.min(tr)), float(np.max(tr))
  clip = (lambda p: np.clip(p, lo, hi)) if cfg.clip else (lambda p: p)
  chosen, maes = {}, {}
  floor, b, mu = _floor_step(inp, val, cfg, clip, chosen, maes)
  step = floor
  if cfg.use_offset and (cfg.select_steps or not cfg.bilinear):
    o = sent_offsets(inp.source, inp.n_users, cfg, cfg.offset_shrinkage[0])
    with_offset = _Step(floor.val + o[val[0]], lambda u, i: floor.predict(u, i) + o[u])
    maes["floor+offset"] = float(metrics_lib.mae(clip(with_offset.val), val[2]))
    chosen["raw_offset"] = not cfg.select_steps or maes["floor+offset"] < maes["floor"]
    step = with_offset if chosen["raw_offset"] else floor
  if cfg.bilinear:
    step = _bilinear_step(inp, val, pairs, cfg, clip, floor, b, mu, step, chosen, maes)
  if cfg.neighbours != "none":
    step = _neighbour_step(inp, val, cfg, clip, step, chosen, maes)
  predict = lambda u, i: clip(step.predict(np.asarray(u), np.asarray(i))).astype(np.float32)
  with phase_timer.predicting(len(pairs.user)):
    pred = predict(pairs.user, pairs.item)
  return PlusFit(pred, chosen, maes, predict)


# --- inputs from a run ---------------------------------------------------------------------

def plus_inputs(scorer, params_s, params_t, data, keys, bridge_cfg, inversion_cfg,
                rs: tuple[float, ...] = (5.0,)) -> PlusInputs:
  """:class:`PlusInputs` of a split and its pretrained scorers.

  The prototypes at ``rs[-1]`` and the bridge are PFCDR's own (``method.invert_run``
  and ``method.fit_bridge`` with the run's stage keys), so ``P_hat`` is what PFCDR
  matches with; the other r only add source prototypes (same keys, other target).
  """
  rs = tuple(float(r) for r in rs)
  main = method_lib.invert_run(scorer, params_s, params_t, data, keys,
                               dataclasses.replace(inversion_cfg, target_rating=rs[-1]))
  n_b = len(method_lib.bridge_users(data))
  W_map, _ = method_lib.fit_bridge(main.source[:n_b], main.target, keys.bridge, bridge_cfg)
  protos = []
  for r in rs[:-1]:
    protos.append(np.asarray(method_lib.prototypes(
        scorer, params_s, data.source.n_users, method_lib.source_prototype_users(data),
        keys.inversion_source, dataclasses.replace(inversion_cfg, target_rating=r)
    ).prototypes))
  protos.append(main.source)
  W_t, V_t = method_lib.representations(scorer, params_t, data.target_train.n_users)
  s, t = data.source, data.target_train
  return PlusInputs(
      source=(s.user, s.item, s.rating), target=(t.user, t.item, t.rating),
      n_users=t.n_users, n_items_t=t.n_items, bridge_users=method_lib.bridge_users(data),
      cold_users=method_lib.cold_users(data).users, protos_src=np.stack(protos), rs=rs,
      P_hat=method_lib.transfer(W_map, main.source[n_b:]), W_t=np.asarray(W_t),
      V_t=np.asarray(V_t), trained=np.asarray(data.target_trained, bool))


# --- the ablation (experiments/ablate_plus.py): (step, inversion ratings, config) -------

_NO_NB = dict(neighbours="none", select_steps=False)
_OLD = dict(offset_debias=False, crowd=False, item_bias_feature=False, fit_loss="l2")
ABLATION: tuple[tuple[str, tuple[float, ...], PlusConfig], ...] = (
    ("floor mu + b_j", (5.0,), PlusConfig(bilinear=False, use_offset=False, **_NO_NB)),
    ("+ raw source offset (BiasFloor form)", (5.0,),
     PlusConfig(bilinear=False, **{**_OLD, **_NO_NB})),
    ("first-session PFCDR+ default (1 scalar, ridge)", (5.0,), PlusConfig(**_OLD)),
    ("bilinear ridge, raw offset, no neighbours", (5.0,), PlusConfig(**_OLD, **_NO_NB)),
    ("+ debiased offset", (5.0,),
     PlusConfig(**{**_OLD, "offset_debias": True}, **_NO_NB)),
    ("+ crowd scalar and x_j = [v_j, b_j, 1]", (5.0,),
     PlusConfig(fit_loss="l2", **_NO_NB)),
    ("+ L1 refit (IRLS) if validation says so", (5.0,), PlusConfig(**_NO_NB)),
    ("PFCDR+ default (+ neighbours if validation says so)", (5.0,), PlusConfig()),
    ("default without prototypes (2 scalars only)", (5.0,),
     PlusConfig(use_prototype=False, **_NO_NB)),
)
