"""Tests of DP-EMCDR: the linear map and the monotone privacy/utility trade-off."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import dp_emcdr

from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained


def test_fit_linear_map_matches_lstsq():
  rng = np.random.default_rng(0)
  xs, xt = rng.normal(size=(50, 3)), rng.normal(size=(50, 4))
  w, b = dp_emcdr.fit_linear_map(jnp.asarray(xs), jnp.asarray(xt), ridge=0.0, fit_bias=True)
  a = np.concatenate([xs, np.ones((50, 1))], 1)
  sol = np.linalg.lstsq(a, xt, rcond=None)[0]
  np.testing.assert_allclose(w, sol[:3], rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(b, sol[3], rtol=1e-3, atol=1e-4)


def _run(data, emb, eps, key, mechanism="analytic"):
  cfg = dp_emcdr.DPEMCDRConfig(epsilon=eps, clip_norm=3.0, mechanism=mechanism)
  return dp_emcdr.fit_predict(data.test, train_users=data.train_users,
                              src_user_emb=emb["src_user_emb"], tgt_user_emb=emb["tgt_user_emb"],
                              tgt_item_emb=emb["tgt_item_emb"], cfg=cfg, key=key)


def test_noise_free_beats_global_mean_and_error_grows_as_epsilon_shrinks():
  epsilons = (1.0, 5.0, 25.0, 125.0)
  errs = np.zeros((3, len(epsilons) + 1))
  for s in range(3):
    data = make_planted(s)
    emb = pretrained(data)
    for k, eps in enumerate(epsilons):
      errs[s, k] = np.mean([mae(_run(data, emb, eps, jax.random.PRNGKey(100 * s + r)),
                                data.test_rating) for r in range(2)])
    errs[s, -1] = mae(_run(data, emb, None, jax.random.PRNGKey(0)), data.test_rating)
    if s == 0:
      assert errs[s, -1] < 0.8 * global_mean_mae(data)
  mean_err = errs.mean(0)
  assert all(a > b for a, b in zip(mean_err, mean_err[1:])), mean_err


def test_cold_users_in_train_users_raise():
  data = make_planted(0)
  emb = pretrained(data)
  with pytest.raises(ValueError, match="overlap"):
    dp_emcdr.fit_predict(data.test, train_users=data.test_users, cfg=dp_emcdr.DPEMCDRConfig(),
                         key=jax.random.PRNGKey(0), src_user_emb=emb["src_user_emb"],
                         tgt_user_emb=emb["tgt_user_emb"], tgt_item_emb=emb["tgt_item_emb"])
