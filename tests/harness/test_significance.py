"""Holm's step-down adjustment (significance.holm): a hand-computed family, nan kept out
of the family, the properties Holm's method guarantees, and statsmodels where installed.
(The paired tests themselves are tested in test_comparison.py.)"""

import numpy as np
import pytest

from pfcdr_jax.harness import significance


def _holm_reference(p):
  """Holm, written plainly: sort, scale by m - rank, running maximum, cap at 1."""
  keep = [i for i, x in enumerate(p) if not np.isnan(x)]
  order = sorted(keep, key=lambda i: p[i])
  out, running = [float("nan")] * len(p), 0.0
  for rank, i in enumerate(order):
    running = max(running, (len(keep) - rank) * p[i])
    out[i] = min(1.0, running)
  return out


def test_hand_computed_family():
  # m = 4, sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04
  # -> running max 0.06).
  adj = significance.holm([0.01, 0.04, 0.03, 0.005])
  np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
  # Capped at 1: 2 x 0.5 = 1.0, then max(1.0, 0.6).
  np.testing.assert_allclose(significance.holm([0.5, 0.6]), [1.0, 1.0])
  # One test: no correction.
  np.testing.assert_allclose(significance.holm([0.2]), [0.2])


def test_nan_stays_nan_and_is_not_counted():
  adj = significance.holm([0.01, np.nan, 0.04, 0.03, 0.005])
  assert np.isnan(adj[1])
  np.testing.assert_allclose(adj[[0, 2, 3, 4]], [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
  assert np.isnan(significance.holm([np.nan, np.nan])).all()
  assert significance.holm([]).shape == (0,)


def test_holm_is_at_least_the_raw_p_and_keeps_their_order():
  rng = np.random.default_rng(0)
  for m in (1, 2, 7, 30):
    p = rng.uniform(size=m) ** 3   # some small, some large
    p[rng.integers(m)] = p[0]      # a tie
    adj = significance.holm(p)
    np.testing.assert_allclose(adj, _holm_reference(list(p)), rtol=1e-12)
    assert np.all(adj >= p) and np.all(adj <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0), "adjusted p not monotone in the raw p"
    assert np.all(adj <= np.minimum(1, m * p) + 1e-15)   # never above Bonferroni


def test_bad_input():
  with pytest.raises(ValueError, match="1-D"):
    significance.holm([[0.1, 0.2]])
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    significance.holm([0.1, 1.5])


def test_matches_statsmodels():
  multitest = pytest.importorskip("statsmodels.stats.multitest")
  p = np.random.default_rng(1).uniform(size=12) ** 2
  np.testing.assert_allclose(significance.holm(p),
                             multitest.multipletests(p, method="holm")[1], rtol=1e-12)
