"""Sampled-negative ranking metrics: HR@K and NDCG@K against 100 negatives.

Section 5.1.2: "we randomly sample 100 items that the user did not interact with
and then rank the test item among them". Negatives are drawn without
replacement from per-(user, item) random priorities, so a fixed key gives the
same negatives for a user before and after an attack.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def sample_negatives(key: jax.Array, excluded: jnp.ndarray,
                     n_neg: int) -> jnp.ndarray:
  """Samples ``n_neg`` distinct items per row among the non-excluded ones.

  Args:
    key: PRNG key; the same key gives the same negatives.
    excluded: bool[B, N] items a row may not draw (interacted, the positive).
    n_neg: static number of negatives (< number of allowed items per row).

  Returns:
    int32[B, n_neg].
  """
  prio = jax.random.uniform(key, excluded.shape)
  prio = jnp.where(excluded, -1.0, prio)
  return jax.lax.top_k(prio, n_neg)[1].astype(jnp.int32)


def rank_of_positive(pos_score: jnp.ndarray,
                     neg_scores: jnp.ndarray) -> jnp.ndarray:
  """0-based rank of the positive among itself and the negatives.

  Args:
    pos_score: float[B].
    neg_scores: float[B, n_neg].

  Returns:
    int32[B], the number of negatives scored strictly higher.
  """
  return (neg_scores > pos_score[:, None]).sum(-1).astype(jnp.int32)


def hit_ratio(rank: jnp.ndarray, k: int) -> jnp.ndarray:
  """HR@k per row: 1 if the positive is among the top k. float[B]."""
  return (rank < k).astype(jnp.float32)


def ndcg(rank: jnp.ndarray, k: int) -> jnp.ndarray:
  """NDCG@k per row for one relevant item: ``1 / log2(rank + 2)`` if in top k."""
  return jnp.where(rank < k, 1.0 / jnp.log2(rank.astype(jnp.float32) + 2.0),
                   0.0)
