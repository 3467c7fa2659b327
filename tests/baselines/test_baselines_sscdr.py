"""Tests of SSCDR."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import sscdr
from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained


def _np_mlp(params, x):
  for k, (w, b) in enumerate(params):
    x = x @ np.asarray(w) + np.asarray(b)
    if k < len(params) - 1:
      x = np.tanh(x)
  return x


def test_losses_match_numpy_reference():
  params = sscdr.init_mapping(jax.random.PRNGKey(0), 4, 3, hidden=(5,))
  rng = np.random.default_rng(0)
  u, i, j, t = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(4))
  t = t[:, :3]
  w = np.array([1, 1, 1, 1, 0, 0], np.float32)
  ls = sscdr.supervised_loss(params, u, t, w)
  want_s = np.sum(w * np.sum((_np_mlp(params, u) - t) ** 2, -1)) / w.sum()
  np.testing.assert_allclose(ls, want_s, rtol=1e-5)
  lu = sscdr.unsupervised_loss(params, u, i, j, margin=0.7)
  fu, fi, fj = (_np_mlp(params, x) for x in (u, i, j))
  want_u = np.mean(np.maximum(0.0, 0.7 + np.sum((fu - fi) ** 2, -1) - np.sum((fu - fj) ** 2, -1)))
  np.testing.assert_allclose(lu, want_u, rtol=1e-5)


def test_neighbor_mean_matches_loop():
  params = sscdr.init_mapping(jax.random.PRNGKey(1), 3, 3)
  item_emb = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
  su, si = np.array([0, 0, 2, 3, 3, 3]), np.array([1, 4, 0, 2, 2, 1])
  users = np.array([0, 1, 3])
  got = sscdr.mapped_neighbor_mean(params, users, su, si, jnp.asarray(item_emb))
  f = _np_mlp(params, item_emb)
  want = np.stack([f[si[su == u]].mean(0) if (su == u).any() else np.zeros(3) for u in users])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_train_test_overlap_raises():
  data = make_planted(0)
  emb = {k: np.zeros((300, 2), np.float32) for k in
         ("src_user_emb", "src_item_emb", "tgt_user_emb", "tgt_item_emb")}
  with pytest.raises(ValueError, match="overlap"):
    sscdr.fit_predict(data.source, data.test, train_users=data.test_users,
                      cfg=sscdr.SSCDRConfig(), key=jax.random.PRNGKey(0), **emb)


@pytest.mark.parametrize("path_weight", [0.0])
def test_beats_global_mean_on_cold_users(path_weight):
  data = make_planted(0)
  emb = pretrained(data)
  cfg = sscdr.SSCDRConfig(epochs=60, path_weight=path_weight)
  pred = sscdr.fit_predict(data.source, data.test, train_users=data.train_users, cfg=cfg,
                           key=jax.random.PRNGKey(0), **emb)
  assert mae(pred, data.test_rating) < 0.8 * global_mean_mae(data)
