"""Tests of CMF."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import cmf
from test_baselines_planted import global_mean_mae, mae, make_planted


def test_joint_user_index_shares_overlap_rows_only():
  src, tgt, n_all = cmf.joint_user_index(n_users_src=5, n_users_tgt=4, n_overlap=3)
  np.testing.assert_array_equal(src, [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(tgt, [0, 1, 2, 5])
  assert n_all == 6
  with pytest.raises(ValueError):
    cmf.joint_user_index(2, 4, 3)


def test_loss_matches_numpy_reference():
  params = cmf.init(jax.random.PRNGKey(0), 4, 3, 2, dim=3, init_std=1.0)
  rows = np.array([0, 1, 3, 2]); item = np.array([2, 0, 1, 0])
  is_src = np.array([True, True, False, False]); rating = np.array([1.0, 2.0, 3.0, 4.0])
  weight = np.array([0.3, 0.2, 0.4, 0.1])
  got = cmf.loss_fn(params, jnp.asarray(rows), jnp.asarray(item), jnp.asarray(rating, jnp.float32),
                    jnp.asarray(is_src), jnp.asarray(weight, jnp.float32), reg=0.5)
  u = np.asarray(params.user); vs = np.asarray(params.item_src); vt = np.asarray(params.item_tgt)
  v = np.stack([vs[i] if s else vt[i] for i, s in zip(item, is_src)])
  err = np.sum(u[rows] * v, -1) - rating
  want = np.sum(weight * err ** 2) + 0.5 * np.mean(np.sum(u[rows] ** 2, -1) + np.sum(v ** 2, -1))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bad_alpha_raises():
  data = make_planted(0)
  with pytest.raises(ValueError, match="alpha"):
    cmf.fit_predict(data.source, data.target_train, data.test, n_users_src=data.n_users_src,
                    n_items_src=data.n_items_src, n_users_tgt=data.n_users_tgt,
                    n_items_tgt=data.n_items_tgt, n_overlap=data.n_overlap,
                    cfg=cmf.CMFConfig(alpha=1.0), key=jax.random.PRNGKey(0))


def test_beats_global_mean_on_cold_users():
  data = make_planted(0)
  pred = cmf.fit_predict(data.source, data.target_train, data.test,
                         n_users_src=data.n_users_src, n_items_src=data.n_items_src,
                         n_users_tgt=data.n_users_tgt, n_items_tgt=data.n_items_tgt,
                         n_overlap=data.n_overlap,
                         cfg=cmf.CMFConfig(dim=6, epochs=20, batch_size=512, lr=0.02),
                         key=jax.random.PRNGKey(0))
  assert pred.shape == data.test_rating.shape
  assert mae(pred, data.test_rating) < 0.8 * global_mean_mae(data)


def test_deferred_adam_follows_dense_adam(monkeypatch):
  """optimizer="deferred_adam" (rows a minibatch touches, caught up in closed form)
  lands where dense optax.adam does: same factors to float32 rounding plus the
  idle-step eps, so the same predictions; "auto" keeps dense Adam at this size."""
  data = make_planted(0)
  kw = dict(n_users_src=data.n_users_src, n_items_src=data.n_items_src,
            n_users_tgt=data.n_users_tgt, n_items_tgt=data.n_items_tgt,
            n_overlap=data.n_overlap, key=jax.random.PRNGKey(1))
  cfg = cmf.CMFConfig(dim=6, epochs=5, batch_size=256, lr=0.02)
  fit = lambda opt: cmf.fit_predict(data.source, data.target_train, data.test,
                                    cfg=cmf.CMFConfig(**{**cfg.__dict__, "optimizer": opt}),
                                    **kw)
  dense, auto = fit("adam"), fit("auto")
  def no_dense(*a, **k):
    raise AssertionError("the deferred path ran dense Adam")
  monkeypatch.setattr(cmf.minibatch, "optimize_epochs", no_dense)
  deferred = fit("deferred_adam")
  np.testing.assert_array_equal(auto, dense)
  np.testing.assert_allclose(deferred, dense, atol=2e-3)
  assert mae(deferred, data.test_rating) == pytest.approx(mae(dense, data.test_rating),
                                                          abs=5e-4)
  with pytest.raises(ValueError, match="CMF optimizer"):
    fit("lazy_adam")
