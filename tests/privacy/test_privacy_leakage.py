"""Tests of pfcdr_jax.privacy.leakage: the advantage scale, the attackers on planted
signals and on controls, and the n_u attack on PFCDR+'s kappa grid."""

import numpy as np
import pytest
from scipy import sparse

from pfcdr_jax.plus import config as plus_config
from pfcdr_jax.plus import release as plus_release
from pfcdr_jax.privacy import attacks
from pfcdr_jax.privacy import leakage


def test_advantage_is_the_issue_scale():
  assert leakage.advantage(0.75, 0.5) == pytest.approx(0.5)      # 2 (AUC - 0.5)
  assert leakage.advantage(0.3, 0.0) == pytest.approx(0.3)       # max(R², 0)
  assert leakage.advantage(-0.2, 0.0) == 0.0
  assert leakage.advantage(0.6, 0.2) == pytest.approx(0.5)       # (acc - c) / (1 - c)
  assert leakage.advantage(1.0, 0.72) == pytest.approx(1.0)
  assert np.isnan(leakage.advantage(float("nan"), 0.5))


def test_membership_auc_is_the_mean_of_per_user_aucs():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=(30, 40))
  scores[:, :5] = np.round(scores[:, :5])   # ties
  member = rng.random((30, 40)) < 0.2
  member[0] = False                          # a user with no rated item is skipped
  want = np.mean([attacks.auc(scores[i], member[i]) for i in range(1, 30)])
  got = leakage.membership_auc(scores, sparse.csr_matrix(member))
  assert got == pytest.approx(want, abs=1e-12)


def _planted(n_users=1500, n_items=120, d=4, seed=0):
  """Users with embeddings that drive which items they rate and how many."""
  rng = np.random.default_rng(seed)
  U = rng.normal(size=(n_users, d))
  V = rng.normal(size=(n_items, d))
  n = np.clip(np.round(np.exp(2.5 + 0.6 * U[:, 0])), 3, n_items - 5).astype(int)
  rows, items = [], []
  for u in range(n_users):
    logits = V @ U[u]
    p = np.exp(logits - logits.max())
    chosen = rng.choice(n_items, n[u], replace=False, p=p / p.sum())
    rows.append(np.full(n[u], u))
    items.append(chosen)
  user, item = np.concatenate(rows), np.concatenate(items)
  bias = 0.5 * U[:, 1]
  rating = np.clip(np.round(3.5 + bias[user] + 0.5 * rng.normal(size=len(user))), 1, 5)
  gender = (U[:, 2] + 0.3 * rng.normal(size=n_users) > 0).astype(np.int64)
  truth = leakage.targets(U, (user, item, rating), n_items, {"gender": gender})
  return U, V, (user, item, rating), truth


def test_a_revealing_transfer_leaks_and_its_control_sits_at_chance():
  U, V, _, truth = _planted()
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  x = U + 0.1 * np.random.default_rng(1).normal(size=U.shape)
  res = leakage.attack_transfer(x[aux], x[ev], aux, ev, truth, seed=0, item_scores=V.T)
  q = res["quantities"]
  assert q["embedding"]["advantage"] > 0.9
  assert q["n_ratings"]["advantage"] > 0.5          # n_u follows U[:, 0]
  assert q["gender"]["advantage"] > 0.5
  assert q["membership"]["score"] > q["membership"]["chance"] + 0.05
  assert res["leakage_max"] == max(v["advantage"] for v in q.values())
  # Each control (the chosen attacker on other users' vectors) gains nothing over
  # chance; it may fall below it (``direct`` has no popularity term).
  for name, v in q.items():
    assert leakage.advantage(v["control"], v["chance"]) < 0.08, (name, v)


