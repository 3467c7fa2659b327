"""Paired significance tests of two methods: over seeds (primary) and over users (pooled).

Primary test (what ``*`` follows): :func:`seed_test`, paired over seeds. The unit is
the seed -- each seed re-draws the split and every initialisation -- so the sample is
the S per-seed differences of the reported metric (PFCDR's MAE minus the other's, and
likewise RMSE), n = S: the paired t-test (``scipy.stats.ttest_rel``, two-sided; the
paper's "paired t-test") and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``,
two-sided, exact for small n). ``*`` marks the better of the two when the t-test gives
p < 0.05; one seed gives no test and no ``*``.

Secondary test (a labelled column, not the ``*``): :func:`paired_test` on per-user
errors (MAE: the user's mean absolute error; RMSE: the user's mean squared error over
their test ratings), pooling the (seed, user) pairs of all seeds as if independent.
Users of one seed share a split and models, so its p-values overstate the evidence
(p = 1e-88 with 10 seeds); it is kept because it shows the per-user picture (median
difference, share of users won).

Multiplicity: :func:`holm` adjusts a family of p-values (Holm's step-down method); the
tables apply it to all the planned contrasts they report (``contrasts.adjust``).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05


def per_user_errors(user: np.ndarray, rating: np.ndarray, pred: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-user MAE and MSE over each user's test ratings.

  Args:
    user: int[T]; rating, pred: float[T].

  Returns:
    ``(users int[C] sorted, mae float64[C], mse float64[C])``.
  """
  user, rating, pred = np.asarray(user), np.asarray(rating, np.float64), np.asarray(pred,
                                                                                      np.float64)
  if not user.shape == rating.shape == pred.shape or user.ndim != 1:
    raise ValueError(f"shape mismatch: user {user.shape}, rating {rating.shape}, "
                     f"pred {pred.shape}")
  users, inv = np.unique(user, return_inverse=True)
  n = np.bincount(inv, minlength=users.size)
  err = pred - rating
  mae = np.bincount(inv, weights=np.abs(err), minlength=users.size) / n
  mse = np.bincount(inv, weights=err ** 2, minlength=users.size) / n
  return users, mae, mse


class PairedTest(NamedTuple):
  """Paired comparison of method a vs b on per-user errors (a - b < 0: a is better)."""
  method_a: str
  method_b: str
  n_pairs: int
  mean_diff: float     # mean over pairs of err_a - err_b
  t_stat: float
  p_ttest: float
  p_wilcoxon: float
  median_diff: float = 0.0     # median over pairs of err_a - err_b (Wilcoxon's direction)
  share_a_better: float = 0.0  # fraction of pairs with err_a < err_b

  @property
  def significant(self) -> bool:
    return bool(self.p_ttest < ALPHA)

  @property
  def winner(self) -> str | None:
    return None if self.mean_diff == 0 else (self.method_a if self.mean_diff < 0
                                             else self.method_b)


def paired_test(err_a: np.ndarray, err_b: np.ndarray, method_a: str = "a",
                method_b: str = "b") -> PairedTest:
  """Two-sided paired t-test and Wilcoxon signed-rank test of per-user errors.

  Identical errors give p = 1 for both (scipy would return nan / raise).
  """
  a, b = np.asarray(err_a, np.float64), np.asarray(err_b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or a.size < 2:
    raise ValueError(f"need two equal-length 1-D error arrays (>= 2 pairs), got {a.shape}, "
                     f"{b.shape}")
  d = a - b
  if np.all(d == 0):
    return PairedTest(method_a, method_b, a.size, 0.0, 0.0, 1.0, 1.0)
  t = stats.ttest_rel(a, b)
  w = stats.wilcoxon(a, b)
  return PairedTest(method_a, method_b, int(a.size), float(d.mean()), float(t.statistic),
                    float(t.pvalue), float(w.pvalue), float(np.median(d)), float(np.mean(d < 0)))


class SeedTest(NamedTuple):
  """Paired test over seeds of the per-seed metric difference (a - b < 0: a is better).

  The unit is the seed (each seed re-draws the split and every initialisation), so
  ``n_seeds`` is the sample size: the design's replicates, not (seed, user) pairs.
  """
  method_a: str
  method_b: str
  n_seeds: int
  mean_diff: float     # mean over seeds of metric_a - metric_b
  t_stat: float
  p_ttest: float       # scipy.stats.ttest_rel, two-sided (nan for fewer than 2 seeds)
  p_wilcoxon: float    # scipy.stats.wilcoxon, two-sided (exact for small n)
  n_a_better: int      # seeds on which a's metric is lower
  diffs: tuple[float, ...] = ()

  @property
  def significant(self) -> bool:
    return bool(self.p_ttest < ALPHA)   # False for nan

  @property
  def winner(self) -> str | None:
    return None if self.mean_diff == 0 else (self.method_a if self.mean_diff < 0
                                             else self.method_b)


def seed_test(metric_a: Sequence[float], metric_b: Sequence[float], method_a: str = "a",
              method_b: str = "b") -> SeedTest:
  """Two-sided paired t-test and Wilcoxon signed-rank test over seeds.

  Args:
    metric_a, metric_b: float[S] one metric value (MAE or RMSE) per seed, same seed order.

  Identical values give p = 1 for both; a single seed gives p = nan (no test).
  """
  a, b = np.asarray(metric_a, np.float64), np.asarray(metric_b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or a.size < 1:
    raise ValueError(f"need two equal-length 1-D metric arrays, got {a.shape}, {b.shape}")
  d = a - b
  base = dict(method_a=method_a, method_b=method_b, n_seeds=int(a.size),
              mean_diff=float(d.mean()), n_a_better=int(np.sum(d < 0)),
              diffs=tuple(float(x) for x in d))
  if np.all(d == 0):
    return SeedTest(t_stat=0.0, p_ttest=1.0, p_wilcoxon=1.0, **base)
  if a.size < 2:
    return SeedTest(t_stat=float("nan"), p_ttest=float("nan"), p_wilcoxon=float("nan"), **base)
  with np.errstate(divide="ignore", invalid="ignore"):
    t = stats.ttest_rel(a, b)
  w = stats.wilcoxon(a, b)
  return SeedTest(t_stat=float(t.statistic), p_ttest=float(t.pvalue),
                  p_wilcoxon=float(w.pvalue), **base)


def holm(pvalues: Sequence[float]) -> np.ndarray:
  """Holm's step-down adjustment of a family of p-values (family-wise error control).

  With the m non-nan p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted
  value of p_(i) is ``min(1, max_{j <= i} (m - j + 1) p_(j))``: never below the raw
  p-value and in the same order. Rejecting where the adjusted value is < alpha is
  Holm's procedure at level alpha.

  Args:
    pvalues: float[m'] raw p-values; nan entries (no test) stay nan and are not part
      of the family (m counts the others).

  Returns:
    float64[m'] the adjusted p-values, in the input's order.
  """
  p = np.asarray(pvalues, np.float64)
  if p.ndim != 1:
    raise ValueError(f"need a 1-D sequence of p-values, got shape {p.shape}")
  if np.any((p < 0) | (p > 1)):
    raise ValueError(f"p-values must lie in [0, 1], got {p[(p < 0) | (p > 1)]}")
  out = np.full(p.shape, np.nan)
  idx = np.flatnonzero(~np.isnan(p))
  m = idx.size
  if m == 0:
    return out
  order = idx[np.argsort(p[idx], kind="stable")]
  scaled = (m - np.arange(m)) * p[order]
  out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
  return out
