"""The REINFORCE training loop of the attack policies.

``train_policy`` runs REINFORCE under one ``lax.scan`` of updates, each over
``batch_episodes`` vmapped episodes of target items drawn from the items it is
given: one item (the paper's per-item policy) or every target item of the run
(one policy shared across items, conditioned on q_v*; ``AttackConfig.shared``).
Advantages are returns minus a per-item, per-step moving-average baseline.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack.attacker_data import AttackerData
from pfcdr_jax.copyattack.episodes import rollout
from pfcdr_jax.copyattack.methods import AttackConfig
from pfcdr_jax.copyattack.reinforce import reinforce_loss


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
