"""Tests of LightGCN: sparse propagation == dense reference, training, cold users."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import lightgcn
from test_baselines_planted import global_mean_mae, mae, make_planted

# 3 users x 4 items; user 2 and item 3 are isolated (cold); (0, 1) appears twice.
USER = np.array([0, 0, 0, 1, 1])
ITEM = np.array([0, 1, 1, 1, 2])


def _dense_norm_adj(user, item, n_users, n_items):
  r = np.zeros((n_users, n_items))
  r[user, item] = 1.0
  du, di = r.sum(1), r.sum(0)
  inv_u = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1)), 0.0)
  inv_i = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1)), 0.0)
  return inv_u[:, None] * r * inv_i[None, :]


class PropagateTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_one_step_equals_dense_reference(self):
    graph = lightgcn.build_graph(USER, ITEM, 3, 4)
    rng = np.random.default_rng(0)
    eu, ei = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    new_u, new_i = self.variant(lightgcn.propagate)(jnp.asarray(eu, jnp.float32),
                                                    jnp.asarray(ei, jnp.float32), graph)
    a = _dense_norm_adj(USER, ITEM, 3, 4)
    np.testing.assert_allclose(new_u, a @ ei, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_i, a.T @ eu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_u[2], 0.0)  # isolated user

  def test_layer_average_equals_dense_reference(self):
    graph = lightgcn.build_graph(USER, ITEM, 3, 4)
    params = lightgcn.init(jax.random.PRNGKey(0), 3, 4, 5, init_std=1.0)
    eu, ei = lightgcn.final_embeddings(params, graph, n_layers=3)
    a = _dense_norm_adj(USER, ITEM, 3, 4)
    u, i = np.asarray(params.user, np.float64), np.asarray(params.item, np.float64)
    su, si = u.copy(), i.copy()
    for _ in range(3):
      u, i = a @ i, a.T @ u
      su, si = su + u, si + i
    np.testing.assert_allclose(eu, su / 4, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ei, si / 4, rtol=1e-5, atol=1e-6)
    # Cold user: only its layer-0 row survives, divided by K + 1.
    np.testing.assert_allclose(eu[2], params.user[2] / 4, rtol=1e-6)


def test_bad_index_raises():
  with pytest.raises(ValueError, match="indices must lie"):
    lightgcn.build_graph(np.array([0, 5]), np.array([0, 1]), 3, 4)


def test_learns_warm_users_and_is_honestly_bad_on_cold_users():
  data = make_planted(0)
  tu, ti, tr = data.target_train
  rng = np.random.default_rng(0)
  held = rng.random(tr.size) < 0.1
  cfg = lightgcn.LightGCNConfig(dim=8, epochs=15, batch_size=512, lr=0.03)
  key = jax.random.PRNGKey(0)
  graph = lightgcn.build_graph(tu[~held], ti[~held], data.n_users_tgt, data.n_items_tgt)
  k_init, k_train = jax.random.split(key)
  p0 = lightgcn.init(k_init, data.n_users_tgt, data.n_items_tgt, cfg.dim, cfg.init_std)
  params, curve = lightgcn.train(p0, graph, jnp.asarray(tu[~held]), jnp.asarray(ti[~held]),
                                 jnp.asarray(tr[~held]), k_train, cfg)
  assert curve[-1] < 0.2 * curve[0]
  eu, ei = lightgcn.final_embeddings(params, graph, cfg.n_layers)
  warm_pred = np.sum(np.asarray(eu)[tu[held]] * np.asarray(ei)[ti[held]], -1)
  warm_gm = mae(np.full(held.sum(), tr[~held].mean()), tr[held])
  assert mae(warm_pred, tr[held]) < warm_gm
  # Cold users: no edge, no gradient -> untouched init, predictions ~ 0, MAE ~ mean rating.
  cold = data.test_users
  np.testing.assert_array_equal(params.user[cold], p0.user[cold])
  pred = np.sum(np.asarray(eu)[data.test[0]] * np.asarray(ei)[data.test[1]], -1)
  assert mae(pred, data.test_rating) > 2.0 * global_mean_mae(data)


def test_fit_predict_plumbing_matches_lower_level_api():
  rating = np.array([4.0, 5.0, 3.0, 2.0, 4.0], np.float32)
  cfg = lightgcn.LightGCNConfig(dim=4, epochs=3, batch_size=2)
  key = jax.random.PRNGKey(3)
  test = (np.array([2, 0]), np.array([0, 2]))
  pred = lightgcn.fit_predict((USER, ITEM, rating), test, n_users_tgt=3, n_items_tgt=4,
                              cfg=cfg, key=key)
  graph = lightgcn.build_graph(USER, ITEM, 3, 4)
  k_init, k_train = jax.random.split(key)
  p0 = lightgcn.init(k_init, 3, 4, cfg.dim, cfg.init_std)
  params, _ = lightgcn.train(p0, graph, jnp.asarray(USER, jnp.int32),
                             jnp.asarray(ITEM, jnp.int32), jnp.asarray(rating), k_train, cfg)
  eu, ei = lightgcn.final_embeddings(params, graph, cfg.n_layers)
  np.testing.assert_allclose(pred, np.sum(eu[test[0]] * ei[test[1]], -1), rtol=1e-5)
  # The cold user's prediction uses its untouched layer-0 row / (K + 1).
  np.testing.assert_allclose(pred[0], np.dot(p0.user[2] / 4, ei[0]), rtol=1e-5)
