"""Tests of the attack episode, training loop, baselines and evaluation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import attack
from pfcdr_jax.copyattack import attacker_data
from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import crafting
from pfcdr_jax.copyattack import episodes
from pfcdr_jax.copyattack import evaluate
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import ranking
from pfcdr_jax.copyattack import target_model
from pfcdr_jax.copyattack import tree as tree_lib

N_ITEMS, N_USERS, L_MAX, V_STAR, RARE = 15, 20, 6, 3, 14


@pytest.fixture(scope="module")
def world():
  rng = np.random.default_rng(0)
  # Target platform: random interactions, untrained (random) model weights.
  pairs = np.stack([rng.integers(0, N_USERS, 120),
                    rng.integers(0, N_ITEMS - 1, 120)], 1).astype(np.int32)
  model = target_model.PinSage(n_items=N_ITEMS, n_users=N_USERS, dim=4)
  params = model.init(jax.random.key(0), jnp.asarray(pairs[:, 0]),
                      jnp.asarray(pairs[:, 1]), jnp.ones(len(pairs)))
  # Source platform: 13 users; 9 contain v*, exactly 2 contain RARE.
  n_src = 13
  profiles = np.full((n_src, L_MAX), -1, np.int32)
  lengths = rng.integers(3, L_MAX + 1, n_src).astype(np.int32)
  for u in range(n_src):
    profiles[u, :lengths[u]] = rng.choice(np.arange(4, 14), lengths[u],
                                          replace=False)
  for u in range(9):
    profiles[u, rng.integers(lengths[u])] = V_STAR
  profiles[[4, 11], 0] = RARE
  p = rng.normal(size=(n_src, 4)).astype(np.float32)
  q = rng.normal(size=(N_ITEMS, 4)).astype(np.float32)
  tr = tree_lib.build_tree(p, 2, seed=0)  # c = 4, 16 slots
  bb, state, scorer = blackbox.make_blackbox(
      model, params, pairs, N_USERS, extra_users=20,
      extra_interactions=20 * L_MAX, max_profile_len=L_MAX)
  pretend = attacker_data.make_pretend_profiles(profiles, lengths, 4, 3, 3, seed=0)
  state, pretend_users = attacker_data.register_pretend_users(bb, state, pretend)
  data = attacker_data.make_attacker_data(tr, profiles, lengths, p, q,
                                          np.asarray(pretend_users), pretend)
  return dict(tr=tr, bb=bb, state=state, scorer=scorer, data=data,
              profiles=profiles, lengths=lengths, pairs=pairs)


def _play(world, cfg, item=V_STAR, seed=0, params_seed=0, zero_too=False):
  """One rollout; with ``zero_too`` also one with ``attack.zero_policy``'s
  params (same jitted function, same key)."""
  tr = world["tr"]
  pcfg = policy.PolicyConfig(emb_dim=4, hidden=8, branching=tr.branching,
                             depth=tr.depth, selector=cfg.selector)
  params = policy.init_policy(jax.random.key(params_seed), pcfg)
  fn = jax.jit(lambda prm, st, it, k: episodes.rollout(
      prm, world["data"], st, it, k, bb=world["bb"], cfg=cfg, pcfg=pcfg))
  play = lambda prm: fn(prm, world["state"], jnp.int32(item),
                        jax.random.key(seed))
  if zero_too:
    return play(params), play(attack.zero_policy(jax.random.key(0), pcfg))
  return play(params)


def test_tree_episode_respects_mask_budget_and_queries(world):
  cfg = methods.AttackConfig(reward_k=3, selector="tree", masking=True, craft=0, budget=7,
                             goal_hr=2.0)
  state, traj = _play(world, cfg)
  tr, prof, lens = world["tr"], world["profiles"], world["lengths"]
  act = np.asarray(traj.active)
  leaves = np.asarray(traj.leaf)[act]
  users = tr.leaf_user[leaves]
  assert act.sum() == 7 and len(set(users.tolist())) == 7
  assert all(V_STAR in prof[u, :lens[u]] for u in users)
  # One of the untouched platform, then after injections 3, 6 and the last.
  assert int(traj.n_queries) == 4, (traj.n_queries, traj.reward, act)
  assert (np.asarray(traj.reward)[np.arange(9) % 3 != 2] == 0).all()
  assert not np.asarray(traj.policy_sel)[0]  # the first user is random
  base = world["state"]
  assert int(state.n_users) == int(base.n_users) + 7
  # The buffer holds exactly the crafted profiles, in order.
  written = np.asarray(state.inter_item)[int(base.n_inter):int(state.n_inter)]
  expect = []
  for leaf, level in zip(leaves, np.asarray(traj.level)[act]):
    u = tr.leaf_user[leaf]
    out, k = crafting.clip_profile(jnp.asarray(prof[u]), jnp.int32(lens[u]),
                                   jnp.int32(V_STAR), jnp.int32(level))
    expect += np.asarray(out)[:int(k)].tolist()
  assert written.tolist() == expect
  assert np.asarray(traj.n_items)[act].sum() == len(expect)


def test_episode_stops_when_reachable_users_run_out(world):
  cfg = methods.AttackConfig(reward_k=3, selector="tree", masking=True, craft=10, budget=9,
                             goal_hr=2.0)
  _, traj = _play(world, cfg, item=RARE)
  users = world["tr"].leaf_user[np.asarray(traj.leaf)[np.asarray(traj.active)]]
  assert sorted(users.tolist()) == [4, 11]
  assert int(traj.n_queries) == 2


def test_early_stop_when_goal_met(world):
  cfg = methods.AttackConfig(reward_k=3, selector="flat", masking=True, craft=0, budget=9,
                             goal_hr=0.0)
  state, traj = _play(world, cfg)
  assert int(np.asarray(traj.active).sum()) == 3
  assert int(traj.n_queries) == 2
  assert int(state.n_users) == int(world["state"].n_users) + 3


def test_random_attack_ignores_mask_and_copies_whole_profiles(world):
  cfg = methods.table2_methods(methods.AttackConfig(reward_k=3, budget=12))["RandomAttack"]
  (state, traj), (state0, traj0) = _play(world, cfg, zero_too=True)
  tr, lens = world["tr"], world["lengths"]
  act = np.asarray(traj.active)
  users = tr.leaf_user[np.asarray(traj.leaf)[act]]
  assert act.sum() == 12 and len(set(users.tolist())) == 12
  np.testing.assert_array_equal(np.asarray(traj.n_items)[act], lens[users])
  assert not np.asarray(traj.policy_sel).any()
  # A baseline never reads its policy: zero params (what ``make_method_fns``
  # gives baselines) play the same attack.
  assert not cfg.learns
  chex.assert_trees_all_equal((state, traj), (state0, traj0))


def test_train_and_attack_runs_and_counts_queries(world):
  cfg = methods.AttackConfig(reward_k=3, selector="tree", masking=True, craft=0, budget=6,
                             episodes=4, batch_episodes=2, goal_hr=2.0)
  tr = world["tr"]
  pcfg = policy.PolicyConfig(emb_dim=4, hidden=8, branching=tr.branching,
                             depth=tr.depth)
  fn = attack.make_attack_fn(world["bb"], cfg, pcfg)
  res = fn(world["data"], world["state"], jnp.int32(V_STAR),
           jax.random.key(0))
  assert res.curve.shape == (2,)
  assert int(res.train_queries) == 4 * 3  # 4 episodes x (1 + 2 queries)
  assert int(res.traj.n_queries) == 3
  assert int(np.asarray(res.traj.active).sum()) == 6


def test_promotion_metrics_match_numpy(world):
  scorer, state = world["scorer"], world["state"]
  users = jnp.arange(N_USERS, dtype=jnp.int32)
  inter = np.zeros((N_USERS, N_ITEMS), bool)
  inter[world["pairs"][:, 0], world["pairs"][:, 1]] = True
  inter_j = jnp.asarray(inter)
  neg = evaluate.fixed_negatives(jax.random.key(0), inter_j, jnp.int32(RARE),
                                 n_neg=4)
  neg2 = evaluate.fixed_negatives(jax.random.key(0), inter_j, jnp.int32(RARE),
                                  n_neg=4)
  np.testing.assert_array_equal(neg, neg2)
  neg_np = np.asarray(neg)
  assert not np.take_along_axis(inter, neg_np, 1).any()
  assert (neg_np != RARE).all()
  assert all(len(set(r)) == 4 for r in neg_np.tolist())
  elig = evaluate.eligible_users(scorer, state, users, inter_j,
                                 jnp.int32(RARE), k=3)
  got = evaluate.promotion_metrics(scorer, state, users, jnp.int32(RARE),
                                   neg, elig, ks=(3, 1))
  s = np.asarray(scorer(state, users))
  ranks = (s[np.arange(N_USERS)[:, None], neg_np] > s[:, [RARE]]).sum(1)
  m = np.asarray(elig)
  for u in range(N_USERS):
    allowed = np.flatnonzero(~inter[u])
    top3 = allowed[np.argsort(-s[u, allowed], kind="stable")[:3]]
    assert m[u] == (RARE not in top3 and not inter[u, RARE])
  for k in (3, 1):
    hr = (ranks[m] < k).mean() if m.any() else 0.0
    nd = np.where(ranks[m] < k, 1 / np.log2(ranks[m] + 2), 0).mean()
    np.testing.assert_allclose(float(got[f"HR@{k}"]), hr, rtol=1e-6)
    np.testing.assert_allclose(float(got[f"NDCG@{k}"]), nd, rtol=1e-6)


def test_ranking_helpers():
  rank = ranking.rank_of_positive(jnp.asarray([0.5, 0.1]),
                                  jnp.asarray([[0.9, 0.2, 0.6],
                                               [0.0, -1.0, 0.05]]))
  np.testing.assert_array_equal(rank, [2, 0])
  np.testing.assert_allclose(ranking.ndcg(rank, 3), [0.5, 1.0])
  np.testing.assert_array_equal(ranking.hit_ratio(rank, 2), [0.0, 1.0])


def test_jitted_rollout_traces_once_across_calls(world):
  """Same shapes (another item, key and platform state) reuse one trace."""
  cfg = methods.AttackConfig(budget=4, query_every=2, reward_k=5)
  tr = world["tr"]
  pcfg = policy.PolicyConfig(emb_dim=4, hidden=8, branching=tr.branching,
                             depth=tr.depth)
  params = policy.init_policy(jax.random.key(0), pcfg)

  @chex.assert_max_traces(n=1)
  def play(prm, st, it, k):
    return episodes.rollout(prm, world["data"], st, it, k, bb=world["bb"],
                            cfg=cfg, pcfg=pcfg)

  chex.clear_trace_counter()
  fn = jax.jit(play)
  state, traj = fn(params, world["state"], jnp.int32(V_STAR),
                   jax.random.key(1))
  state, traj = fn(params, state, jnp.int32(RARE), jax.random.key(2))
  assert int(traj.active.sum()) <= 2  # only 2 source users hold RARE
