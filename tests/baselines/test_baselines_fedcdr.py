"""Tests of FedCDR (simulated federated CDR): batching, clipping, DP calibration, learning."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.privacy import mechanisms
from test_baselines_planted import global_mean_mae, mae, make_planted

CFG = fedcdr.FedCDRConfig(dim=4, rounds=60, local_batch=16, lr=0.05)


def _fit(data, cfg, seed=0):
  return fedcdr.fit_predict(data.source, data.target_train, data.test,
                            n_users_src=data.n_users_src, n_items_src=data.n_items_src,
                            n_users_tgt=data.n_users_tgt, n_items_tgt=data.n_items_tgt,
                            train_users=data.train_users, cfg=cfg, key=jax.random.PRNGKey(seed))


def test_client_lists_and_round_batches_cycle_without_repeats():
  user = np.array([1, 0, 1, 1, 1])
  item = np.array([7, 3, 8, 9, 6])
  rating = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
  dom = fedcdr.client_lists(user, item, rating, 3, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(dom.count, [1, 4, 0])
  assert sorted(np.asarray(dom.items[1])) == [6, 7, 8, 9]
  seen = []
  for r in range(2):
    items, ratings, mask = (np.asarray(a) for a in fedcdr.round_batch(dom, jnp.asarray(r), 2))
    np.testing.assert_array_equal(mask, [[True, False], [True, True], [False, False]])
    seen += list(items[1])
    # Each rating stays attached to its item.
    lookup = dict(zip(item[user == 1], rating[user == 1]))
    assert [lookup[i] for i in items[1]] == list(ratings[1])
  assert sorted(seen) == [6, 7, 8, 9]   # two rounds of 2 cover the 4 ratings once each


def test_client_gradients_match_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=5).astype(np.float32)
  y = rng.normal(size=(3, 5)).astype(np.float32)
  r = np.array([4.0, 2.0, 5.0], np.float32)
  mask = np.array([True, True, False])
  gx, gy = fedcdr.client_grads(jnp.asarray(x), jnp.asarray(y), jnp.asarray(r),
                               jnp.asarray(mask), jnp.asarray(3.0), 0.0)
  e = (3.0 + x[-1] + y[:, -1] + y[:, :-1] @ x[:-1] - r) * mask
  want_gy = e[:, None] * np.concatenate([np.tile(x[:-1], (3, 1)), np.ones((3, 1))], 1)
  want_gx = np.concatenate([e @ y[:, :-1], [e.sum()]])
  np.testing.assert_allclose(gy, want_gy, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(gx, want_gx, rtol=1e-5, atol=1e-5)


def test_clipping_bounds_each_persons_upload():
  rng = np.random.default_rng(1)
  up = fedcdr.Upload(jnp.zeros((4, 3), jnp.int32), jnp.asarray(rng.normal(size=(4, 3, 5)) * 10),
                     jnp.zeros((4, 3), jnp.int32), jnp.asarray(rng.normal(size=(4, 3, 5)) * 10),
                     jnp.asarray(rng.normal(size=(2, 5, 5)) * 10),
                     jnp.asarray(rng.normal(size=(2, 5)) * 10))
  c = 2.0
  got = fedcdr.clip_parts(up, c / math.sqrt(3))
  src = np.sqrt(np.sum(np.asarray(got.src_grads) ** 2, axis=(1, 2)))
  tgt = np.sqrt(np.sum(np.asarray(got.tgt_grads) ** 2, axis=(1, 2)))
  mp = np.sqrt(np.sum(np.asarray(got.map_a) ** 2, axis=(1, 2))
               + np.sum(np.asarray(got.map_b) ** 2, axis=1))
  # A bridge person (index < 2) sends all three parts: total norm <= C.
  total = np.sqrt(src[:2] ** 2 + tgt[:2] ** 2 + mp ** 2)
  assert np.all(total <= c * (1 + 1e-5)) and np.allclose(total, c, rtol=1e-4)


def test_noise_multiplier_is_the_composed_gaussian_mechanism():
  z = fedcdr.noise_multiplier(1.0, 1e-5, 16)
  # sqrt(T)/z-GDP gives exactly delta at epsilon.
  delta = mechanisms.analytic_gaussian_delta(z / 4.0, 1.0, 1.0)
  np.testing.assert_allclose(delta, 1e-5, rtol=1e-6)
  assert fedcdr.noise_multiplier(1.0, 1e-5, 64) == pytest.approx(2 * z)
  with pytest.raises(ValueError, match="clip_norm"):
    _fit(make_planted(0), fedcdr.FedCDRConfig(rounds=1, epsilon=1.0))


def test_beats_global_mean_and_untrained_does_not():
  data = make_planted(0)
  gm = global_mean_mae(data)
  trained = mae(_fit(data, CFG), data.test_rating)
  untrained = mae(_fit(data, fedcdr.FedCDRConfig(dim=4, rounds=0)), data.test_rating)
  assert trained < 0.8 * gm
  assert untrained > 0.97 * gm
