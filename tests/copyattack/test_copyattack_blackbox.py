"""Tests of the black-box interface and the PinSage-style target model."""
import ast
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import target_model

PKG = Path(__file__).resolve().parents[2] / "pfcdr_jax" / "copyattack"
ATTACK_MODULES = ("attack.py", "methods.py", "attacker_data.py", "episodes.py",
                  "reinforce.py", "training.py", "policy.py", "tree.py",
                  "crafting.py")


def test_attack_code_imports_only_the_blackbox_interface():
  forbidden = {"target_model", "evaluate", "pipeline", "ranking"}
  for name in ATTACK_MODULES:
    tree = ast.parse((PKG / name).read_text())
    imported = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        imported |= {a.name.split(".")[-1] for a in node.names}
      elif isinstance(node, ast.ImportFrom):
        imported |= {a.name for a in node.names}
        if node.module:
          imported |= {node.module.split(".")[-1]}
    assert not imported & forbidden, (name, imported & forbidden)
  assert "blackbox" in (PKG / "attack.py").read_text()


def _two_group_graph():
  """Users 0-19 like items 0-9, users 20-39 like items 10-19; item 20 is rare."""
  rng = np.random.default_rng(0)
  pairs = []
  for u in range(40):
    block = 0 if u < 20 else 10
    for i in rng.choice(10, size=6, replace=False):
      pairs.append((u, block + i))
  pairs.append((39, 20))  # v* has one interaction, from group 2.
  return np.asarray(pairs, np.int32)


@pytest.fixture(scope="module")
def trained():
  pairs = _two_group_graph()
  n_users, n_items = 40, 21
  split = target_model.InteractionSplit(train=pairs, val=pairs[:40],
                                        test=pairs[40:80])
  inter = np.zeros((n_users, n_items), bool)
  inter[pairs[:, 0], pairs[:, 1]] = True
  cfg = target_model.TargetConfig(n_neg=5, eval_k=1, batch_size=32,
                                  max_epochs=40, patience=10, lr=0.05)
  tgt = target_model.train_target_model(jax.random.key(0), n_users, n_items,
                                        split, inter, cfg, log=lambda m: None)
  return pairs, tgt


def _make(trained, extra_users=12, l_max=8):
  pairs, tgt = trained
  return blackbox.make_blackbox(tgt.model, tgt.params, pairs, 40,
                                extra_users=extra_users,
                                extra_interactions=extra_users * l_max,
                                max_profile_len=l_max)


def test_trained_model_ranks_in_group_items_higher(trained):
  pairs, tgt = trained
  bb, state, scorer = _make(trained)
  s = np.asarray(scorer(state, jnp.arange(40)))
  assert s[:20, :10].mean() > s[:20, 10:20].mean()
  assert s[20:40, 10:20].mean() > s[20:40, :10].mean()


def test_injection_raises_target_rank_for_users_sharing_items(trained):
  bb, state, scorer = _make(trained, extra_users=30)
  users = jnp.arange(20)  # group 1: they share items 0-4 with the injections
  s0 = np.asarray(scorer(state, users))
  # v*: the group-2 item group 1 likes least (it has only group-2 neighbors).
  v_star = 10 + int(np.argmin(s0[:, 10:20].mean(0)))

  def rank(s):
    return (s > s[:, [v_star]]).sum(-1)

  before = rank(s0)
  profile = jnp.asarray([0, 1, 2, v_star, 3, 4, -1, -1], jnp.int32)
  for _ in range(30):
    state, _ = bb.inject(state, profile, jnp.int32(6))
  s1 = np.asarray(scorer(state, users))
  after = rank(s1)
  assert (s1[:, v_star] > s0[:, v_star]).all()
  assert after.mean() < before.mean() - 3.0, (before, after)
  assert (after <= before).all()
  # Users of the other group, who share nothing with the injections, are
  # not pushed towards v* as much.
  others = jnp.arange(20, 40)
  gain_others = (np.asarray(scorer(state, others))[:, v_star]
                 - np.asarray(scorer(_make(trained)[1], others))[:, v_star])
  assert (s1[:, v_star] - s0[:, v_star]).mean() > gain_others.mean()


def test_no_recompilation_across_injections_and_queries(trained):
  bb, state, _ = _make(trained)
  inject = jax.jit(chex.assert_max_traces(bb.inject, n=1))
  topk = jax.jit(chex.assert_max_traces(lambda s, u, k: bb.topk(s, u, k), n=1),
                 static_argnums=2)
  rng = np.random.default_rng(0)
  n0_users, n0_inter = int(state.n_users), int(state.n_inter)
  total = 0
  for t in range(6):
    n = int(rng.integers(1, 9))
    items = np.full(8, -1, np.int32)
    items[:n] = rng.choice(21, n, replace=False)
    state, uid = inject(state, jnp.asarray(items), jnp.int32(n))
    total += n
    assert int(uid) == n0_users + t
    top, state = topk(state, jnp.arange(5, dtype=jnp.int32), 3)
  assert int(state.n_users) == n0_users + 6
  assert int(state.n_inter) == n0_inter + total
  assert int(state.n_queries) == 6


def test_topk_matches_numpy_and_excludes_interacted(trained):
  pairs, _ = trained
  bb, state, scorer = _make(trained)
  state, uid = bb.inject(state, jnp.asarray([0, 5, 20, -1, -1, -1, -1, -1],
                                            jnp.int32), jnp.int32(3))
  users = jnp.asarray([0, 21, int(uid)], jnp.int32)
  top, _ = bb.topk(state, users, 5)
  s = np.asarray(scorer(state, users))
  seen = {int(u): set() for u in np.asarray(users)}
  for u, i in pairs:
    if u in seen:
      seen[u].add(int(i))
  seen[int(uid)] |= {0, 5, 20}
  for r, u in enumerate(np.asarray(users)):
    order = [i for i in np.argsort(-s[r], kind="stable") if i not in seen[u]]
    assert sorted(np.asarray(top)[r].tolist()) == sorted(order[:5])
