"""The REINFORCE estimator of the attack policies (Sections 4.3-4.5).

``trajectory_log_probs`` gives log p(a_t | s_t) (selection plus crafting) and
the entropies of every step of an episode; ``reinforce_loss`` is the
surrogate whose gradient is the policy gradient: discounted returns minus a
baseline, normalised over the batch, plus an entropy bonus.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import tree as tree_lib
from pfcdr_jax.copyattack.attacker_data import AttackerData
from pfcdr_jax.copyattack.episodes import Trajectory
from pfcdr_jax.copyattack.methods import AttackConfig


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
