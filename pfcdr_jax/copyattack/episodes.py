"""The CopyAttack episode: one attack played against the black box.

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
group); ``rollout`` plays it and returns its ``Trajectory``. Attack code sees
the target model only through ``blackbox.BlackBox``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import crafting
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import tree as tree_lib
from pfcdr_jax.copyattack.attacker_data import AttackerData
from pfcdr_jax.copyattack.methods import AttackConfig


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
    reward: float32[T] each query's reward, credited to its group's last
      injection (``credit="last"``) or shared by the group's injections
      ("spread"); 0 elsewhere.
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
  # v*'s position in the whole list says all a top-k list says about v*.
  pos, state = blackbox.item_position(bb, state, ep.data.pretend_users,
                                      ep.item)
  found = pos < k
  if cfg.reward == "hr":
    per_user = found.astype(jnp.float32)
  else:
    per_user = jnp.where(found, 1.0 - pos / k, 0.0)
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
  if cfg.credit == "spread":  # shared by the group's injections
    share = recs.active.astype(jnp.float32)
    rewards = reward * share / jnp.maximum(share.sum(), 1.0)
  else:  # credited to the group's last injection
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
