"""Headroom of an attack environment: random v*-profiles vs a greedy oracle.

Before asking a policy to learn *which* profiles to copy, measure how much choosing
them can gain at all. For one target item v*:

* TargetAttack100 over many seeds: ``budget`` whole profiles drawn at random
  from the source profiles that contain v*;
* a greedy oracle: at each of ``budget`` steps it tries every candidate
  (a v*-containing profile not copied yet, clipped to each window of
  ``levels``), keeps the one that most raises a continuous score of v*, and
  injects it.

The score is the mean reciprocal rank of v* over the evaluation users, its
rank taken over each user's non-interacted items of the whole catalogue
(``user_scores``). The oracle reads the evaluator's scores of real users: it
is an upper-bound study, not an attack.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import crafting


class UserScores(NamedTuple):
  """Continuous position of v* for each evaluation user (float[B] each)."""

  rr: jnp.ndarray  # reciprocal rank 1 / (1 + rank) over non-interacted items
  percentile: jnp.ndarray  # fraction of non-interacted items below v*


def user_scores(scorer, state, users: jnp.ndarray, interacted: jnp.ndarray,
                item: jnp.ndarray) -> UserScores:
  """Full-catalogue position of v* for each user.

  Args:
    scorer: evaluator ``(state, users int32[B]) -> float[B, N]``.
    state: black-box state.
    users: int32[B].
    interacted: bool[B, N] known interactions (v* is never one of them for
      the users passed).
    item: int32[] v*.

  Returns:
    UserScores; ``rank`` = number of non-interacted items scored above v*.
  """
  s = scorer(state, users)
  pos = s[:, item]
  other = ~interacted & (jnp.arange(s.shape[1]) != item)[None, :]
  above = ((s > pos[:, None]) & other).sum(-1)
  below = ((s < pos[:, None]) & other).sum(-1)
  n_other = jnp.maximum(other.sum(-1), 1)
  return UserScores(rr=1.0 / (1.0 + above), percentile=below / n_other)


def mrr(scorer, state, users, interacted, item, mask) -> jnp.ndarray:
  """Mean reciprocal rank of v* over ``mask``ed users. float[]."""
  rr = user_scores(scorer, state, users, interacted, item).rr
  return jnp.where(mask, rr, 0.0).sum() / jnp.maximum(mask.sum(), 1)


def inject_clipped(bb: blackbox.BlackBox, state, profile, length, item, level):
  """Injects ``profile`` clipped to window ``level`` around v*."""
  items, n = crafting.clip_profile(profile, length, item, level)
  return bb.inject(state, items, n)[0]


@functools.partial(jax.jit, static_argnames=("bb", "scorer"))
def random_attack_scores(bb, scorer, state, profiles, lengths, users,
                         interacted, item, mask, orders):
  """MRR after TargetAttack100 with each row of ``orders`` as the copies.

  Args:
    bb: black box; scorer: evaluator.
    state: platform before the attack.
    profiles: int32[M, L_max] source profiles that contain v*.
    lengths: int32[M].
    users, interacted, item, mask: as ``mrr``.
    orders: int32[R, budget] indices into ``profiles`` (one seed per row).

  Returns:
    float[R] MRR after each random attack.
  """
  def one(order):
    def body(st, j):
      return inject_clipped(bb, st, profiles[j], lengths[j], item,
                            jnp.int32(crafting.N_LEVELS)), None
    st, _ = jax.lax.scan(body, state, order)
    return mrr(scorer, st, users, interacted, item, mask)
  return jax.lax.map(one, orders)


@functools.partial(jax.jit, static_argnames=("bb", "scorer", "budget"))
def greedy_oracle(bb, scorer, state, profiles, lengths, users, interacted,
                  item, mask, levels, *, budget: int):
  """Greedy oracle: ``budget`` steps, each the best (profile, window).

  Args:
    bb, scorer, state, profiles, lengths, users, interacted, item, mask: as
      ``random_attack_scores``.
    levels: int32[W] windows tried (1..10).
    budget: steps (static).

  Returns:
    (MRR after each step float[budget], chosen profile int32[budget],
    chosen level int32[budget]).
  """
  m, w = profiles.shape[0], levels.shape[0]
  cand_j = jnp.repeat(jnp.arange(m), w)
  cand_l = jnp.tile(levels, m)

  def step(carry, _):
    st, used = carry

    def score(c):
      j, lv = c
      nxt = inject_clipped(bb, st, profiles[j], lengths[j], item, lv)
      return mrr(scorer, nxt, users, interacted, item, mask)

    scores = jax.lax.map(score, (cand_j, cand_l))
    scores = jnp.where(used[cand_j], -jnp.inf, scores)
    best = jnp.argmax(scores)
    j, lv = cand_j[best], cand_l[best]
    st = inject_clipped(bb, st, profiles[j], lengths[j], item, lv)
    return (st, used.at[j].set(True)), (scores[best], j, lv)

  _, (curve, js, lvs) = jax.lax.scan(step, (state, jnp.zeros((m,), bool)),
                                     None, length=budget)
  return curve, js, lvs


def item_headroom(bb, scorer, state, cd, item: int, users: np.ndarray,
                  interacted: np.ndarray, *, budget: int, n_seeds: int,
                  n_candidates: int, levels: tuple, seed: int) -> dict:
  """Headroom of one target item (see the module docstring).

  Args:
    bb, scorer, state: the platform (``blackbox.make_blackbox``).
    cd: ``data.CrossDomain``.
    item: v*.
    users: int32[B] evaluation users.
    interacted: bool[B, N] their interactions.
    budget: copies per attack.
    n_seeds: random TargetAttack100 draws.
    n_candidates: v*-profiles the oracle may choose from (a seeded random
      subset when more exist; the oracle is then a lower bound of the best
      greedy choice).
    levels: windows the oracle tries.
    seed: numpy seed.

  Returns:
    dict of MRRs (before, TargetAttack100 mean / std / max over seeds,
    oracle) and the oracle's gain over the TargetAttack100 mean.
  """
  rng = np.random.default_rng(seed + item)
  has = np.flatnonzero((cd.source_profiles == item).any(-1))
  cand = np.sort(rng.choice(has, min(n_candidates, len(has)), replace=False))
  b = min(budget, len(has))
  prof = jnp.asarray(cd.source_profiles[has])
  lens = jnp.asarray(cd.source_lengths[has])
  inter = jnp.asarray(interacted)
  mask = ~inter[:, item]
  args = (jnp.asarray(users), inter, jnp.int32(item), mask)
  orders = np.stack([rng.permutation(len(has))[:b] for _ in range(n_seeds)])
  ta = np.asarray(random_attack_scores(bb, scorer, state, prof, lens, *args,
                                       jnp.asarray(orders, jnp.int32)))
  before = float(mrr(scorer, state, *args))
  pos = np.searchsorted(has, cand)
  curve, js, lvs = greedy_oracle(bb, scorer, state, prof[pos], lens[pos],
                                 *args, jnp.asarray(levels, jnp.int32),
                                 budget=min(b, len(cand)))
  oracle = float(curve[-1])
  return {"item": int(item), "source_profiles": int(len(has)),
          "candidates": int(len(cand)), "budget": int(b),
          "MRR_before": before, "TargetAttack100_MRR_mean": float(ta.mean()),
          "TargetAttack100_MRR_std": float(ta.std()),
          "TargetAttack100_MRR_max": float(ta.max()),
          "oracle_MRR": oracle,
          "oracle_gain": oracle - float(ta.mean()),
          "oracle_gain_ratio": oracle / max(float(ta.mean()), 1e-12),
          "oracle_levels": np.bincount(np.asarray(lvs),
                                       minlength=11)[1:].tolist(),
          "oracle_curve": np.asarray(curve).tolist()}


def run_headroom(cfg, workdir, *, n_seeds: int = 32, n_candidates: int = 40,
                 levels: tuple = (2, 4, 7, 10)) -> dict:
  """The headroom study on ``cfg``'s platforms; writes ``results.json``.

  Args:
    cfg: a ``config.CopyAttackConfig`` (data, target model, pretend users,
      budget, seed; ``data.num_target_items`` items).
    workdir: output directory.
    n_seeds: TargetAttack100 draws per item.
    n_candidates: v*-profiles the oracle chooses from per item.
    levels: windows the oracle tries.

  Returns:
    The results dict: per-item rows and their means (``oracle_gain`` = mean
    over items of oracle MRR minus mean TargetAttack100 MRR).
  """
  # The pipeline imports this module's siblings only; imported here so the
  # headroom code stays importable without the data loaders.
  from pfcdr_jax.harness import cache  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.copyattack import data as data_lib  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.copyattack import pipeline  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cd = data_lib.align_platforms(*pipeline.load_platforms(cfg.data, cfg.seed))
  items = pipeline.target_items(cd, cfg.data, cfg.seed)
  setup = pipeline.prepare(cfg, cd)
  users = setup.eval_users
  inter = np.asarray(setup.interacted)[users]
  rows = [item_headroom(setup.bb, setup.scorer, setup.bb_state, cd, int(i),
                        users, inter, budget=cfg.attack.budget,
                        n_seeds=n_seeds, n_candidates=n_candidates,
                        levels=tuple(levels), seed=cfg.seed) for i in items]
  keys = ("MRR_before", "TargetAttack100_MRR_mean", "TargetAttack100_MRR_std",
          "TargetAttack100_MRR_max", "oracle_MRR", "oracle_gain",
          "oracle_gain_ratio")
  results = {
      "oracle_gain": float(np.mean([r["oracle_gain"] for r in rows])),
      "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
      "items_oracle_above_TargetAttack100_max": int(sum(
          r["oracle_MRR"] > r["TargetAttack100_MRR_max"] for r in rows)),
      "n_items": len(rows), "n_seeds": n_seeds, "n_candidates": n_candidates,
      "levels": list(levels), "budget": cfg.attack.budget,
      "target_model": pipeline.target_model_summary(setup.target),
      "per_item": rows,
  }
  cache.atomic_write_text(workdir / "results.json",
                          json.dumps(results, indent=2))
  return results
