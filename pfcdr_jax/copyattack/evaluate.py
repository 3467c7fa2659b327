"""Promotion metrics of a target item over real target users (Section 5.1.2).

The evaluator (not the attacker) scores real users with the platform's model.
For a target item v*:

* evaluated users: real users who have not interacted with v* and did not
  have v* in their top-``eligibility_k`` list (over their non-interacted
  items) before the attack (Section 3, "promotion");
* each is ranked on v* against 100 non-interacted items sampled once per user
  from a fixed key, so the negatives are the same before and after;
* HR@{20,10,5} and NDCG@{20,10,5} are means over the evaluated users.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from pfcdr_jax.copyattack import ranking

KS = (20, 10, 5)


def metric_names(ks=KS) -> tuple[str, ...]:
  return tuple(f"HR@{k}" for k in ks) + tuple(f"NDCG@{k}" for k in ks)


@functools.partial(jax.jit, static_argnames=("scorer", "k"))
def eligible_users(scorer, state, users: jnp.ndarray, interacted: jnp.ndarray,
                   item: jnp.ndarray, k: int = 20) -> jnp.ndarray:
  """Users to evaluate: v* neither interacted nor in their top-k now.

  Args:
    scorer: evaluator scoring function ``(state, users) -> float[B, N]``.
    state: black-box state before the attack.
    users: int32[B] real users.
    interacted: bool[B, N] their known interactions.
    item: int32[] target item.
    k: top-k cutoff (the largest reported K).

  Returns:
    bool[B].
  """
  scores = jnp.where(interacted, -jnp.inf, scorer(state, users))
  top = jax.lax.top_k(scores, k)[1]
  return ~(top == item).any(-1) & ~interacted[:, item]


def fixed_negatives(key: jax.Array, interacted: jnp.ndarray, item: jnp.ndarray,
                    n_neg: int = 100) -> jnp.ndarray:
  """100 sampled non-interacted items per user, excluding v*. int32[B, n_neg].

  The per-(user, item) priorities come from ``key`` only, so every target item
  and every attack sees the same draw (up to dropping v* itself).
  """
  excl = interacted | (jnp.arange(interacted.shape[1]) == item)[None, :]
  return ranking.sample_negatives(key, excl, n_neg)


@functools.partial(jax.jit, static_argnames=("scorer", "ks"))
def promotion_metrics(scorer, state, users: jnp.ndarray, item: jnp.ndarray,
                      negatives: jnp.ndarray, mask: jnp.ndarray,
                      ks=KS) -> dict:
  """HR@K / NDCG@K of v* against fixed negatives, averaged over ``mask``.

  Args:
    scorer: evaluator scoring function.
    state: black-box state (before or after an attack).
    users: int32[B].
    item: int32[] target item.
    negatives: int32[B, n_neg].
    mask: bool[B] users to average over.
    ks: cutoffs.

  Returns:
    dict name -> float[] (0 when no user is evaluated).
  """
  scores = scorer(state, users)
  pos = scores[:, item]
  neg = jnp.take_along_axis(scores, negatives, axis=1)
  rank = ranking.rank_of_positive(pos, neg)
  denom = jnp.maximum(mask.sum(), 1)
  out = {}
  for k in ks:
    out[f"HR@{k}"] = jnp.where(mask, ranking.hit_ratio(rank, k), 0).sum() / denom
  for k in ks:
    out[f"NDCG@{k}"] = jnp.where(mask, ranking.ndcg(rank, k), 0).sum() / denom
  return out


@functools.partial(jax.jit, static_argnames=("scorer", "k"))
def catalogue_metrics(scorer, state, users: jnp.ndarray,
                      interacted: jnp.ndarray, item: jnp.ndarray,
                      mask: jnp.ndarray, k: int = 20) -> dict:
  """v*'s position among *all* non-interacted items of each masked user.

  ``percentile`` is the fraction of a user's other non-interacted items
  scored below v* (1 = top of the catalogue); its mean, standard deviation
  and 10th / 90th percentiles over the users are reported as its spread.
  ``full_HR@k`` is the share of users with v* in their full-catalogue
  top-k: the candidate set of ``eligible_users``, so before any attack it is
  0 by construction.

  Args:
    scorer: evaluator scoring function.
    state: black-box state.
    users: int32[B].
    interacted: bool[B, N].
    item: int32[] v*.
    mask: bool[B] users to describe.
    k: cutoff of ``full_HR@k``.

  Returns:
    dict name -> float[] (NaN statistics when no user is masked).
  """
  s = scorer(state, users)
  pos = s[:, item]
  other = ~interacted & (jnp.arange(s.shape[1]) != item)[None, :]
  above = ((s > pos[:, None]) & other).sum(-1)
  below = ((s < pos[:, None]) & other).sum(-1)
  pct = below / jnp.maximum(other.sum(-1), 1)
  denom = jnp.maximum(mask.sum(), 1)
  masked = jnp.where(mask, pct, jnp.nan)
  return {
      "percentile": jnp.where(mask, pct, 0.0).sum() / denom,
      "percentile_std": jnp.nanstd(masked),
      "percentile_p10": jnp.nanpercentile(masked, 10.0),
      "percentile_p90": jnp.nanpercentile(masked, 90.0),
      f"full_HR@{k}": jnp.where(mask, above < k, False).sum() / denom,
  }
