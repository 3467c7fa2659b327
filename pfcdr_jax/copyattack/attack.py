"""CopyAttack episodes, REINFORCE training, and the Table 2 baselines.

One episode (Sections 4.2-4.5) for a target item v*:
  for t = 0..Delta-1 (Delta = budget of copied profiles):
    select a source user with the (masked) tree policy -- the first one at
      random (Section 4.3.3) --, never one already copied;
    craft its profile with the crafting policy (Section 4.4);
    inject it through the black-box interface;
    after every ``query_every`` injections, query the top-k lists of the
      attacker's pretend users; the reward is HR@k of v* over them (Eq. (1));
    stop when the promotion goal is met or no reachable user is left.

The episode is two nested ``lax.scan`` loops (query groups x injections in a
group); ``train_and_attack`` runs ``episodes`` episodes (``batch_episodes`` of
them vmapped per update) under one more ``lax.scan`` of REINFORCE updates with
a per-step moving-average baseline, then one final attack with the learned
policy. Attack code sees the target model only through ``blackbox.BlackBox``.
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
    reward_k: k of the pretend users' top-k lists in the reward (Eq. (1)).
      The lists are over the whole catalogue while evaluation ranks v* among
      101 sampled items; top-20 of 101 is ~20% of the catalogue, so the
      default k = 200 (~17% of ML-100K's 1,163 items) matches the evaluated
      HR@20. With k = 20 the reward is 0 in almost every episode.
    goal_hr: the promotion goal; an episode stops once the reward reaches it
      (default 1.0: every eligible pretend user has v* in its top-k).
    gamma: discount factor.
    lr: Adam learning rate.
    episodes: training episodes per target item (0 for the baselines).
    batch_episodes: episodes vmapped per REINFORCE update.
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
  reward_k: int = 200
  goal_hr: float = 1.0
  gamma: float = 0.6
  lr: float = 1e-3
  episodes: int = 256
  batch_episodes: int = 8
  hidden: int = 16
  baseline_decay: float = 0.9
  final_greedy: bool = False

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
    reward: float32[T] HR@k over pretend users at query steps, else 0.
    n_queries: int32[] queries made in the episode.
  """

  leaf: jnp.ndarray
  avail: jnp.ndarray
  level: jnp.ndarray
  active: jnp.ndarray
  policy_sel: jnp.ndarray
  n_items: jnp.ndarray
  reward: jnp.ndarray
  n_queries: jnp.ndarray


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
  return _StepCarry(state=state, h=h, chosen=chosen, active=active), rec


def _group_step(carry: _StepCarry, g: jnp.ndarray, *, ep: _Episode,
                bb: blackbox.BlackBox, cfg: AttackConfig,
                pcfg: policy.PolicyConfig, greedy: bool):
  """``query_every`` injections, then one query of the pretend users (Eq. (1))."""
  qe = cfg.query_every
  inject = functools.partial(_inject_step, ep=ep, bb=bb, cfg=cfg, pcfg=pcfg,
                             greedy=greedy)
  after, recs = jax.lax.scan(inject, carry, g * qe + jnp.arange(qe))
  any_injected = recs.active.any()
  top, queried = bb.topk(after.state, ep.data.pretend_users, cfg.reward_k)
  hr = ((top == ep.item).any(-1) & ep.eligible).sum() / ep.n_eligible
  state = jax.tree.map(lambda a, b: jnp.where(any_injected, a, b), queried,
                       after.state)
  reward = jnp.where(any_injected, hr, 0.0)
  # The reward is credited to the group's last injection.
  rewards = jnp.zeros((qe,)).at[-1].set(reward)
  done = any_injected & (hr >= cfg.goal_hr)
  carry = after._replace(state=state, active=after.active & ~done)
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
  init = _StepCarry(state=bb_state, h=jnp.zeros((pcfg.emb_dim,)),
                    chosen=jnp.zeros(ep.base.shape, bool),
                    active=jnp.ones((), bool))
  final, (recs, rewards) = jax.lax.scan(group, init, jnp.arange(n_groups))
  recs, rewards = jax.tree.map(_merge_groups, (recs, rewards))
  traj = Trajectory(leaf=recs.leaf, avail=recs.avail, level=recs.level,
                    active=recs.active, policy_sel=recs.policy_sel,
                    n_items=recs.n_items, reward=rewards,
                    n_queries=final.state.n_queries - bb_state.n_queries)
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
                         pcfg: policy.PolicyConfig) -> jnp.ndarray:
  """log p(a_t | s_t) of every step, selection plus crafting (Secs. 4.3-4.4).

  Args:
    params: policy params.
    data: attacker data.
    item: target item.
    traj: the episode.
    cfg: attack config.
    pcfg: policy config.

  Returns:
    float[T]; 0 where the step was inactive or the action not from a policy.
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
  if cfg.selector == "tree":
    def one(f, leaf, av):
      return policy.tree_log_prob(params, pcfg, f, leaf,
                                  tree_lib.level_masks(av, pcfg.branching,
                                                       pcfg.depth))
    sel = jax.vmap(one)(feats, traj.leaf, avail)
    total = total + jnp.where(traj.policy_sel, sel, 0.0)
  elif cfg.selector == "flat":
    lp = jax.vmap(functools.partial(policy.flat_log_probs, params, pcfg))(
        feats, avail)
    sel = jnp.take_along_axis(lp, traj.leaf[:, None], -1)[:, 0]
    total = total + jnp.where(traj.policy_sel, sel, 0.0)
  if cfg.craft == 0:
    lc = jax.vmap(functools.partial(policy.craft_log_probs, params, pcfg),
                  in_axes=(0, None))(p_seq, q)
    craft = jnp.take_along_axis(lc, (traj.level - 1)[:, None], -1)[:, 0]
    total = total + jnp.where(traj.active, craft, 0.0)
  return total


def reinforce_loss(params, data, item, trajs: Trajectory,
                   baseline: jnp.ndarray, *, cfg, pcfg):
  """REINFORCE surrogate ``-mean_b sum_t sg(G_t - b_t) log p(a_t|s_t)``.

  Args:
    params: policy params.
    data: attacker data.
    item: target item.
    trajs: a batch of B episodes (leading axis B).
    baseline: float[T] per-step baseline.
    cfg: attack config.
    pcfg: policy config.

  Returns:
    (loss float[], returns float[B, T]).
  """
  returns = jax.vmap(functools.partial(discounted_returns,
                                       gamma=cfg.gamma))(trajs.reward)
  adv = jax.lax.stop_gradient(returns - baseline[None, :])
  logp = jax.vmap(functools.partial(trajectory_log_probs, params, data, item,
                                    cfg=cfg, pcfg=pcfg))(trajs)
  adv = jnp.where(trajs.active, adv, 0.0)
  return -(adv * logp).sum(-1).mean(), returns


class AttackResult(flax.struct.PyTreeNode):
  """Outcome of ``train_and_attack``.

  Attributes:
    state: black-box state after the final attack.
    traj: the final attack's trajectory.
    curve: float[n_updates] mean final reward of the training episodes.
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
  baseline: jnp.ndarray  # float32[T] moving-average return per step


