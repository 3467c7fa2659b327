"""CopyAttack episodes, REINFORCE training, and the Table 2 baselines.

One episode (Sections 4.2-4.5) for a target item v*:
  for t = 0..Delta-1 (Delta = budget of copied profiles):
    select a source user with the (masked) tree policy -- the first one at
      random (Section 4.3.3) --, never one already copied;
    craft its profile with the crafting policy (Section 4.4);
    inject it through the black-box interface;
    after every ``query_every`` injections, query the top-k lists of the
      attacker's pretend users and score v* on them (``pretend_score``): the
      paper's HR@k (Eq. (1), ``reward="hr"``) or, by default, the continuous
      ``reward="rank"`` (v*'s position in each list); the reward is the
      score's increment since the previous query (``increments``);
    stop when the promotion goal is met or no reachable user is left.

The episode is two nested ``lax.scan`` loops (query groups x injections in a
group). ``train_policy`` runs REINFORCE under one more ``lax.scan`` of
updates, each over ``batch_episodes`` vmapped episodes of target items drawn
from the items it is given: one item (the paper's per-item policy,
``train_and_attack``) or every target item of the run (one policy shared
across items, conditioned on q_v*; ``AttackConfig.shared``). Advantages are
returns minus a per-item, per-step moving-average baseline, normalised over
the batch; an entropy bonus keeps the policy exploring. Attack code sees the
target model only through ``blackbox.BlackBox``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import crafting
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import tree as tree_lib


@dataclasses.dataclass(frozen=True)
class AttackConfig:
  """One attack method (a row of Table 2) and its RL hyper-parameters.

  Attributes:
    selector: "tree" (CopyAttack), "flat" (PolicyNetwork) or "random".
    masking: restrict selection to profiles containing v* (Section 4.3.2).
    craft: 0 = learned crafting policy (Section 4.4); 1..10 = fixed window
      of 10%..100% (10 = copy the whole profile).
    budget: Delta, copied profiles per attack.
    query_every: injections between two queries.
    reward: "rank" (default): a pretend user scores ``1 - pos / k`` when v*
      is at 0-based position ``pos`` of its top-k list, 0 when absent (with
      the whole catalogue as the list, v*'s percentile); "hr": the paper's
      HR@k (Eq. (1)), 1 when v* is in the list. The pretend score is the mean
      over pretend users who have not interacted with v*.
    reward_k: k of the pretend users' top-k lists; 0 = the whole catalogue
      (needs ``reward="rank"``). For "hr", k = 200 of ML-100K's 1,163 items
      (~17%) matches the evaluated HR@20 of 101 sampled items; with k = 20
      the reward is 0 in almost every episode.
    increments: the reward of a query is the score's increase since the
      previous query (the first is preceded by one query of the untouched
      platform); off: the score itself (the paper's Eq. (1)).
    goal_hr: the promotion goal; an episode stops once the pretend score
      reaches it (default 1.0: every eligible pretend user has v* on top /
      in its top-k).
    gamma: discount factor.
    lr: Adam learning rate.
    episodes: training episodes (0 for the baselines): of the one shared
      policy in all (``shared``), else per target item.
    batch_episodes: episodes vmapped per REINFORCE update.
    shared: one policy trained over all target items of the run (its state
      holds q_v*); off: a fresh policy per item (the paper).
    entropy: weight of the entropy bonus (selection + crafting).
    normalize_adv: divide advantages by their batch standard deviation.
    hidden: hidden width of the policy MLPs.
    baseline_decay: EMA decay of the per-step reward baseline.
    final_greedy: the final attack takes the most probable actions instead
      of sampling from the learned policy. Off by default: when the reward
      stayed 0 in training (common for hard items) the policy is still its
      random init, and its argmax is one arbitrary crafting level / cluster
      for all 30 picks.
  """

  selector: str = "tree"
  masking: bool = True
  craft: int = 0
  budget: int = 30
  query_every: int = 3
  reward: str = "rank"
  reward_k: int = 0
  increments: bool = True
  goal_hr: float = 1.0
  gamma: float = 0.6
  lr: float = 1e-2
  episodes: int = 512
  batch_episodes: int = 16
  shared: bool = True
  entropy: float = 0.01
  normalize_adv: bool = True
  hidden: int = 16
  baseline_decay: float = 0.9
  final_greedy: bool = False

  def __post_init__(self):
    if self.reward not in ("rank", "hr"):
      raise ValueError(f"reward must be 'rank' or 'hr', got {self.reward!r}")
    if self.reward == "hr" and self.reward_k <= 0:
      raise ValueError("reward='hr' needs reward_k > 0 (HR@k)")

  @property
  def learns(self) -> bool:
    return self.selector != "random" or self.craft == 0


def table2_methods(base: AttackConfig) -> dict[str, AttackConfig]:
  """The attack rows of Table 2 (Section 5.1.4) built on ``base``."""
  r = functools.partial(dataclasses.replace, base)
  return {
      "RandomAttack": r(selector="random", masking=False, craft=10, episodes=0),
      "TargetAttack40": r(selector="random", masking=True, craft=4, episodes=0),
      "TargetAttack70": r(selector="random", masking=True, craft=7, episodes=0),
      "TargetAttack100": r(selector="random", masking=True, craft=10,
                           episodes=0),
      "PolicyNetwork": r(selector="flat", masking=True, craft=0),
      "CopyAttack-Masking": r(selector="tree", masking=False, craft=10),
      "CopyAttack-Length": r(selector="tree", masking=True, craft=10),
      "CopyAttack": r(selector="tree", masking=True, craft=0),
  }


@flax.struct.dataclass
class AttackerData:
  """What the attacker knows, indexed by leaf slot of the clustering tree.

  Attributes:
    leaf_profiles: int32[S, L_max] time-ordered source profiles (target item
      ids, -1 padded) of the user at each leaf slot.
    leaf_len: int32[S] their lengths (0 for empty slots).
    leaf_p: float32[S, e] MF user vectors p^B (0 for empty slots).
    leaf_valid: bool[S] slot holds a user.
    q: float32[N, e] MF item vectors q^B in target item ids.
    pretend_users: int32[P] ids of the attacker's pretend accounts.
    pretend_profiles: int32[P, Lp] their profiles (-1 padded).
  """

  leaf_profiles: jnp.ndarray
  leaf_len: jnp.ndarray
  leaf_p: jnp.ndarray
  leaf_valid: jnp.ndarray
  q: jnp.ndarray
  pretend_users: jnp.ndarray
  pretend_profiles: jnp.ndarray


def make_attacker_data(tree: tree_lib.ClusterTree, profiles: np.ndarray,
                       lengths: np.ndarray, p: np.ndarray, q: np.ndarray,
                       pretend_users: np.ndarray,
                       pretend_profiles: np.ndarray) -> AttackerData:
  """Arranges the source platform by leaf slot.

  Args:
    tree: clustering tree over the source users.
    profiles: int32[U_B, L_max].
    lengths: int32[U_B].
    p: float[U_B, e].
    q: float[N, e].
    pretend_users: int32[P].
    pretend_profiles: int32[P, Lp].

  Returns:
    AttackerData.
  """
  lu = tree.leaf_user
  valid = lu >= 0
  safe = np.maximum(lu, 0)
  return AttackerData(
      leaf_profiles=jnp.asarray(np.where(valid[:, None], profiles[safe], -1),
                                jnp.int32),
      leaf_len=jnp.asarray(np.where(valid, lengths[safe], 0), jnp.int32),
      leaf_p=jnp.asarray(np.where(valid[:, None], p[safe], 0.0), jnp.float32),
      leaf_valid=jnp.asarray(valid),
      q=jnp.asarray(q, jnp.float32),
      pretend_users=jnp.asarray(pretend_users, jnp.int32),
      pretend_profiles=jnp.asarray(pretend_profiles, jnp.int32))


def make_pretend_profiles(profiles: np.ndarray, lengths: np.ndarray,
                          n_pretend: int, max_len: int, min_len: int,
                          seed: int) -> np.ndarray:
  """Profiles of the attacker's pretend accounts (Section 4.2, U*^A).

  The attacker creates its accounts before any attack with realistic
  histories: each is a random contiguous time window of ``max_len`` items
  (or the whole profile if shorter) of a distinct random source user with at
  least ``min_len`` items. They are the same for all target items.

  Args:
    profiles: int32[U_B, L_max] source profiles.
    lengths: int32[U_B].
    n_pretend: P.
    max_len: Lp.
    min_len: minimum source profile length to copy from.
    seed: numpy seed.

  Returns:
    int32[P, max_len] (-1 padded).
  """
  rng = np.random.default_rng(seed)
  pool = np.flatnonzero(lengths >= min_len)
  users = rng.choice(pool, size=n_pretend, replace=False)
  out = np.full((n_pretend, max_len), -1, np.int32)
  for r, u in enumerate(users):
    n = int(lengths[u])
    keep = min(n, max_len)
    start = int(rng.integers(0, n - keep + 1))
    out[r, :keep] = profiles[u, start:start + keep]
  return out


def register_pretend_users(bb: blackbox.BlackBox, state, profiles: np.ndarray):
  """Creates the pretend accounts on the platform through ``inject``.

  Args:
    bb: the black box.
    state: its state before any attack.
    profiles: int32[P, Lp] from ``make_pretend_profiles``.

  Returns:
    (state with the accounts, their user ids int32[P]).
  """
  padded = np.full((profiles.shape[0], bb.max_profile_len), -1, np.int32)
  padded[:, :profiles.shape[1]] = profiles
  lengths = (profiles >= 0).sum(-1).astype(np.int32)

  def body(st, row):
    st, uid = bb.inject(st, row[0], row[1])
    return st, uid

  state, uids = jax.jit(lambda s, a, b: jax.lax.scan(body, s, (a, b)))(
      state, jnp.asarray(padded), jnp.asarray(lengths))
  return state, uids


@flax.struct.dataclass
class Trajectory:
  """One episode, per injection step (T = padded budget).

  Attributes:
    leaf: int32[T] leaf slot chosen.
    avail: bool[T, S] leaves that could be chosen at that step.
    level: int32[T] crafting level (1..10).
    active: bool[T] the step injected a profile.
    policy_sel: bool[T] the selection came from the policy (not the random
      first pick or a random baseline).
    n_items: int32[T] items in the injected profile.
    reward: float32[T] the reward at query steps (credited to the group's
      last injection), else 0.
    n_queries: int32[] queries made in the episode.
    final_score: float32[] the pretend score at the episode's last query.
  """

  leaf: jnp.ndarray
  avail: jnp.ndarray
  level: jnp.ndarray
  active: jnp.ndarray
  policy_sel: jnp.ndarray
  n_items: jnp.ndarray
  reward: jnp.ndarray
  n_queries: jnp.ndarray
  final_score: jnp.ndarray


def _select(state_feat, avail, masks, t, key, params, cfg, pcfg, greedy):
  """Leaf choice of one step: random first pick, else the policy.

  Args:
    state_feat: float[2e] state ``[q_v* (+) x_v*]``.
    avail: bool[S] selectable leaves.
    masks: ``tree.level_masks(avail)``.
    t: int32[] step index (t = 0 is the random seed pick, Section 4.3.3).
    key: PRNG key.
    params: policy params.
    cfg: attack config.
    pcfg: policy config.
    greedy: argmax instead of sampling.

  Returns:
    (leaf int32[], whether the policy chose it bool[]).
  """
  k_rand, k_pol = jax.random.split(key)
  uniform = jnp.where(avail, 0.0, -jnp.inf)
  leaf_rand = jax.random.categorical(k_rand, uniform).astype(jnp.int32)
  if cfg.selector == "random":
    return leaf_rand, jnp.zeros((), bool)
  if cfg.selector == "tree":
    leaf_pol = policy.tree_sample(params, pcfg, state_feat, masks, k_pol,
                                  greedy)
  else:
    logp = policy.flat_log_probs(params, pcfg, state_feat, avail)
    leaf_pol = (jnp.argmax(logp) if greedy
                else jax.random.categorical(k_pol, logp)).astype(jnp.int32)
  use_pol = t > 0
  return jnp.where(use_pol, leaf_pol, leaf_rand), use_pol


class _Episode(NamedTuple):
  """What every step of one episode reads; fixed for the episode."""

  params: dict  # policy params
  data: AttackerData
  item: jnp.ndarray  # int32[] target item v*
  q: jnp.ndarray  # float32[e] q^B of v*
  base: jnp.ndarray  # bool[S] selectable leaves before the first pick
  eligible: jnp.ndarray  # bool[P] pretend users without v* in their profile
  n_eligible: jnp.ndarray  # int32[] max(#eligible, 1)
  key: jax.Array  # the episode's PRNG key; step t uses fold_in(key, t)


class _StepCarry(NamedTuple):
  """Scan carry of the injection steps."""

  state: blackbox.BlackBoxState  # the platform so far
  h: jnp.ndarray  # float32[e] GRU summary x_v* of the users copied so far
  chosen: jnp.ndarray  # bool[S] leaves already copied
  active: jnp.ndarray  # bool[] the episode is still running
  score: jnp.ndarray  # float32[] pretend score at the last query


class _StepRecord(NamedTuple):
  """One injection step, as stored in ``Trajectory`` (see its fields)."""

  leaf: jnp.ndarray  # int32[]
  avail: jnp.ndarray  # bool[S]
  level: jnp.ndarray  # int32[]
  active: jnp.ndarray  # bool[]
  policy_sel: jnp.ndarray  # bool[]
  n_items: jnp.ndarray  # int32[]


def _episode(params: dict, data: AttackerData, item: jnp.ndarray,
             key: jax.Array, cfg: AttackConfig) -> _Episode:
  base = data.leaf_valid
  if cfg.masking:
    base = base & (data.leaf_profiles == item).any(-1)
  eligible = ~(data.pretend_profiles == item).any(-1)
  return _Episode(params=params, data=data, item=item, q=data.q[item],
                  base=base, eligible=eligible,
                  n_eligible=jnp.maximum(eligible.sum(), 1), key=key)


def _craft_level(params, p_leaf, q, key, *, cfg: AttackConfig,
                 pcfg: policy.PolicyConfig, greedy: bool) -> jnp.ndarray:
  """Crafting level 1..10: the crafting policy's or the method's fixed one."""
  if cfg.craft != 0:
    return jnp.asarray(cfg.craft, jnp.int32)
  logp_c = policy.craft_log_probs(params, pcfg, p_leaf, q)
  idx = jnp.argmax(logp_c) if greedy else jax.random.categorical(key, logp_c)
  return idx.astype(jnp.int32) + 1


def _inject_step(carry: _StepCarry, t: jnp.ndarray, *, ep: _Episode,
                 bb: blackbox.BlackBox, cfg: AttackConfig,
                 pcfg: policy.PolicyConfig, greedy: bool):
  """Selects, crafts and injects one profile (a no-op once inactive)."""
  k_sel, k_craft = jax.random.split(jax.random.fold_in(ep.key, t))
  avail = ep.base & ~carry.chosen
  active = carry.active & avail.any() & (t < cfg.budget)
  masks = tree_lib.level_masks(avail, pcfg.branching, pcfg.depth)
  feat = jnp.concatenate([ep.q, carry.h])
  leaf, use_pol = _select(feat, avail, masks, t, k_sel, ep.params, cfg, pcfg,
                          greedy)
  p_leaf = ep.data.leaf_p[leaf]
  level = _craft_level(ep.params, p_leaf, ep.q, k_craft, cfg=cfg, pcfg=pcfg,
                       greedy=greedy)
  items, n = crafting.clip_profile(ep.data.leaf_profiles[leaf],
                                   ep.data.leaf_len[leaf], ep.item, level)
  injected, _ = bb.inject(carry.state, items, n)
  state = jax.tree.map(lambda a, b: jnp.where(active, a, b), injected,
                       carry.state)
  h = jnp.where(active, policy.gru_step(ep.params, pcfg, carry.h, p_leaf),
                carry.h)
  chosen = carry.chosen.at[leaf].set(carry.chosen[leaf] | active)
  rec = _StepRecord(leaf=leaf, avail=avail, level=level, active=active,
                    policy_sel=use_pol & active,
                    n_items=jnp.where(active, n, 0))
  return carry._replace(state=state, h=h, chosen=chosen, active=active), rec


def pretend_score(bb: blackbox.BlackBox, state, ep: _Episode,
                  cfg: AttackConfig):
  """One query of the pretend users' top-k lists and v*'s score on them.

  Returns:
    (score float32[] in [0, 1] -- mean over eligible pretend users of HR@k
    (``reward="hr"``) or ``1 - pos / k`` (``"rank"``) --, state after the
    query).
  """
  k = cfg.reward_k or bb.n_items
  top, state = bb.topk(state, ep.data.pretend_users, k)
  hit = top == ep.item
  found = hit.any(-1)
  if cfg.reward == "hr":
    per_user = found.astype(jnp.float32)
  else:
    per_user = jnp.where(found, 1.0 - jnp.argmax(hit, -1) / k, 0.0)
  score = jnp.where(ep.eligible, per_user, 0.0).sum() / ep.n_eligible
  return score.astype(jnp.float32), state


def _group_step(carry: _StepCarry, g: jnp.ndarray, *, ep: _Episode,
                bb: blackbox.BlackBox, cfg: AttackConfig,
                pcfg: policy.PolicyConfig, greedy: bool):
  """``query_every`` injections, then one query of the pretend users."""
  qe = cfg.query_every
  inject = functools.partial(_inject_step, ep=ep, bb=bb, cfg=cfg, pcfg=pcfg,
                             greedy=greedy)
  after, recs = jax.lax.scan(inject, carry, g * qe + jnp.arange(qe))
  any_injected = recs.active.any()
  score, queried = pretend_score(bb, after.state, ep, cfg)
  state = jax.tree.map(lambda a, b: jnp.where(any_injected, a, b), queried,
                       after.state)
  gain = score - carry.score if cfg.increments else score
  reward = jnp.where(any_injected, gain, 0.0)
  # The reward is credited to the group's last injection.
  rewards = jnp.zeros((qe,)).at[-1].set(reward)
  done = any_injected & (score >= cfg.goal_hr)
  carry = after._replace(state=state, active=after.active & ~done,
                         score=jnp.where(any_injected, score, carry.score))
  return carry, (recs, rewards)


def _merge_groups(x: jnp.ndarray) -> jnp.ndarray:
  """[G, qe, ...] -> [G * qe, ...]."""
  return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def rollout(params: dict, data: AttackerData, bb_state, item: jnp.ndarray,
            key: jax.Array, *, bb: blackbox.BlackBox, cfg: AttackConfig,
            pcfg: policy.PolicyConfig, greedy: bool = False):
  """Plays one attack episode against the black box (Sections 4.2-4.5).

  Args:
    params: policy params.
    data: attacker data.
    bb_state: black-box state before the attack.
    item: int32[] target item v*.
    key: PRNG key.
    bb: black-box interface.
    cfg: attack config.
    pcfg: policy config.
    greedy: take most probable actions (after the random first pick).

  Returns:
    (black-box state after the attack, Trajectory).
  """
  ep = _episode(params, data, item, key, cfg)
  n_groups = -(-cfg.budget // cfg.query_every)
  group = functools.partial(_group_step, ep=ep, bb=bb, cfg=cfg, pcfg=pcfg,
                            greedy=greedy)
  state, score0 = bb_state, jnp.zeros((), jnp.float32)
  if cfg.increments:
    score0, state = pretend_score(bb, bb_state, ep, cfg)
  init = _StepCarry(state=state, h=jnp.zeros((pcfg.emb_dim,)),
                    chosen=jnp.zeros(ep.base.shape, bool),
                    active=jnp.ones((), bool), score=score0)
  final, (recs, rewards) = jax.lax.scan(group, init, jnp.arange(n_groups))
  recs, rewards = jax.tree.map(_merge_groups, (recs, rewards))
  traj = Trajectory(leaf=recs.leaf, avail=recs.avail, level=recs.level,
                    active=recs.active, policy_sel=recs.policy_sel,
                    n_items=recs.n_items, reward=rewards,
                    n_queries=final.state.n_queries - bb_state.n_queries,
                    final_score=final.score)
  return final.state, traj


def discounted_returns(rewards: jnp.ndarray, gamma: float) -> jnp.ndarray:
  """G_t = r_t + gamma * G_{t+1}. float[T] -> float[T]."""
  def body(g, r):
    g = r + gamma * g
    return g, g
  _, out = jax.lax.scan(body, jnp.zeros(()), rewards, reverse=True)
  return out


def trajectory_log_probs(params: dict, data: AttackerData, item: jnp.ndarray,
                         traj: Trajectory, *, cfg: AttackConfig,
                         pcfg: policy.PolicyConfig):
  """log p(a_t | s_t) of every step, selection plus crafting (Secs. 4.3-4.4).

  Args:
    params: policy params.
    data: attacker data.
    item: target item.
    traj: the episode.
    cfg: attack config.
    pcfg: policy config.

  Returns:
    (log-probabilities float[T], entropies float[T] of the step's policy
    distributions: the tree nodes on the path / the flat softmax, plus the
    crafting softmax); 0 where the step was inactive or the action not from
    a policy.
  """
  q = data.q[item]
  p_seq = data.leaf_p[traj.leaf]

  def gru_body(h, x):
    p_u, act = x
    h_next = jnp.where(act, policy.gru_step(params, pcfg, h, p_u), h)
    return h_next, h

  _, hs = jax.lax.scan(gru_body, jnp.zeros((pcfg.emb_dim,)),
                       (p_seq, traj.active))
  feats = jnp.concatenate(
      [jnp.broadcast_to(q, hs.shape), hs], axis=-1)
  # The chosen leaf always counts as available so inactive rows stay finite.
  onehot = jax.nn.one_hot(traj.leaf, traj.avail.shape[-1], dtype=bool)
  avail = traj.avail | onehot
  total = jnp.zeros(traj.leaf.shape)
  ent = jnp.zeros(traj.leaf.shape)
  if cfg.selector == "tree":
    def one(f, leaf, av):
      masks = tree_lib.level_masks(av, pcfg.branching, pcfg.depth)
      return (policy.tree_log_prob(params, pcfg, f, leaf, masks),
              policy.tree_path_entropy(params, pcfg, f, leaf, masks))
    sel, sel_ent = jax.vmap(one)(feats, traj.leaf, avail)
    total = total + jnp.where(traj.policy_sel, sel, 0.0)
    ent = ent + jnp.where(traj.policy_sel, sel_ent, 0.0)
  elif cfg.selector == "flat":
    lp = jax.vmap(functools.partial(policy.flat_log_probs, params, pcfg))(
        feats, avail)
    sel = jnp.take_along_axis(lp, traj.leaf[:, None], -1)[:, 0]
    total = total + jnp.where(traj.policy_sel, sel, 0.0)
    ent = ent + jnp.where(traj.policy_sel, policy.masked_entropy(lp), 0.0)
  if cfg.craft == 0:
    lc = jax.vmap(functools.partial(policy.craft_log_probs, params, pcfg),
                  in_axes=(0, None))(p_seq, q)
    craft = jnp.take_along_axis(lc, (traj.level - 1)[:, None], -1)[:, 0]
    total = total + jnp.where(traj.active, craft, 0.0)
    ent = ent + jnp.where(traj.active, policy.masked_entropy(lc), 0.0)
  return total, ent


def reinforce_loss(params, data, items: jnp.ndarray, trajs: Trajectory,
                   baseline: jnp.ndarray, *, cfg, pcfg):
  """REINFORCE surrogate with baseline, normalisation and entropy bonus.

  ``-mean_b sum_t [sg(A_bt) log p(a_bt|s_bt) + entropy * H_bt]`` with
  ``A = G - b`` (divided by its standard deviation over the batch's active
  steps when ``cfg.normalize_adv``).

  Args:
    params: policy params.
    data: attacker data.
    items: int32[B] target item of each episode.
    trajs: a batch of B episodes (leading axis B).
    baseline: float[B, T] per-step baseline of each episode's item.
    cfg: attack config.
    pcfg: policy config.

  Returns:
    (loss float[], returns float[B, T]).
  """
  returns = jax.vmap(functools.partial(discounted_returns,
                                       gamma=cfg.gamma))(trajs.reward)
  adv = jnp.where(trajs.active, returns - baseline, 0.0)
  if cfg.normalize_adv:
    n = jnp.maximum(trajs.active.sum(), 1)
    std = jnp.sqrt((adv**2).sum() / n)
    adv = adv / (std + 1e-8)
  adv = jax.lax.stop_gradient(adv)
  logp, ent = jax.vmap(
      lambda it, tr: trajectory_log_probs(params, data, it, tr, cfg=cfg,
                                          pcfg=pcfg))(items, trajs)
  surrogate = (adv * logp).sum(-1) + cfg.entropy * ent.sum(-1)
  return -surrogate.mean(), returns


class TrainResult(flax.struct.PyTreeNode):
  """Outcome of ``train_policy``.

  Attributes:
    params: the learned policy params.
    curve: float32[n_updates] mean undiscounted return (sum of rewards) of
      each update's episodes.
    score_curve: float32[n_updates] mean final pretend score of them.
    queries: int32[] queries the training episodes made.
  """

  params: dict
  curve: jnp.ndarray
  score_curve: jnp.ndarray
  queries: jnp.ndarray


class AttackResult(flax.struct.PyTreeNode):
  """Outcome of ``train_and_attack``.

  Attributes:
    state: black-box state after the final attack.
    traj: the final attack's trajectory.
    curve: float[n_updates] mean return of the training episodes.
    train_queries: int32[] queries spent in training.
  """

  state: object
  traj: Trajectory
  curve: jnp.ndarray
  train_queries: jnp.ndarray


class _TrainCarry(NamedTuple):
  """Scan carry of the REINFORCE updates."""

  params: dict  # policy params
  opt_state: optax.OptState  # Adam state
  baseline: jnp.ndarray  # float32[M, T] moving-average return per item, step


def _update_baseline(baseline, idx, returns, decay):
  """EMA of the returns of each item present in the batch. [M, T]."""
  m = baseline.shape[0]
  total = jax.ops.segment_sum(returns, idx, num_segments=m)
  count = jax.ops.segment_sum(jnp.ones_like(idx, jnp.float32), idx,
                              num_segments=m)[:, None]
  mean = total / jnp.maximum(count, 1.0)
  return jnp.where(count > 0, decay * baseline + (1 - decay) * mean, baseline)


def n_updates(cfg: AttackConfig) -> int:
  """REINFORCE updates a method makes (0 for the baselines)."""
  return cfg.episodes // cfg.batch_episodes if cfg.learns else 0


def train_policy(params, data: AttackerData, bb_state, items: jnp.ndarray,
                 key: jax.Array, *, bb: blackbox.BlackBox, cfg: AttackConfig,
                 pcfg: policy.PolicyConfig) -> TrainResult:
  """REINFORCE over episodes of the given target items (Sections 4.3-4.5).

  Each of ``n_updates(cfg)`` updates plays ``batch_episodes`` vmapped
  episodes, each on an item drawn uniformly from ``items`` and starting from
  ``bb_state`` (the attacker replays its attack on a copy of the platform;
  the paper does not say otherwise).

  Args:
    params: initial policy params.
    data: attacker data.
    bb_state: black-box state before any attack.
    items: int32[M] target items (M = 1: the paper's per-item policy).
    key: PRNG key.
    bb: the black box.
    cfg: attack config (static).
    pcfg: policy config (static).

  Returns:
    TrainResult.
  """
  opt = optax.adam(cfg.lr)
  grad_fn = jax.grad(functools.partial(reinforce_loss, cfg=cfg, pcfg=pcfg),
                     has_aux=True)
  play = jax.vmap(functools.partial(rollout, bb=bb, cfg=cfg, pcfg=pcfg),
                  in_axes=(None, None, None, 0, 0))
  t_pad = -(-cfg.budget // cfg.query_every) * cfg.query_every

  def update(carry: _TrainCarry, u):
    k_items, k_play = jax.random.split(jax.random.fold_in(key, u))
    idx = jax.random.randint(k_items, (cfg.batch_episodes,), 0,
                             items.shape[0])
    keys = jax.random.split(k_play, cfg.batch_episodes)
    _, trajs = play(carry.params, data, bb_state, items[idx], keys)
    grads, returns = grad_fn(carry.params, data, items[idx], trajs,
                             carry.baseline[idx])
    upd, opt_state = opt.update(grads, carry.opt_state, carry.params)
    new = _TrainCarry(
        params=optax.apply_updates(carry.params, upd), opt_state=opt_state,
        baseline=_update_baseline(carry.baseline, idx, returns,
                                  cfg.baseline_decay))
    return new, (trajs.reward.sum(-1).mean(), trajs.final_score.mean(),
                 trajs.n_queries.sum())

  init = _TrainCarry(params=params, opt_state=opt.init(params),
                     baseline=jnp.zeros((items.shape[0], t_pad)))
  final, (curve, score, queries) = jax.lax.scan(
      update, init, jnp.arange(n_updates(cfg)))
  return TrainResult(params=final.params, curve=curve, score_curve=score,
                     queries=queries.sum())


def split_key(key: jax.Array):
  """(init, train, final-attack) keys of one method's attack."""
  return jax.random.split(key, 3)


def train_and_attack(data: AttackerData, bb_state, item: jnp.ndarray,
                     key: jax.Array, *, bb: blackbox.BlackBox,
                     cfg: AttackConfig,
                     pcfg: policy.PolicyConfig) -> AttackResult:
  """Learns a policy for one target item, then attacks (the paper's way).

  The final attack also starts from ``bb_state``; its state is what is
  evaluated. A baseline (``cfg.learns`` False) only attacks.

  Args:
    data: attacker data.
    bb_state: black-box state before any attack (with pretend users).
    item: int32[] target item.
    key: PRNG key.
    bb: the black-box interface.
    cfg: attack config (static).
    pcfg: policy config (static).

  Returns:
    AttackResult.
  """
  k_init, k_train, k_final = split_key(key)
  params = policy.init_policy(k_init, pcfg)
  curve = jnp.zeros((0,))
  train_queries = jnp.zeros((), jnp.int32)
  if n_updates(cfg) > 0:
    res = train_policy(params, data, bb_state, item[None], k_train, bb=bb,
                       cfg=cfg, pcfg=pcfg)
    params, curve, train_queries = res.params, res.curve, res.queries
  state, traj = rollout(params, data, bb_state, item, k_final, bb=bb,
                        cfg=cfg, pcfg=pcfg,
                        greedy=cfg.final_greedy and cfg.learns)
  return AttackResult(state=state, traj=traj, curve=curve,
                      train_queries=train_queries)


def make_attack_fn(bb: blackbox.BlackBox, cfg: AttackConfig,
                   pcfg: policy.PolicyConfig):
  """Jitted ``(data, bb_state, item, key) -> AttackResult`` for one method."""
  return jax.jit(functools.partial(train_and_attack, bb=bb, cfg=cfg,
                                   pcfg=pcfg))


class MethodFns(NamedTuple):
  """Jitted pieces of one method, for the shared-policy pipeline.

  init: ``key -> params``; train: ``(params, data, bb_state, items, key) ->
  TrainResult``; attack: ``(params, data, bb_state, item, key) -> (state,
  Trajectory)`` (greedy per ``cfg.final_greedy`` for learning methods).
  """

  init: object
  train: object
  attack: object


def zero_policy(key: jax.Array, pcfg: policy.PolicyConfig) -> dict:
  """Zeros shaped like ``policy.init_policy``'s params (``key`` unused).

  A baseline (``AttackConfig.learns`` False) never reads its policy -- random
  picks, a fixed window; the GRU state it carries is discarded -- so it gets
  these instead of an initialiser that would be compiled for nothing.
  """
  shapes = jax.eval_shape(functools.partial(policy.init_policy, cfg=pcfg),
                          key)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def make_method_fns(bb: blackbox.BlackBox, cfg: AttackConfig,
                    pcfg: policy.PolicyConfig) -> MethodFns:
  """The jitted init / train / attack functions of one method (a baseline's
  init is ``zero_policy``)."""
  init = (jax.jit(functools.partial(policy.init_policy, cfg=pcfg))
          if cfg.learns else functools.partial(zero_policy, pcfg=pcfg))
  return MethodFns(
      init=init,
      train=jax.jit(functools.partial(train_policy, bb=bb, cfg=cfg,
                                      pcfg=pcfg)),
      attack=jax.jit(functools.partial(
          rollout, bb=bb, cfg=cfg, pcfg=pcfg,
          greedy=cfg.final_greedy and cfg.learns)))
