"""Tests of the source-platform MF (``copyattack/source_mf.py``)."""
import jax
import numpy as np
import pytest

from pfcdr_jax.copyattack import source_mf

N_USERS, N_ITEMS, N_GROUPS, PER_USER = 96, 32, 4, 8


def _group_profiles(seed=0):
  """Users of group g interact with items of group g only (item % 4 == g).

  Returns:
    (train profiles int32[U, PER_USER] (-1 padded), lengths int32[U],
    held-out item int32[U] per user, not in its training profile).
  """
  rng = np.random.default_rng(seed)
  profiles = np.full((N_USERS, PER_USER), -1, np.int32)
  lengths = rng.integers(4, PER_USER, N_USERS).astype(np.int32)
  held = np.zeros(N_USERS, np.int32)
  for u in range(N_USERS):
    own = np.flatnonzero(np.arange(N_ITEMS) % N_GROUPS == u % N_GROUPS)
    pick = rng.choice(own, lengths[u] + 1, replace=False)
    profiles[u, :lengths[u]] = pick[:-1]
    held[u] = pick[-1]
  return profiles, lengths, held


def _auc(p, q, profiles, held, seed=1):
  """Share of (held-out item, random unseen item) pairs ranked correctly."""
  rng = np.random.default_rng(seed)
  scores = p @ q.T
  wins = []
  for u in range(len(held)):
    seen = set(profiles[u][profiles[u] >= 0].tolist()) | {int(held[u])}
    neg = rng.choice([i for i in range(q.shape[0]) if i not in seen], 10)
    wins.extend(scores[u, held[u]] > scores[u, neg])
  return float(np.mean(wins))


def test_implicit_domain_positives_and_sampled_negatives():
  profiles, lengths, _ = _group_profiles()
  dom = source_mf.implicit_domain(profiles, lengths, N_ITEMS, 2, seed=0)
  n_pos = int(lengths.sum())
  assert (dom.n_users, dom.n_items) == (N_USERS, N_ITEMS)
  assert dom.user.shape == dom.item.shape == dom.rating.shape
  assert (dom.rating[:n_pos] == 1).all() and (dom.rating[n_pos:] == 0).all()
  assert n_pos < len(dom.rating) <= 3 * n_pos
  pos = {(u, i) for u, i in zip(dom.user[:n_pos], dom.item[:n_pos])}
  assert pos == {(u, i) for u in range(N_USERS) for i in profiles[u] if i >= 0}
  assert not pos & set(zip(dom.user[n_pos:], dom.item[n_pos:]))
  again = source_mf.implicit_domain(profiles, lengths, N_ITEMS, 2, seed=0)
  np.testing.assert_array_equal(dom.item, again.item)


@pytest.fixture(scope="module")
def trained():
  profiles, lengths, held = _group_profiles()
  cfg = source_mf.SourceMFConfig(dim=8, lrs=(0.01,), epochs=30, batch_size=64)
  p, q, info = source_mf.train_source_mf(profiles, lengths, N_ITEMS, cfg,
                                         jax.random.key(0))
  return profiles, held, cfg, p, q, info


def test_shapes_and_info(trained):
  _, _, cfg, p, q, info = trained
  assert p.shape == (N_USERS, cfg.dim) and q.shape == (N_ITEMS, cfg.dim)
  assert np.isfinite(p).all() and np.isfinite(q).all()
  assert set(info) == {"lr", "epoch", "heldout_mse"}
  assert info["lr"] == 0.01 and 1 <= info["epoch"] <= cfg.epochs


def test_fits_better_than_a_constant_on_held_out_ratings(trained):
  # Labels are ~half 1s, half 0s: predicting 0.5 everywhere has MSE 0.25.
  assert trained[-1]["heldout_mse"] < 0.2


def test_ranks_held_out_items_better_than_an_untrained_model(trained):
  profiles, held, cfg, p, q, _ = trained
  rng = np.random.default_rng(0)
  untrained = _auc(0.1 * rng.normal(size=p.shape), 0.1 * rng.normal(size=q.shape),
                   profiles, held)
  auc = _auc(p, q, profiles, held)
  assert auc > 0.8
  assert auc > untrained + 0.2
