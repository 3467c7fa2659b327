"""The REINFORCE training loop of the attack policies.

``train_policy`` runs REINFORCE under one ``lax.scan`` of updates, each over
``batch_episodes`` vmapped episodes of target items drawn from the items it is
given: one item (the paper's per-item policy) or every target item of the run
(one policy shared across items, conditioned on q_v*; ``AttackConfig.shared``).
Advantages are returns minus a baseline: a per-item, per-step moving average
(``baseline="ema"``) or the mean return of the update's other episodes of
the same item (``"loo"``). The training spends at most what
``AttackConfig.query_budget`` leaves after the final attacks (``n_updates``);
with ``AttackConfig.stop="plateau"`` it stops earlier, once the return of
its episodes stops improving (``_plateau_step``).
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
from pfcdr_jax.copyattack.reinforce import discounted_returns
from pfcdr_jax.copyattack.reinforce import reinforce_loss


class TrainResult(flax.struct.PyTreeNode):
  """Outcome of ``train_policy``.

  Attributes:
    params: the learned policy params.
    curve: float32[n_updates] mean undiscounted return (sum of rewards) of
      each update's episodes.
    score_curve: float32[n_updates] mean final pretend score of them.
    queries: int32[] queries the training episodes made.
    injections: int32[] profiles the training episodes injected (each undone
      with its episode: every episode starts from the untouched platform).
    checkpoints: the params after each of ``cfg.checkpoints`` chunks of
      training (leading axis C; the last is ``params``).
    checkpoint_queries: int32[C] queries spent when each was taken.
    checkpoint_injections: int32[C] injections made by then.
    updates: int32[] updates made (``n_updates`` unless the plateau rule
      stopped the training; the entries of ``curve`` and ``score_curve``
      past it are NaN, and a checkpoint past it is the stopped policy).
  """

  params: dict
  curve: jnp.ndarray
  score_curve: jnp.ndarray
  queries: jnp.ndarray
  injections: jnp.ndarray
  checkpoints: dict
  checkpoint_queries: jnp.ndarray
  checkpoint_injections: jnp.ndarray
  updates: jnp.ndarray


class Plateau(NamedTuple):
  """State of the plateau stopping rule (``AttackConfig.stop="plateau"``).

  The updates are grouped in windows of ``plateau_window``; a window's
  return is the mean of its updates' mean episode returns, with the
  standard error of that mean over its updates. A window improves when its
  return exceeds the best window's by more than the two standard errors
  combined; ``plateau_patience`` windows in a row without improvement stop
  the training.
  """

  total: jnp.ndarray  # float32[] sum of this window's update returns
  total_sq: jnp.ndarray  # float32[] and of their squares
  best: jnp.ndarray  # float32[] best window return so far
  best_se: jnp.ndarray  # float32[] its standard error
  wait: jnp.ndarray  # int32[] windows since the last improvement
  stopped: jnp.ndarray  # bool[]

  @classmethod
  def init(cls) -> "Plateau":
    z = jnp.zeros((), jnp.float32)
    return cls(total=z, total_sq=z, best=jnp.full((), -jnp.inf), best_se=z,
               wait=jnp.zeros((), jnp.int32),
               stopped=jnp.zeros((), bool))


def _plateau_step(state: Plateau, u: jnp.ndarray, ret: jnp.ndarray, *,
                  window: int, patience: int) -> Plateau:
  """Adds update ``u``'s mean return; closes a window after its last
  update and sets ``stopped`` after ``patience`` windows without
  improvement."""
  total, total_sq = state.total + ret, state.total_sq + ret ** 2
  mean = total / window
  var = jnp.maximum(total_sq - window * mean ** 2, 0.0) / max(window - 1, 1)
  se = jnp.sqrt(var / window)
  improved = mean > state.best + jnp.sqrt(se ** 2 + state.best_se ** 2)
  closes = (u + 1) % window == 0
  wait = jnp.where(improved, 0, state.wait + 1)
  closed = Plateau(
      total=jnp.zeros_like(total), total_sq=jnp.zeros_like(total),
      best=jnp.where(improved, mean, state.best),
      best_se=jnp.where(improved, se, state.best_se), wait=wait,
      stopped=wait >= patience)
  open_ = state._replace(total=total, total_sq=total_sq)
  return jax.tree.map(lambda a, b: jnp.where(closes, a, b), closed, open_)


class _TrainCarry(NamedTuple):
  """Scan carry of the REINFORCE updates."""

  params: dict  # policy params
  opt_state: optax.OptState  # Adam state
  baseline: jnp.ndarray  # float32[M, T] moving-average return per item, step
  plateau: Plateau  # the stopping rule's state


def _update_baseline(baseline, idx, returns, decay):
  """EMA of the returns of each item present in the batch. [M, T]."""
  m = baseline.shape[0]
  total = jax.ops.segment_sum(returns, idx, num_segments=m)
  count = jax.ops.segment_sum(jnp.ones_like(idx, jnp.float32), idx,
                              num_segments=m)[:, None]
  mean = total / jnp.maximum(count, 1.0)
  return jnp.where(count > 0, decay * baseline + (1 - decay) * mean, baseline)


def leave_one_out_baseline(returns: jnp.ndarray, idx: jnp.ndarray,
                           fallback: jnp.ndarray) -> jnp.ndarray:
  """Per episode and step, the mean return of the batch's other episodes of
  the same item; ``fallback`` where the item has no other episode.

  Args:
    returns: float[B, T] discounted returns.
    idx: int32[B] item slot of each episode.
    fallback: float[B, T].

  Returns:
    float[B, T]; independent of each episode's own actions.
  """
  other = ((idx[:, None] == idx[None, :])
           & ~jnp.eye(idx.shape[0], dtype=bool)).astype(returns.dtype)
  n_other = other.sum(-1)[:, None]
  loo = (other @ returns) / jnp.maximum(n_other, 1.0)
  return jnp.where(n_other > 0, loo, fallback)


def train_budget(cfg: AttackConfig, n_items: int) -> int:
  """Training queries ``cfg.query_budget`` leaves after the final attacks
  (-1: no cap)."""
  if not cfg.query_budget:
    return -1
  per_item = cfg.query_budget - cfg.episode_queries
  return per_item * (n_items if cfg.shared else 1)


def n_updates(cfg: AttackConfig, n_items: int = 1) -> int:
  """REINFORCE updates a method makes on ``n_items`` items (0 for the
  baselines): ``episodes // batch_episodes``, cut to the updates the query
  budget pays for even if every episode made its most queries."""
  if not cfg.learns:
    return 0
  n = cfg.episodes // cfg.batch_episodes
  budget = train_budget(cfg, n_items)
  if budget >= 0:
    n = min(n, budget // (cfg.batch_episodes * cfg.episode_queries))
  return n


def _chunks(n: int, c: int) -> list[tuple[int, int]]:
  """``c`` consecutive near-equal [start, end) ranges covering range(n)."""
  bounds = [round(n * i / c) for i in range(c + 1)]
  return list(zip(bounds[:-1], bounds[1:]))


def train_policy(params, data: AttackerData, bb_state, items: jnp.ndarray,
                 key: jax.Array, *, bb: blackbox.BlackBox, cfg: AttackConfig,
                 pcfg: policy.PolicyConfig) -> TrainResult:
  """REINFORCE over episodes of the given target items (Sections 4.3-4.5).

  Each of ``n_updates(cfg, M)`` updates plays ``batch_episodes`` vmapped
  episodes, ``episodes_per_item`` of each of the items drawn uniformly from
  ``items``, each starting from ``bb_state`` (the attacker replays its
  attack on a copy of the platform; the paper does not say otherwise). The
  updates run in ``cfg.checkpoints`` chunks; update u's randomness is
  ``fold_in(key, u)`` whatever the chunking. With ``cfg.stop="plateau"``
  the updates after the rule fires are skipped (no episodes, no queries).

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
  epi = cfg.episodes_per_item

  def update_step(carry: _TrainCarry, u):
    k_items, k_play = jax.random.split(jax.random.fold_in(key, u))
    idx = jax.random.randint(k_items, (cfg.batch_episodes // epi,), 0,
                             items.shape[0])
    if epi > 1:
      idx = jnp.repeat(idx, epi)
    keys = jax.random.split(k_play, cfg.batch_episodes)
    _, trajs = play(carry.params, data, bb_state, items[idx], keys)
    ema = carry.baseline[idx]
    if cfg.baseline == "loo":
      returns = jax.vmap(functools.partial(discounted_returns,
                                           gamma=cfg.gamma))(trajs.reward)
      base = leave_one_out_baseline(returns, idx, ema)
    else:
      base = ema
    grads, returns = grad_fn(carry.params, data, items[idx], trajs, base)
    upd, opt_state = opt.update(grads, carry.opt_state, carry.params)
    ret = trajs.reward.sum(-1).mean()
    plateau = carry.plateau
    if cfg.stop == "plateau":
      plateau = _plateau_step(plateau, u, ret, window=cfg.plateau_window,
                              patience=cfg.plateau_patience)
    new = _TrainCarry(
        params=optax.apply_updates(carry.params, upd), opt_state=opt_state,
        baseline=_update_baseline(carry.baseline, idx, returns,
                                  cfg.baseline_decay),
        plateau=plateau)
    return new, (ret, trajs.final_score.mean(),
                 trajs.n_queries.sum().astype(jnp.int32),
                 trajs.active.sum().astype(jnp.int32))

  def skip(carry: _TrainCarry, u):
    del u
    nan = jnp.full((), jnp.nan, jnp.float32)
    zero = jnp.zeros((), jnp.int32)
    return carry, (nan, nan, zero, zero)

  def update(carry: _TrainCarry, u):
    if cfg.stop != "plateau":
      return update_step(carry, u)
    return jax.lax.cond(carry.plateau.stopped, skip, update_step, carry, u)

  carry = _TrainCarry(params=params, opt_state=opt.init(params),
                      baseline=jnp.zeros((items.shape[0], t_pad)),
                      plateau=Plateau.init())
  outs, snaps = [], []
  for lo, hi in _chunks(n_updates(cfg, int(items.shape[0])), cfg.checkpoints):
    carry, out = jax.lax.scan(update, carry, jnp.arange(lo, hi))
    outs.append(out)
    snaps.append(carry.params)
  curve, score, queries, injected = (jnp.concatenate(x) for x in zip(*outs))
  ends = jnp.asarray([hi for _, hi in _chunks(curve.shape[0],
                                               cfg.checkpoints)])
  cum_q = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(queries)])
  cum_i = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(injected)])
  return TrainResult(
      params=carry.params, curve=curve, score_curve=score,
      queries=queries.sum(), injections=injected.sum(),
      checkpoints=jax.tree.map(lambda *x: jnp.stack(x), *snaps),
      checkpoint_queries=cum_q[ends], checkpoint_injections=cum_i[ends],
      updates=jnp.sum(~jnp.isnan(curve)).astype(jnp.int32))
