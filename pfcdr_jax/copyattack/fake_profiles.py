"""Classic generated fake-profile attacks on implicit feedback.

Each attack builds ``len(sizes)`` profiles for a target item v*; profile ``r``
holds exactly ``sizes[r]`` distinct items (capped at the catalogue size), v*
first, then filler items:

* ``random``: filler drawn uniformly over the catalogue;
* ``popular``: filler drawn with probability proportional to item popularity
  (the implicit-feedback analogue of the average attack, whose filler ratings
  follow the items' means);
* ``bandwagon``: the ``select_frac`` share of the filler is the most popular
  items, the rest drawn uniformly;
* ``segment``: filler drawn with probability proportional to how often an
  item co-occurs with v* in the target training profiles; when fewer items
  co-occur than the profile needs, the rest is drawn uniformly.

Everything is numpy with an explicit ``np.random.Generator``; profiles are
int32 arrays of target item ids (``pad`` stacks them, -1 padded).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

KINDS = ("random", "popular", "bandwagon", "segment")


def _draw(rng: np.random.Generator, n: int, weights: np.ndarray,
          exclude: np.ndarray) -> np.ndarray:
  """``n`` distinct items by ``weights`` (uniform among the weightless ones
  once the weighted ones run out), never one of ``exclude``."""
  w = np.asarray(weights, np.float64).copy()
  w[exclude] = 0.0
  positive = np.flatnonzero(w > 0)
  if len(positive) >= n:
    return rng.choice(len(w), size=n, replace=False, p=w / w.sum())
  rest = np.setdiff1d(np.flatnonzero(w == 0), exclude)
  extra = rng.choice(rest, size=n - len(positive), replace=False)
  return np.concatenate([rng.permutation(positive), extra])


def _sizes(sizes: Sequence[int], n_items: int) -> np.ndarray:
  sizes = np.minimum(np.asarray(sizes, np.int64), n_items)
  if (sizes < 1).any():
    raise ValueError(f"profile sizes must be >= 1, got {sizes.tolist()}")
  return sizes


def cooccurrence(train_pairs: np.ndarray, item: int,
                 n_items: int) -> np.ndarray:
  """Training profiles holding both v* and each item. int64[N] (0 at v*).

  Args:
    train_pairs: int32[R, 2] (user, item) training interactions.
    item: v*.
    n_items: N.
  """
  users = np.unique(train_pairs[train_pairs[:, 1] == item, 0])
  with_item = train_pairs[np.isin(train_pairs[:, 0], users), 1]
  counts = np.bincount(with_item, minlength=n_items)
  counts[item] = 0
  return counts


def make_profiles(kind: str, rng: np.random.Generator, item: int,
                  sizes: Sequence[int], popularity: np.ndarray,
                  cooc: np.ndarray | None = None,
                  select_frac: float = 0.3) -> list[np.ndarray]:
  """Fake profiles of one attack on v*.

  Args:
    kind: one of ``KINDS``.
    rng: the generator every draw comes from.
    item: v*.
    sizes: items per profile (v* included), one entry a profile.
    popularity: float[N] interactions per item (``popular``, ``bandwagon``).
    cooc: float[N] co-occurrence with v* (``segment``; ``cooccurrence``).
    select_frac: share of a bandwagon profile's filler taken from the most
      popular items.

  Returns:
    [int32[sizes[r]]] with v* first.

  Raises:
    ValueError: an unknown kind, a size < 1, or ``segment`` without ``cooc``.
  """
  if kind not in KINDS:
    raise ValueError(f"unknown fake-profile attack {kind!r}; expected one of "
                     f"{KINDS}")
  if kind == "segment" and cooc is None:
    raise ValueError("the segment attack needs the co-occurrence counts")
  n_items = len(popularity)
  exclude = np.asarray([item])
  uniform = np.ones(n_items)
  by_pop = np.argsort(-np.asarray(popularity), kind="stable")
  by_pop = by_pop[by_pop != item]
  out = []
  for size in _sizes(sizes, n_items):
    n_fill = int(size) - 1
    if kind == "random":
      fill = _draw(rng, n_fill, uniform, exclude)
    elif kind == "popular":
      fill = _draw(rng, n_fill, popularity, exclude)
    elif kind == "segment":
      fill = _draw(rng, n_fill, cooc, exclude)
    else:
      top = by_pop[:int(round(select_frac * n_fill))]
      rest = _draw(rng, n_fill - len(top), uniform,
                   np.concatenate([exclude, top]))
      fill = np.concatenate([top, rest])
    out.append(np.concatenate([exclude, fill]).astype(np.int32))
  return out


def pad(profiles: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
  """Profiles stacked left-aligned, -1 padded. int32[n, width]."""
  width = width or max((len(p) for p in profiles), default=0)
  out = np.full((len(profiles), width), -1, np.int32)
  for r, p in enumerate(profiles):
    out[r, :len(p)] = p
  return out