def _train_policy(params, data, bb_state, item, key, n_updates: int,
                  t_pad: int, *, play, cfg: AttackConfig,
                  pcfg: policy.PolicyConfig):
  """``n_updates`` REINFORCE updates of ``batch_episodes`` vmapped episodes.

  Returns:
    (learned params, curve float32[n_updates] mean final reward of each
    update's episodes, train_queries int32[] queries they made).
  """
  opt = optax.adam(cfg.lr)
  grad_fn = jax.grad(functools.partial(reinforce_loss, cfg=cfg, pcfg=pcfg),
                     has_aux=True)

  def update(carry: _TrainCarry, u):
    keys = jax.random.split(jax.random.fold_in(key, u), cfg.batch_episodes)
    _, trajs = jax.vmap(play, in_axes=(None, None, None, None, 0))(
        carry.params, data, bb_state, item, keys)
    grads, returns = grad_fn(carry.params, data, item, trajs, carry.baseline)
    upd, opt_state = opt.update(grads, carry.opt_state, carry.params)
    baseline = (cfg.baseline_decay * carry.baseline
                + (1 - cfg.baseline_decay) * returns.mean(0))
    new = _TrainCarry(params=optax.apply_updates(carry.params, upd),
                      opt_state=opt_state, baseline=baseline)
    return new, (trajs.reward.max(-1).mean(), trajs.n_queries.sum())

  init = _TrainCarry(params=params, opt_state=opt.init(params),
                     baseline=jnp.zeros((t_pad,)))
  final, (curve, queries) = jax.lax.scan(update, init, jnp.arange(n_updates))
  return final.params, curve, queries.sum()


def train_and_attack(data: AttackerData, bb_state, item: jnp.ndarray,
                     key: jax.Array, *, bb: blackbox.BlackBox,
                     cfg: AttackConfig,
                     pcfg: policy.PolicyConfig) -> AttackResult:
  """Learns the policy for one target item, then attacks (Sections 4.3-4.5).

  Training episodes each start from ``bb_state`` (the attacker replays its
  attack on a copy of the platform; the paper does not say otherwise). The
  final attack also starts from ``bb_state``; its state is what is evaluated.

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
  k_init, k_train, k_final = jax.random.split(key, 3)
  params = policy.init_policy(k_init, pcfg)
  n_updates = cfg.episodes // cfg.batch_episodes if cfg.learns else 0
  t_pad = -(-cfg.budget // cfg.query_every) * cfg.query_every
  play = functools.partial(rollout, bb=bb, cfg=cfg, pcfg=pcfg)

  if n_updates > 0:
    params, curve, train_queries = _train_policy(
        params, data, bb_state, item, k_train, n_updates, t_pad, play=play,
        cfg=cfg, pcfg=pcfg)
  else:
    curve = jnp.zeros((0,))
    train_queries = jnp.zeros((), jnp.int32)
  state, traj = play(params, data, bb_state, item, k_final,
                     greedy=cfg.final_greedy and cfg.learns)
  return AttackResult(state=state, traj=traj, curve=curve,
                      train_queries=train_queries)


def make_attack_fn(bb: blackbox.BlackBox, cfg: AttackConfig,
                   pcfg: policy.PolicyConfig):
  """Jitted ``(data, bb_state, item, key) -> AttackResult`` for one method."""
  return jax.jit(functools.partial(train_and_attack, bb=bb, cfg=cfg,
                                   pcfg=pcfg))
