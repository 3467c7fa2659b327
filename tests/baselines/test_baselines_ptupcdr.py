"""Tests of PTUPCDR: history building, attention, reduction to EMCDR, learning."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import dp_emcdr, ptupcdr
from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained


def test_histories_keep_positive_items_truncate_and_mask():
  user = np.array([0, 0, 0, 0, 1, 1, 2])
  item = np.array([5, 6, 7, 8, 1, 2, 3])
  rating = np.array([5.0, 4.0, 2.0, 5.0, 3.0, 1.0, 4.0])
  seq, mask = ptupcdr.build_histories(user, item, rating, 4, max_seq_len=2, pos_threshold=3.0,
                                      key=jax.random.PRNGKey(0))
  assert seq.shape == mask.shape == (4, 2)
  np.testing.assert_array_equal(mask, [[True, True], [False, False], [True, False],
                                       [False, False]])
  assert set(seq[0]) <= {5, 6, 8} and len(set(seq[0])) == 2
  assert seq[2, 0] == 3


def test_characteristic_matches_numpy_softmax_attention():
  params = ptupcdr.init(jax.random.PRNGKey(0), 4, 8)
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(5, 4)).astype(np.float32)
  mask = np.array([True, False, True, True, False])
  got = ptupcdr.characteristic(params, jnp.asarray(emb), jnp.asarray(mask))
  w1, b1, w2 = (np.asarray(a) for a in (params.att_w1, params.att_b1, params.att_w2))
  logits = np.maximum(emb @ w1 + b1, 0.0) @ w2
  a = np.exp(logits[mask] - logits[mask].max()); a /= a.sum()
  np.testing.assert_allclose(got, a @ emb[mask], rtol=1e-5, atol=1e-6)
  # No valid position: characteristic 0 and finite gradients.
  none = jnp.zeros(5, bool)
  np.testing.assert_allclose(ptupcdr.characteristic(params, jnp.asarray(emb), none), 0.0)
  g = jax.jit(jax.grad(
      lambda p: ptupcdr.transfer_user(p, jnp.ones(4), jnp.asarray(emb), none).sum()))(params)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(g))


def test_constant_meta_output_reduces_to_emcdr_linear_map():
  rng = np.random.default_rng(0)
  d, n, n_items = 4, 30, 12
  p_src = rng.normal(size=(n, d)).astype(np.float32)
  p_tgt = (p_src @ rng.normal(size=(d, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32)
  # EMCDR's linear map (no bias), fit in closed form.
  w, _ = dp_emcdr.fit_linear_map(jnp.asarray(p_src), jnp.asarray(p_tgt), ridge=0.0,
                                 fit_bias=False)
  params = ptupcdr.constant_bridge_params(ptupcdr.init(jax.random.PRNGKey(1), d, 16), w)
  item_emb = jnp.asarray(rng.normal(size=(n_items, d)), jnp.float32)
  seq = jnp.asarray(rng.integers(0, n_items, size=(n, 6)))
  mask = jnp.asarray(rng.random((n, 6)) < 0.6)
  got = ptupcdr.transfer_users(params, jnp.asarray(p_src), item_emb[seq], mask)
  np.testing.assert_allclose(got, np.asarray(p_src) @ np.asarray(w), rtol=1e-5, atol=1e-5)
  # ... and so are the predicted ratings.
  v = rng.normal(size=(n, d)).astype(np.float32)
  pred_pt = np.sum(np.asarray(got) * v, -1)
  pred_emcdr = np.sum((p_src @ np.asarray(w)) * v, -1)
  np.testing.assert_allclose(pred_pt, pred_emcdr, rtol=1e-4, atol=1e-4)


def test_mismatched_embedding_sizes_raise():
  data = make_planted(0)
  with pytest.raises(ValueError, match="one embedding size"):
    ptupcdr.fit_predict(data.source, data.target_train, data.test, train_users=data.train_users,
                        src_user_emb=np.zeros((data.n_users_src, 4), np.float32),
                        src_item_emb=np.zeros((data.n_items_src, 3), np.float32),
                        tgt_item_emb=np.zeros((data.n_items_tgt, 4), np.float32),
                        cfg=ptupcdr.PTUPCDRConfig(), key=jax.random.PRNGKey(0))


def test_beats_global_mean_on_cold_users():
  data = make_planted(0)
  emb = pretrained(data)
  pred = ptupcdr.fit_predict(data.source, data.target_train, data.test,
                             train_users=data.train_users, src_user_emb=emb["src_user_emb"],
                             src_item_emb=emb["src_item_emb"], tgt_item_emb=emb["tgt_item_emb"],
                             cfg=ptupcdr.PTUPCDRConfig(epochs=8), key=jax.random.PRNGKey(0))
  assert mae(pred, data.test_rating) < 0.8 * global_mean_mae(data)
