"""The held-out slice of the training ratings that pretraining selects on.

A seeded split of a domain's TRAINING ratings (never test) into the ratings trained
on and a held-out slice (:func:`heldout_split`), the MSE of a model on that slice
(summed in padded chunks, under jit), and the MSE of the mean predictor: the floor a
trained model must beat.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking
from pfcdr_jax.models.scorers import Scorer
from pfcdr_jax.models.train_config import TrainConfig


def heldout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded split of ``range(n)`` into (train_idx, heldout_idx), both sorted."""
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"heldout_fraction must be in (0, 1), got {fraction}")
  n_held = max(1, int(round(fraction * n)))
  if n_held >= n:
    raise ValueError(f"too few ratings ({n}) for a held-out slice")
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _heldout_mse(scorer: Scorer, params, held: tuple[jax.Array, ...], chunk: int):
  """MSE over the held-out set (u, i, r each [n]), summed in padded chunks. Returns []."""
  n = held[0].shape[0]
  # A running sum over the chunks (a scan, not a map): the padded rows get weight 0.
  chunks = chunking.split_chunks((*held, jnp.ones((n,), jnp.float32)), chunk)

  def body(acc, xs):
    u, i, r, m = xs
    err = scorer.predict(params, u, i) - r
    return acc + jnp.sum(m * err * err), None

  total, _ = jax.lax.scan(body, jnp.asarray(0.0, jnp.float32), chunks)
  return total / n


def _domain_arrays(domain) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  users = np.asarray(domain.user, np.int32)
  items = np.asarray(domain.item, np.int32)
  ratings = np.asarray(domain.rating, np.float32)
  if not (users.shape == items.shape == ratings.shape) or users.ndim != 1:
    raise ValueError("domain.user/item/rating must be 1-D arrays of equal length")
  return users, items, ratings


def _split_domain(domain, cfg: TrainConfig):
  """(train (u, i, r), held (u, i, r)) numpy arrays of the seeded held-out split."""
  arrays = _domain_arrays(domain)
  tr, ho = heldout_split(arrays[2].size, cfg.heldout_fraction, cfg.seed)
  return tuple(x[tr] for x in arrays), tuple(x[ho] for x in arrays)


def heldout_mse_of(scorer: Scorer, params, domain, cfg: TrainConfig) -> float:
  """Held-out MSE of ``params`` on ``domain``'s held-out slice under ``cfg`` (the
  number :func:`train_scorer` selects on; recomputed to check a cached entry)."""
  _, held = _split_domain(domain, cfg)
  return float(_heldout_mse(scorer, params, tuple(jnp.asarray(x) for x in held),
                            cfg.heldout_batch))


def mean_predictor_mse(train_ratings: np.ndarray, held_ratings: np.ndarray) -> float:
  """Held-out MSE of predicting every rating by the training ratings' mean."""
  mean = float(np.mean(train_ratings)) if train_ratings.size else 0.0
  return float(np.mean((np.asarray(held_ratings, np.float64) - mean) ** 2))
