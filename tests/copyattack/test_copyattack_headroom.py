"""Tests of the headroom study: v*'s full-catalogue scores and the oracle."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import evaluate
from pfcdr_jax.copyattack import headroom
from pfcdr_jax.copyattack import target_model

N_ITEMS, N_USERS, L_MAX, V_STAR = 12, 15, 5, 2


@pytest.fixture(scope="module")
def world():
  rng = np.random.default_rng(0)
  pairs = np.stack([rng.integers(0, N_USERS, 80),
                    rng.integers(3, N_ITEMS, 80)], 1).astype(np.int32)
  pairs = np.unique(pairs, axis=0)
  model = target_model.PinSage(n_items=N_ITEMS, n_users=N_USERS, dim=4)
  params = model.init(jax.random.key(0), jnp.asarray(pairs[:, 0]),
                      jnp.asarray(pairs[:, 1]), jnp.ones(len(pairs)))
  params = jax.tree.map(lambda a: a * 10.0, params)  # spread the scores
  bb, state, scorer = blackbox.make_blackbox(
      model, params, pairs, N_USERS, extra_users=4,
      extra_interactions=4 * L_MAX, max_profile_len=L_MAX)
  profiles = np.full((6, L_MAX), -1, np.int32)
  lengths = np.array([5, 4, 5, 3, 5, 4], np.int32)
  for u in range(6):
    profiles[u, :lengths[u]] = rng.choice(np.arange(3, N_ITEMS), lengths[u],
                                          replace=False)
    profiles[u, rng.integers(lengths[u])] = V_STAR
  inter = np.zeros((N_USERS, N_ITEMS), bool)
  inter[pairs[:, 0], pairs[:, 1]] = True
  return bb, state, scorer, profiles, lengths, inter


def test_user_scores_match_numpy(world):
  bb, state, scorer, *_, inter = world
  users = jnp.arange(N_USERS, dtype=jnp.int32)
  got = headroom.user_scores(scorer, state, users, jnp.asarray(inter),
                             jnp.int32(V_STAR))
  s = np.asarray(scorer(state, users))
  for u in range(N_USERS):
    other = np.flatnonzero(~inter[u] & (np.arange(N_ITEMS) != V_STAR))
    rank = (s[u, other] > s[u, V_STAR]).sum()
    np.testing.assert_allclose(got.rr[u], 1.0 / (1 + rank), rtol=1e-6)
    np.testing.assert_allclose(got.percentile[u],
                               (s[u, other] < s[u, V_STAR]).mean(), rtol=1e-6)
  cat = evaluate.catalogue_metrics(scorer, state, users, jnp.asarray(inter),
                                   jnp.int32(V_STAR), jnp.ones(N_USERS, bool),
                                   k=3)
  np.testing.assert_allclose(cat["percentile"], np.mean(got.percentile),
                             rtol=1e-5)
  np.testing.assert_allclose(cat["percentile_p90"],
                             np.percentile(got.percentile, 90), rtol=1e-5)


def test_one_step_oracle_is_the_best_single_profile(world):
  bb, state, scorer, profiles, lengths, inter = world
  users = jnp.arange(N_USERS, dtype=jnp.int32)
  inter_j = jnp.asarray(inter)
  mask = ~inter_j[:, V_STAR]
  args = (users, inter_j, jnp.int32(V_STAR), mask)
  prof, lens = jnp.asarray(profiles), jnp.asarray(lengths)
  singles = np.asarray(headroom.random_attack_scores(
      bb, scorer, state, prof, lens, *args,
      jnp.arange(6, dtype=jnp.int32)[:, None]))
  curve, js, lvs = headroom.greedy_oracle(
      bb, scorer, state, prof, lens, *args, jnp.asarray([10], jnp.int32),
      budget=3)
  np.testing.assert_allclose(curve[0], singles.max(), rtol=1e-6)
  assert int(js[0]) == int(singles.argmax()) and (np.asarray(lvs) == 10).all()
  assert len(set(np.asarray(js).tolist())) == 3  # never the same profile twice
  # Greedy with all 3 picks beats the mean random 3-profile attack.
  orders = np.stack([np.random.default_rng(s).permutation(6)[:3]
                     for s in range(20)]).astype(np.int32)
  rand = np.asarray(headroom.random_attack_scores(
      bb, scorer, state, prof, lens, *args, jnp.asarray(orders)))
  assert float(curve[-1]) >= rand.mean()
