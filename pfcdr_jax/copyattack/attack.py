"""The attack of one method: train its policy, then attack with it.

``train_and_attack`` is the paper's way for one target item (a fresh policy
trained by ``training.train_policy``, then one final ``episodes.rollout``);
``make_method_fns`` gives the jitted init / train / attack pieces the
shared-policy pipeline calls. Attack code sees the target model only through
``blackbox.BlackBox``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack.attacker_data import AttackerData
from pfcdr_jax.copyattack.episodes import Trajectory
from pfcdr_jax.copyattack.episodes import rollout
from pfcdr_jax.copyattack.methods import AttackConfig
from pfcdr_jax.copyattack.training import n_updates
from pfcdr_jax.copyattack.training import train_policy


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
  if n_updates(cfg, 1) > 0:
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


class Trials(flax.struct.PyTreeNode):
  """The trial attacks of a ``best_of`` baseline on one item.

  Attributes:
    keys: the trial keys (the attack with ``keys[j]`` replays trial j).
    score: float32[n] the pretend users' score after each trial.
    queries: int32[n] queries each trial made.
    injections: int32[n] profiles each trial injected (undone after it).
  """

  keys: jax.Array
  score: jnp.ndarray
  queries: jnp.ndarray
  injections: jnp.ndarray


def play_trials(params, data: AttackerData, bb_state, item: jnp.ndarray,
                key: jax.Array, *, bb: blackbox.BlackBox, cfg: AttackConfig,
                pcfg: policy.PolicyConfig) -> Trials:
  """``cfg.trials()`` attacks on copies of the untouched platform, vmapped.

  A baseline that buys information with queries: the attacker plays random
  attacks against a copy of the platform (as the learned methods' training
  episodes do), reads each one's pretend score, and then injects the best
  for real (``best_trial``, replayed with its key).
  """
  keys = jax.random.split(key, cfg.trials())
  play = jax.vmap(functools.partial(rollout, bb=bb, cfg=cfg, pcfg=pcfg),
                  in_axes=(None, None, None, None, 0))
  _, trajs = play(params, data, bb_state, item, keys)
  return Trials(keys=keys, score=trajs.final_score, queries=trajs.n_queries,
                injections=trajs.active.sum(-1))


def best_trial(trials: Trials, n: int):
  """(key, queries, injections) of the best of the first ``n`` trials (the
  first of equal scores); ``n`` = 0 is no trial (None key)."""
  if n == 0:
    return None, 0, 0
  best = int(jnp.argmax(trials.score[:n]))
  return (trials.keys[best], int(trials.queries[:n].sum()),
          int(trials.injections[:n].sum()))


class MethodFns(NamedTuple):
  """Jitted pieces of one method, for the shared-policy pipeline.

  init: ``key -> params``; train: ``(params, data, bb_state, items, key) ->
  TrainResult``; attack: ``(params, data, bb_state, item, key) -> (state,
  Trajectory)`` (greedy per ``cfg.final_greedy`` for learning methods);
  trials: ``(params, data, bb_state, item, key) -> Trials`` (``best_of``
  baselines).
  """

  init: object
  train: object
  attack: object
  trials: object = None


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
          greedy=cfg.final_greedy and cfg.learns)),
      trials=jax.jit(functools.partial(play_trials, bb=bb, cfg=cfg,
                                       pcfg=pcfg)) if cfg.trials() else None)