def test_named_items_give_membership_and_the_count_and_their_control_does_not():
  """The observed attackers (FedCDR's upload ids) against vectors that carry nothing."""
  _, _, _, truth = _planted()
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  x = np.random.default_rng(2).normal(size=(1500, 4))
  res = leakage.attack_transfer(x[aux], x[ev], aux, ev, truth, seed=0,
                                observed=(truth.membership[aux], truth.membership[ev]))
  q = res["quantities"]
  assert q["membership"]["attacker"] == "observed_items"
  assert q["membership"]["advantage"] == pytest.approx(1.0)
  assert q["n_ratings"]["attacker"] == "observed_count"
  assert q["n_ratings"]["score"] == pytest.approx(1.0)
  assert res["leakage_max"] == pytest.approx(1.0)
  # Another user's ids: membership falls to (below) the popularity prior, and the count
  # carries nothing.
  assert q["membership"]["control"] < q["membership"]["chance"] + 0.02
  assert q["n_ratings"]["control"] < 0.05
  # Half of each user's items named: still far above chance, below perfect.
  m = truth.membership.tocoo()
  keep = np.random.default_rng(4).random(m.nnz) < 0.5
  half = sparse.csr_matrix((m.data[keep], (m.row[keep], m.col[keep])), shape=m.shape)
  res = leakage.attack_transfer(x[aux], x[ev], aux, ev, truth, seed=0,
                                observed=(half[aux], half[ev]))
  assert 0.5 < res["quantities"]["membership"]["advantage"] < 0.99
  # Without ids the same vectors leak nothing through these two quantities.
  res = leakage.attack_transfer(x[aux], x[ev], aux, ev, truth, seed=0)
  assert res["quantities"]["membership"]["advantage"] < 0.05
  assert res["quantities"]["n_ratings"]["advantage"] < 0.05


def test_rare_classes_are_dropped_and_one_class_is_not_scored():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(600, 3))
  y = np.where(rng.random(600) < 0.5, 0, 1)
  y[:5] = 2                                    # a class of 5 users: dropped
  res = leakage.attack_attribute(x[:400], y[:400], x[400:], y[400:], seed=0)
  assert res["metric"] == "auc" and np.isfinite(res["score"])
  res = leakage.attack_attribute(x[:400], np.zeros(400, int), x[400:], np.zeros(200, int),
                                 seed=0)
  assert np.isnan(res["advantage"]) and "dropped" in res


def test_membership_attacker_family_contains_the_popularity_prior():
  """On noise the chosen membership attacker does not fall below popularity."""
  _, _, _, truth = _planted()
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  x = np.random.default_rng(4).normal(size=(1500, 4))
  res = leakage.attack_membership(x[aux], truth.membership[aux], x[ev],
                                  truth.membership[ev], seed=0)
  assert res["score"] > res["chance"] - 0.003, res


def test_noise_leaks_nothing():
  _, _, _, truth = _planted()
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  x = np.random.default_rng(2).normal(size=(1500, 4))
  res = leakage.attack_transfer(x[aux], x[ev], aux, ev, truth, seed=0)
  assert res["leakage_max"] < 0.1, res["quantities"]


def _plus_scalars(source, n_users, cfg):
  kappas = list(cfg.offset_shrinkage)
  cols = [plus_release.sent_offsets(source, n_users, cfg, k) for k in kappas]
  return np.stack(cols, 1), kappas


@pytest.mark.parametrize("rating_epsilon", [None, 1.0])
def test_kappa_grid_reveals_the_rating_count_exactly(rating_epsilon):
  """PFCDR+ sends o(kappa) = S_u / (n_u + kappa) at every kappa of its grid: n_u
  follows exactly, and under its per-rating DP too (the counts are not noised)."""
  U, _, source, truth = _planted()
  cfg = plus_config.PlusConfig(rating_epsilon=rating_epsilon)
  x, kappas = _plus_scalars(source, len(U), cfg)
  est = leakage.kappa_ratio_counts(x, list(range(len(kappas))), kappas)
  ok = x[:, 0] != 0   # S_u = 0 leaves no ratio
  assert ok.mean() > 0.95
  np.testing.assert_allclose(np.expm1(est[ok]), np.expm1(truth.n_ratings[ok]), rtol=1e-6)
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  res = leakage.attack_regression(
      x[aux], truth.n_ratings[aux], x[ev], truth.n_ratings[ev], seed=0,
      fixed={"kappa_ratio": lambda z: leakage.kappa_ratio_counts(
          z, list(range(len(kappas))), kappas)})
  assert res["attacker"] == "kappa_ratio" and res["score"] > 0.95


def test_one_offset_does_not_reveal_the_count():
  """The release without the grid (one kappa): n_u is no longer identified."""
  U, _, source, truth = _planted()
  o = plus_release.sent_offsets(source, len(U), plus_config.PlusConfig(), 5.0)[:, None]
  aux, ev = np.arange(1000), np.arange(1000, 1500)
  res = leakage.attack_regression(o[aux], truth.n_ratings[aux], o[ev],
                                  truth.n_ratings[ev], seed=0)
  assert res["score"] < 0.3, res
