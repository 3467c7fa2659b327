"""Tests of PriCDR-S: SJLT, sparse projection, DP noise calibration, learning."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import pricdr
from pfcdr_jax.privacy import mechanisms
from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained


def test_sjlt_rows_have_s_distinct_columns_and_unit_norm():
  phi = pricdr.sjlt(jax.random.PRNGKey(0), 50, 8, 3)
  cols = np.asarray(phi.cols)
  assert cols.shape == (50, 3) and all(len(set(r)) == 3 for r in cols)
  dense = np.asarray(pricdr.sjlt_dense(phi, 8))
  np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, rtol=1e-6)
  assert pricdr.sjlt_spectral_norm(phi, 8) == pytest.approx(np.linalg.norm(dense, 2), rel=1e-5)
  with pytest.raises(ValueError, match="sparsity"):
    pricdr.sjlt(jax.random.PRNGKey(0), 5, 4, 5)


def test_sparse_projection_equals_dense_product():
  rng = np.random.default_rng(0)
  n_users, n_items, k = 6, 9, 5
  r = np.where(rng.random((n_users, n_items)) < 0.4, rng.integers(1, 6, (n_users, n_items)), 0)
  u, i = np.nonzero(r)
  phi = pricdr.sjlt(jax.random.PRNGKey(1), n_items, k, 2)
  got = pricdr.project_ratings(jnp.asarray(u), jnp.asarray(i), jnp.asarray(r[u, i], jnp.float32),
                               n_users, phi, k)
  np.testing.assert_allclose(got, r @ np.asarray(pricdr.sjlt_dense(phi, k)), rtol=1e-5, atol=1e-5)


def test_published_noise_std_matches_rating_level_calibration():
  # Every rating at the public midpoint: the shifted matrix is 0, so Y is pure noise.
  n_users, n_items = 400, 30
  u = np.repeat(np.arange(n_users), 3); i = np.tile([0, 1, 2], n_users)
  src = (u, i, np.full(u.size, 3.0, np.float32))
  cfg = pricdr.PriCDRConfig(epsilon=0.5, delta=1e-5, proj_dim=32)
  y, sigma = pricdr.publish(src, n_users, n_items, cfg, jax.random.PRNGKey(0))
  want = (5.0 - 1.0) * math.sqrt(2.0 * math.log(1.25e5)) / 0.5
  assert sigma == pytest.approx(want, rel=1e-9)
  assert np.std(np.asarray(y)) == pytest.approx(sigma, rel=0.02)


def test_user_level_calibration_uses_clip_and_spectral_norm():
  src = (np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([5.0, 1.0, 4.0]))
  cfg = pricdr.PriCDRConfig(epsilon=2.0, mechanism="analytic", unit="user", clip_norm=1.5,
                            proj_dim=4, sparsity=2)
  _, sigma = pricdr.publish(src, 2, 3, cfg, jax.random.PRNGKey(0))
  phi = pricdr.sjlt(jax.random.split(jax.random.PRNGKey(0))[0], 3, 4, 2)
  sens = 1.5 * pricdr.sjlt_spectral_norm(phi, 4)
  assert sigma == pytest.approx(mechanisms.analytic_gaussian_sigma(2.0, 1e-5, sens), rel=1e-9)
  # Without noise, every published row has norm <= C * ||Phi||_2.
  y, _ = pricdr.publish(src, 2, 3, pricdr.PriCDRConfig(epsilon=None, unit="user", clip_norm=1.5,
                                                       proj_dim=4, sparsity=2),
                        jax.random.PRNGKey(0))
  assert np.all(np.linalg.norm(np.asarray(y), axis=1) <= sens + 1e-5)


def test_ratings_outside_public_range_raise():
  src = (np.array([0]), np.array([0]), np.array([7.0]))
  with pytest.raises(ValueError, match="public range"):
    pricdr.publish(src, 1, 1, pricdr.PriCDRConfig(), jax.random.PRNGKey(0))


def test_beats_global_mean_on_cold_users_at_large_epsilon():
  data = make_planted(0)
  emb = pretrained(data)
  cfg = pricdr.PriCDRConfig(epsilon=50.0, mechanism="analytic", proj_dim=32, epochs=50,
                            lr=0.02)
  pred = pricdr.fit_predict(data.source, data.target_train, data.test,
                            n_users_src=data.n_users_src, n_items_src=data.n_items_src,
                            train_users=data.train_users, tgt_user_emb=emb["tgt_user_emb"],
                            tgt_item_emb=emb["tgt_item_emb"], cfg=cfg, key=jax.random.PRNGKey(0))
  assert mae(pred, data.test_rating) < 0.9 * global_mean_mae(data)
