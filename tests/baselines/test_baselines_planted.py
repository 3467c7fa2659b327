"""Planted cross-domain data for the baseline tests (+ tests of the generator itself).

Users share latent factors across domains; each domain has its own item factors, so
the only way to beat the target global mean on cold users is to transfer the user
signal from the source. Imported by the other ``test_baselines_*`` modules.
"""
from types import SimpleNamespace

import numpy as np

N_OVERLAP, N_SRC_ONLY, N_TGT_ONLY = 240, 40, 40
N_ITEMS_SRC, N_ITEMS_TGT = 100, 100
TRUE_DIM = 3
DENSITY = 0.2


def _domain(rng, z, bias, n_items, shift):
  """Ratings of users ``z`` on fresh items: rounded, clipped planted low-rank scores."""
  b = rng.normal(size=(n_items, TRUE_DIM))
  score = (shift + bias[:, None] + 1.0 * (z @ b.T) / np.sqrt(TRUE_DIM)
           + 0.2 * rng.normal(size=(z.shape[0], n_items)))
  obs = rng.random(score.shape) < DENSITY
  u, i = np.nonzero(obs)
  r = np.clip(np.round(score[u, i]), 1.0, 5.0)
  return u.astype(np.int32), i.astype(np.int32), r.astype(np.float32)


def make_planted(seed: int, test_fraction: float = 0.25) -> SimpleNamespace:
  """Tiny CDR task: overlap users 0..N_OVERLAP-1 in both domains (shared factors).

  Returns:
    namespace with ``source``/``target_train``/``test`` tuples, domain sizes,
    ``train_users``, ``test_users``, ``test_rating`` and ``n_overlap``.
  """
  rng = np.random.default_rng(seed)
  z_overlap = rng.normal(size=(N_OVERLAP, TRUE_DIM))
  z_src = np.concatenate([z_overlap, rng.normal(size=(N_SRC_ONLY, TRUE_DIM))])
  z_tgt = np.concatenate([z_overlap, rng.normal(size=(N_TGT_ONLY, TRUE_DIM))])
  # A shared per-user rating bias too (what SourceUserMean can transfer).
  b_overlap = 0.6 * rng.normal(size=N_OVERLAP)
  b_src = np.concatenate([b_overlap, 0.6 * rng.normal(size=N_SRC_ONLY)])
  b_tgt = np.concatenate([b_overlap, 0.6 * rng.normal(size=N_TGT_ONLY)])
  source = _domain(rng, z_src, b_src, N_ITEMS_SRC, 3.3)
  tu, ti, tr = _domain(rng, z_tgt, b_tgt, N_ITEMS_TGT, 3.6)
  perm = rng.permutation(N_OVERLAP)
  n_test = int(round(test_fraction * N_OVERLAP))
  test_users = np.sort(perm[:n_test]).astype(np.int32)
  train_users = np.sort(perm[n_test:]).astype(np.int32)
  is_test = np.isin(tu, test_users)
  return SimpleNamespace(
      source=source, target_train=(tu[~is_test], ti[~is_test], tr[~is_test]),
      test=(tu[is_test], ti[is_test]), test_rating=tr[is_test],
      n_users_src=N_OVERLAP + N_SRC_ONLY, n_items_src=N_ITEMS_SRC,
      n_users_tgt=N_OVERLAP + N_TGT_ONLY, n_items_tgt=N_ITEMS_TGT, n_overlap=N_OVERLAP,
      train_users=train_users, test_users=test_users)


def als_mf(user, item, rating, n_users, n_items, dim=6, reg=1.0, iters=15, seed=0):
  """Plain numpy ALS for ``r ~ p_u . q_i`` (pretrained embeddings for the tests).

  Users without ratings keep their N(0, 0.1^2) init, like an untrained row.
  """
  rng = np.random.default_rng(seed)
  p = 0.1 * rng.normal(size=(n_users, dim))
  q = 0.1 * rng.normal(size=(n_items, dim))
  by_user = [np.nonzero(user == u)[0] for u in range(n_users)]
  by_item = [np.nonzero(item == i)[0] for i in range(n_items)]
  eye = reg * np.eye(dim)
  for _ in range(iters):
    for u, idx in enumerate(by_user):
      if idx.size:
        a = q[item[idx]]
        p[u] = np.linalg.solve(a.T @ a + eye, a.T @ rating[idx])
    for i, idx in enumerate(by_item):
      if idx.size:
        a = p[user[idx]]
        q[i] = np.linalg.solve(a.T @ a + eye, a.T @ rating[idx])
  return p.astype(np.float32), q.astype(np.float32)


def pretrained(data, dim=6):
  """Source and target ALS embeddings of a planted task (cold users untrained in target)."""
  ps, qs = als_mf(*data.source, data.n_users_src, data.n_items_src, dim=dim, seed=1)
  pt, qt = als_mf(*data.target_train, data.n_users_tgt, data.n_items_tgt, dim=dim, seed=2)
  return dict(src_user_emb=ps, src_item_emb=qs, tgt_user_emb=pt, tgt_item_emb=qt)


def mae(pred, y):
  return float(np.mean(np.abs(np.asarray(pred) - y)))


def global_mean_mae(data):
  return mae(np.full(data.test_rating.shape, data.target_train[2].mean()), data.test_rating)


def test_planted_cold_users_have_no_target_training_ratings():
  data = make_planted(0)
  assert not np.isin(data.target_train[0], data.test_users).any()
  assert np.isin(data.test[0], data.test_users).all()
  assert np.intersect1d(data.train_users, data.test_users).size == 0
  assert data.test_rating.size > 300


def test_planted_signal_is_transferable():
  # Oracle: ridge map source ALS user embeddings -> target ALS user embeddings.
  data = make_planted(0)
  emb = pretrained(data)
  xs, xt = emb["src_user_emb"][data.train_users], emb["tgt_user_emb"][data.train_users]
  w = np.linalg.solve(xs.T @ xs + 1e-3 * np.eye(xs.shape[1]), xs.T @ xt)
  pred = np.sum((emb["src_user_emb"][data.test[0]] @ w) * emb["tgt_item_emb"][data.test[1]], -1)
  assert mae(pred, data.test_rating) < 0.8 * global_mean_mae(data)
