"""CopyAttack's REINFORCE learns: a toy platform with one best cluster and window.

The toy black box scores v* for the pretend users as ``0.25 * sum_w`` over
every injected interaction, ``w = +1`` for a "good" item and ``-1`` for a
"bad" one; the other items have fixed scores. Source users form 6 clusters
of 6 (one per top-level node of a depth-2 tree). Every profile starts with
v*; the users of cluster 0 continue with 3 good items, then bad ones, the
others with bad items only. So the best action is cluster 0 with the 40 %
window (v* + 3 good items). A random policy picks cluster 0 a sixth of the
time and that window a tenth; the trained policy must do far better.

Compiling the REINFORCE program is most of this file's time, so the module
compiles with XLA's cheapest settings (``jax_disable_most_optimizations``:
same computation, less optimised code) and the policy's action
probabilities with one jitted function for both parameter sets.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import attack
from pfcdr_jax.copyattack import attacker_data
from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import methods
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import tree as tree_lib

N_ITEMS, V_STAR, L_MAX, N_CLUSTERS, PER_CLUSTER = 30, 0, 10, 6, 6
GOOD = (1, 2, 3)
BEST_LEVEL = 4  # 40 % of 10 items: v* and the 3 good items
N_PRETEND = 3


def _toy_topk(state, users, k, *, weight, base, n_real):
  injected = (state.inter_user >= n_real) & (state.inter_item >= 0) & (
      jnp.arange(state.inter_item.shape[0]) < state.n_inter)
  boost = jnp.where(injected, weight[jnp.maximum(state.inter_item, 0)],
                    0.0).sum()
  scores = base.at[V_STAR].set(0.25 * boost)
  top = jax.lax.top_k(jnp.broadcast_to(scores, (users.shape[0], N_ITEMS)),
                      k)[1].astype(jnp.int32)
  return top, state.replace(n_queries=state.n_queries + 1)


def _world():
  rng = np.random.default_rng(0)
  n_src = N_CLUSTERS * PER_CLUSTER
  cluster = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
  centres = 5.0 * np.eye(N_CLUSTERS, 4 * 2)[:, :N_CLUSTERS]
  p = (centres[cluster] + 0.1 * rng.normal(size=(n_src, N_CLUSTERS))
       ).astype(np.float32)
  bad = np.arange(4, N_ITEMS)
  profiles = np.zeros((n_src, L_MAX), np.int32)
  for u in range(n_src):
    rest = rng.choice(bad, L_MAX - 1, replace=False)
    if cluster[u] == 0:
      rest[:3] = GOOD
    profiles[u] = np.concatenate([[V_STAR], rest])
  lengths = np.full(n_src, L_MAX, np.int32)
  tr = tree_lib.build_tree(p, 2, seed=0)
  weight = np.full(N_ITEMS, -1.0, np.float32)
  weight[list(GOOD)], weight[V_STAR] = 1.0, 0.0
  base = jnp.asarray(np.linspace(0.1, 4.0, N_ITEMS), jnp.float32)
  n_real = N_PRETEND
  bb = blackbox.BlackBox(
      inject=blackbox._inject,  # pylint: disable=protected-access
      topk=functools.partial(_toy_topk, weight=jnp.asarray(weight), base=base,
                             n_real=n_real),
      n_items=N_ITEMS, max_profile_len=L_MAX, user_capacity=n_real + 20)
  cap = 20 * L_MAX + L_MAX
  state = blackbox.BlackBoxState(
      inter_user=jnp.zeros((cap,), jnp.int32),
      inter_item=jnp.full((cap,), -1, jnp.int32),
      n_inter=jnp.zeros((), jnp.int32), n_users=jnp.asarray(n_real, jnp.int32),
      n_queries=jnp.zeros((), jnp.int32))
  data = attacker_data.make_attacker_data(
      tr, profiles, lengths, p, rng.normal(size=(N_ITEMS, N_CLUSTERS)),
      np.arange(N_PRETEND), np.full((N_PRETEND, 1), -1, np.int32))
  leaf_cluster = np.where(tr.leaf_user >= 0,
                          cluster[np.maximum(tr.leaf_user, 0)], -1)
  return tr, bb, state, data, leaf_cluster


@functools.partial(jax.jit, static_argnums=1)
def _policy_probs(params, pcfg, data):
  """Leaf probabilities and crafting log-probabilities at the first policy pick.

  The state of the first policy pick (t = 1) is ``[q_v* (+) GRU(0, p_u)]``
  after a random first user u, one row per first user u (leaf slot).

  Returns:
    (float[S, S] P(leaf | first user), float[S, 10] crafting log-probs).
  """
  q = data.q[V_STAR]
  masks = tree_lib.level_masks(data.leaf_valid, pcfg.branching, pcfg.depth)
  leaves = jnp.arange(pcfg.n_slots)

  def per_first(p_u):
    h = policy.gru_step(params, pcfg, jnp.zeros((pcfg.emb_dim,)), p_u)
    feat = jnp.concatenate([q, h])
    logp = jax.vmap(lambda a: policy.tree_log_prob(params, pcfg, feat, a,
                                                   masks))(leaves)
    return jnp.exp(logp)

  craft = jax.vmap(lambda p_u: policy.craft_log_probs(params, pcfg, p_u, q))
  return jax.vmap(per_first)(data.leaf_p), craft(data.leaf_p)


def _action_probs(params, pcfg, data, leaf_cluster):
  """P(cluster 0) of the first policy pick and P(best window) for it,
  averaged over the users of every cluster as the first pick."""
  probs, craft = (np.asarray(a) for a in _policy_probs(params, pcfg, data))
  valid = np.asarray(data.leaf_valid)
  p_cluster0 = probs[valid][:, leaf_cluster == 0].sum(-1).mean()
  p_level = np.exp(craft)[valid & (leaf_cluster == 0), BEST_LEVEL - 1].mean()
  return p_cluster0, p_level


pytestmark = pytest.mark.usefixtures("fast_compile")  # conftest: cheap XLA settings


@pytest.fixture(scope="module")
def trained_vs_untrained():
  tr, bb, state, data, leaf_cluster = _world()
  cfg = methods.AttackConfig(selector="tree", craft=0, budget=6, query_every=2,
                             episodes=60 * 16, batch_episodes=16, lr=3e-2)
  pcfg = policy.PolicyConfig(emb_dim=N_CLUSTERS, hidden=16,
                             branching=tr.branching, depth=tr.depth)
  fns = attack.make_method_fns(bb, cfg, pcfg)
  params0 = fns.init(jax.random.key(0))
  res = fns.train(params0, data, state, jnp.asarray([V_STAR], jnp.int32),
                  jax.random.key(1))
  out = {name: _action_probs(prm, pcfg, data, leaf_cluster)
         for name, prm in (("untrained", params0), ("trained", res.params))}
  return out, np.asarray(res.curve), leaf_cluster, tr


def test_toy_tree_puts_each_cluster_under_one_top_node(trained_vs_untrained):
  *_, leaf_cluster, tr = trained_vs_untrained
  top = leaf_cluster.reshape(tr.branching, -1)
  for row in top:
    assert len(set(row[row >= 0].tolist())) == 1


def test_training_raises_the_best_cluster_window_and_reward(
    trained_vs_untrained):
  out, curve, *_ = trained_vs_untrained
  (c_un, l_un), (c_tr, l_tr) = out["untrained"], out["trained"]
  assert c_un < 0.35 and l_un < 0.25, out
  assert c_tr > 0.6 and l_tr > 0.4, out
  # Reward per update (the episode's total increment of the pretend score):
  # the first updates play the untrained policy, the last the trained one.
  assert curve[:5].mean() < 0.1, curve
  assert curve[-10:].mean() > curve[:5].mean() + 0.3, curve
