"""PFCDR+'s source release: the Gaussian offsets, the per-rating Laplace release and
the scalars computed from it."""
import math

import numpy as np
import pytest

from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.features import crowd_agreement
from pfcdr_jax.plus.features import source_offsets
from pfcdr_jax.plus.release import dp_crowd
from pfcdr_jax.plus.release import dp_offsets
from pfcdr_jax.plus.release import gaussian_sigma
from pfcdr_jax.plus.release import noise_offsets
from pfcdr_jax.plus.release import RATING_DP_BIAS_CLIP
from pfcdr_jax.plus.release import rating_dp_release
from pfcdr_jax.plus.release import RATING_DP_SHARES
from pfcdr_jax.plus.release import sent_crowd
from pfcdr_jax.plus.release import sent_offsets


def test_noised_offsets_follow_the_gaussian_mechanism():
  sigma = gaussian_sigma(0.5, 1e-5, 1.0)
  assert sigma == pytest.approx(2.0 * math.sqrt(2.0 * math.log(1.25e5)) / 0.5)
  noised = noise_offsets(np.full(20000, 3.0), np.random.default_rng(0), epsilon=0.5,
                         delta=1e-5, clip=1.0)
  assert abs(noised.mean() - 1.0) < 0.05 * sigma and abs(noised.std() / sigma - 1) < 0.03


def test_rating_dp_release_is_the_laplace_mechanism_on_rating_sums():
  """Scales (hi - lo) / (share * eps) (x the bias clip for the cross sums); the noise has
  those stds; a one-rating change moves one user's sum by at most hi - lo; the
  offsets at every kappa come from the same release."""
  assert mechanisms.laplace_scale(0.5, (1.0, 5.0)) == 8.0
  assert sum(RATING_DP_SHARES) == pytest.approx(1.0)
  rng = np.random.default_rng(0)
  n, eps = 4000, 2.0
  su = np.repeat(np.arange(n), 25)
  si = rng.integers(0, 50, su.size)
  sr = rng.integers(1, 6, su.size).astype(np.float64)
  source = (su, si, sr)
  rel = rating_dp_release(source, n + 1, epsilon=eps, rating_scale=(1.0, 5.0), seed=3)
  x = sr - 3.0
  noise_sum = (rel.sums - np.bincount(su, weights=x, minlength=n + 1))[:n]
  noise_cross = (rel.cross - np.bincount(su, weights=x * rel.item_bias[si],
                                         minlength=n + 1))[:n]
  s_sum = 4.0 / (RATING_DP_SHARES[1] * eps)
  s_cross = 4.0 * RATING_DP_BIAS_CLIP / (RATING_DP_SHARES[2] * eps)
  assert abs(noise_sum.std() / (math.sqrt(2.0) * s_sum) - 1) < 0.05
  assert abs(noise_cross.std() / (math.sqrt(2.0) * s_cross) - 1) < 0.05
  assert np.all(rel.counts[:n] == 25) and rel.counts[n] == 0 and rel.sums[n] == 0.0
  assert np.all(np.abs(rel.item_bias) <= RATING_DP_BIAS_CLIP)
  changed = sr.copy()
  changed[7] = 5.0 if sr[7] == 1.0 else 1.0
  rel2 = rating_dp_release((su, si, changed), n + 1, epsilon=eps, rating_scale=(1.0, 5.0),
                           seed=3)
  diff = np.abs(rel2.sums - rel.sums)
  assert 0 < diff[0] <= 4.0 and np.all(diff[1:] == 0.0)
  cfg = PlusConfig(rating_epsilon=eps, noise_seed=3)
  for kappa in (0.0, 5.0):
    np.testing.assert_allclose(sent_offsets(source, n + 1, cfg, kappa),
                               dp_offsets(rel, kappa, True, (1.0, 5.0)))
    np.testing.assert_allclose(sent_crowd(source, n + 1, cfg, kappa), dp_crowd(rel, kappa))
  with pytest.raises(ValueError, match="public scale"):
    rating_dp_release(source, n + 1, epsilon=1.0, rating_scale=(1.0, 4.0), seed=0)


def test_rating_dp_scalars_without_noise_are_the_plain_ones():
  """At a huge epsilon the release's offsets and crowd scalars equal the non-DP ones
  (item biases inside the clip): the DP path computes the same quantities, plus noise."""
  rng = np.random.default_rng(2)
  su = rng.integers(0, 300, 6000)
  si = rng.integers(0, 40, 6000)
  sr = rng.integers(1, 6, 6000).astype(np.float64)
  source = (su, si, sr)
  plain = PlusConfig()
  exact = PlusConfig(rating_epsilon=1e12)
  for kappa in (0.0, 20.0):
    np.testing.assert_allclose(sent_offsets(source, 300, exact, kappa),
                               sent_offsets(source, 300, plain, kappa), atol=1e-8)
    np.testing.assert_allclose(sent_crowd(source, 300, exact, kappa),
                               crowd_agreement(source, 300, kappa), atol=1e-8)
  raw = PlusConfig(rating_epsilon=1e12, offset_debias=False)
  np.testing.assert_allclose(sent_offsets(source, 300, raw, 5.0),
                             source_offsets(su, sr, 300, 5.0), atol=1e-8)
