"""Tests of the SourceUserMean floor."""
import numpy as np
import pytest

from pfcdr_jax.baselines import source_user_mean
from test_baselines_planted import global_mean_mae, mae, make_planted


def test_matches_numpy_reference():
  src = (np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([5.0, 3.0, 2.0, 4.0]))
  tgt = (np.array([3, 3]), np.array([0, 1]), np.array([4.0, 5.0]))
  test = (np.array([0, 1, 2, 0]), np.array([0, 0, 1, 1]))
  pred = source_user_mean.fit_predict(src, tgt, test, n_users_src=4)
  shift = 4.5 - 3.5
  want = np.array([4.0, 2.0, 4.0, 4.0]) + shift
  np.testing.assert_allclose(pred, want, rtol=1e-6)


def test_shrinkage_and_missing_users_fall_back_to_target_mean():
  src = (np.array([0, 0]), np.array([0, 1]), np.array([5.0, 3.0]))
  tgt = (np.array([0]), np.array([0]), np.array([2.0]))
  test = (np.array([0, 1]), np.array([0, 0]))
  cfg = source_user_mean.SourceUserMeanConfig(shrinkage=2.0)
  pred = source_user_mean.fit_predict(src, tgt, test, n_users_src=2, cfg=cfg)
  # user 0: (8 + 2*4) / (2 + 2) = 4 -> 4 - 4 + 2; user 1 has no source rating.
  np.testing.assert_allclose(pred, [2.0, 2.0], rtol=1e-6)


def test_bad_test_user_raises():
  src = (np.array([0]), np.array([0]), np.array([5.0]))
  with pytest.raises(ValueError, match="test users"):
    source_user_mean.fit_predict(src, src, (np.array([3]), np.array([0])), n_users_src=1)


def test_beats_global_mean_on_planted_user_bias():
  data = make_planted(0)
  pred = source_user_mean.fit_predict(data.source, data.target_train, data.test,
                                      n_users_src=data.n_users_src)
  assert mae(pred, data.test_rating) < 0.95 * global_mean_mae(data)
