"""Tests of the BiasFloor floor: a pandas reference, the shrinkage, the registry entry."""
import numpy as np
import pandas as pd
import pytest

from pfcdr_jax.baselines import bias_floor
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection
from test_baselines_planted import global_mean_mae, mae, make_planted


def _frames():
  src = pd.DataFrame({"user": [0, 0, 1, 2, 2, 2, 3], "item": [0, 1, 0, 1, 2, 0, 2],
                      "rating": [5.0, 3.0, 2.0, 4.0, 4.0, 1.0, 3.0]})
  tgt = pd.DataFrame({"user": [3, 3, 4, 4, 4, 5], "item": [0, 1, 0, 2, 1, 0],
                      "rating": [4.0, 5.0, 2.0, 3.0, 4.0, 5.0]})
  test = pd.DataFrame({"user": [0, 1, 2, 0, 2, 1], "item": [0, 0, 1, 1, 2, 3]})
  return src, tgt, test


def _pandas_reference(src, tgt, test, lam, k=0.0, clip=True):
  """mu_t + shrunk item bias + (user's source mean - source mean), in pandas."""
  mu_t, mu_s = tgt.rating.mean(), src.rating.mean()
  resid = (tgt.rating - mu_t).groupby(tgt.item)
  item_bias = resid.sum() / (resid.count() + lam)
  if k == 0:
    user_offset = src.groupby("user").rating.mean() - mu_s
  else:
    user_resid = (src.rating - mu_s).groupby(src.user)
    user_offset = user_resid.sum() / (user_resid.count() + k)
  pred = (mu_t + test.item.map(item_bias).fillna(0.0)
          + test.user.map(user_offset).fillna(0.0))
  return (pred.clip(tgt.rating.min(), tgt.rating.max()) if clip else pred).to_numpy()


def _arrays(df, cols=("user", "item", "rating")):
  return tuple(df[c].to_numpy() for c in cols)


@pytest.mark.parametrize("lam,k,clip", [(0.0, 0.0, False), (1.0, 0.0, False),
                                         (7.5, 0.0, True), (2.0, 3.0, True)])
def test_equals_a_pandas_reference(lam, k, clip):
  src, tgt, test = _frames()
  cfg = bias_floor.BiasFloorConfig(shrinkage=lam, user_shrinkage=k, clip=clip)
  pred = bias_floor.fit_predict(_arrays(src), _arrays(tgt), _arrays(test, ("user", "item")),
                                n_users_src=6, n_items_tgt=4, cfg=cfg)
  want = _pandas_reference(src, tgt, test, lam, k, clip)
  np.testing.assert_allclose(pred, want, rtol=1e-6)
  if not clip and k == 0:
    # Item 3 has no target ratings: its bias is 0 (target mean + the user offset only).
    assert pred[-1] == pytest.approx(tgt.rating.mean() + 2.0 - src.rating.mean())


def test_clip_keeps_predictions_in_the_target_training_range():
  src, tgt, test = _frames()
  args = (_arrays(src), _arrays(tgt), _arrays(test, ("user", "item")))
  raw = bias_floor.fit_predict(*args, n_users_src=6, n_items_tgt=4,
                               cfg=bias_floor.BiasFloorConfig(clip=False))
  clipped = bias_floor.fit_predict(*args, n_users_src=6, n_items_tgt=4)
  assert raw.max() > 5.0 or raw.min() < 2.0   # the tiny frame does leave the range
  np.testing.assert_allclose(clipped, np.clip(raw, 2.0, 5.0), rtol=1e-6)


def test_large_shrinkage_tends_to_source_user_mean_shifted():
  src, tgt, test = _frames()
  pred = bias_floor.fit_predict(_arrays(src), _arrays(tgt), _arrays(test, ("user", "item")),
                                n_users_src=6, n_items_tgt=4,
                                cfg=bias_floor.BiasFloorConfig(shrinkage=1e9, clip=False))
  off = src.groupby("user").rating.mean() - src.rating.mean()
  np.testing.assert_allclose(pred, tgt.rating.mean() + test.user.map(off), atol=1e-6)


def test_bad_input_raises():
  src, tgt, test = _frames()
  with pytest.raises(ValueError, match="test users"):
    bias_floor.fit_predict(_arrays(src), _arrays(tgt), (np.array([9]), np.array([0])),
                           n_users_src=6, n_items_tgt=4)
  with pytest.raises(ValueError, match="shrinkage"):
    bias_floor.item_biases(np.array([0]), np.array([1.0]), 1, 1.0, -1.0)


def test_beats_global_mean_and_item_mean_on_planted_biases():
  data = make_planted(0)
  pred = bias_floor.fit_predict(data.source, data.target_train, data.test,
                                n_users_src=data.n_users_src, n_items_tgt=data.n_items_tgt,
                                cfg=bias_floor.BiasFloorConfig(shrinkage=5.0))
  t_item, t_rating = data.target_train[1], data.target_train[2]
  item_mean = (np.bincount(t_item, t_rating, data.n_items_tgt)
               / np.maximum(np.bincount(t_item, minlength=data.n_items_tgt), 1))
  assert mae(pred, data.test_rating) < 0.95 * global_mean_mae(data)
  assert mae(pred, data.test_rating) < mae(item_mean[data.test[1]], data.test_rating)


def test_registry_grid_is_the_shrinkage_chosen_on_validation():
  grid = selection.selection_grid("BiasFloor")
  assert [g["shrinkage"] for g in grid] == [0.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0]
  assert all(g["clip"] is True for g in grid)
  assert selection.selection_grid(registry.quick_names(("BiasFloor",))[0]) == (
      {"clip": True, "shrinkage": 10},)
