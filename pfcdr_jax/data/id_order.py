"""The index order of a cross-domain data set's string ids.

Users: the overlapping users first, sorted by their string id, with the same index
``0..n_overlap-1`` in both domains; then the users of that domain only, sorted. Items:
sorted per domain. :func:`id_order` gives these lists and the index of every distinct
id as it was given (``splits.make_cdr_split`` maps its rows through them).
"""

from __future__ import annotations

import itertools
import operator
from typing import NamedTuple

import numpy as np

from pfcdr_jax.data.errors import DataError


class IdOrder(NamedTuple):
  """The index order of users and items in both domains (see the module docstring).

  Attributes:
    n_overlap: Number of users in both domains (indices ``0..n_overlap-1``).
    source_user_ids: Overlap users sorted, then source-only users sorted.
    target_user_ids: Overlap users sorted, then target-only users sorted.
    source_item_ids: Source items sorted.
    target_item_ids: Target items sorted.
    source_user_pos: int64, the index of each distinct source user as given to
      :func:`id_order` (``source_user_ids[source_user_pos[k]] == src_users[k]``);
      likewise the three others.
    target_user_pos: See ``source_user_pos``.
    source_item_pos: See ``source_user_pos``.
    target_item_pos: See ``source_user_pos``.
  """
  n_overlap: int
  source_user_ids: list
  target_user_ids: list
  source_item_ids: list
  target_item_ids: list
  source_user_pos: np.ndarray
  target_user_pos: np.ndarray
  source_item_pos: np.ndarray
  target_item_pos: np.ndarray


def id_order(src_users: list, tgt_users: list, src_items: list, tgt_items: list, *,
              name: str) -> IdOrder:
  """Orders the distinct string ids of both domains: shared users first.

  Ids that come strictly sorted (the categories of a categorical column: every frame
  of this package's loaders and generator) are checked as such in one pass, and the
  users of both domains are matched by one merge of the two sorted lists. Other ids
  are sorted by position (``sorted(range(n), key=ids.__getitem__)``: the sort gives each
  id's index, no lookup of every id) and matched with one set a domain. Both ways give
  the same order; the merge and the skipped sort read the strings in memory order,
  where sets and sorts jump between them (their cost per id grows with the count).

  Args:
    src_users: Distinct source user ids.
    tgt_users: Distinct target user ids.
    src_items: Distinct source item ids.
    tgt_items: Distinct target item ids.
    name: Task name for messages.

  Returns:
    The :class:`IdOrder`.

  Raises:
    DataError: no user is in both domains.
  """
  src_sorted, tgt_sorted = strictly_sorted(src_users), strictly_sorted(tgt_users)
  if src_sorted and tgt_sorted:
    in_tgt, in_src = merge_members(src_users, tgt_users)
  else:
    src_set, tgt_set = set(src_users), set(tgt_users)
    in_tgt = np.fromiter((u in tgt_set for u in src_users), dtype=bool,
                         count=len(src_users))
    in_src = np.fromiter((u in src_set for u in tgt_users), dtype=bool,
                         count=len(tgt_users))
  n_overlap = int(in_tgt.sum())
  if not n_overlap:
    raise DataError(name, f"zero overlapping users between the source ({len(src_users)} "
                    f"users) and the target ({len(tgt_users)} users) domain; check that "
                    "both files use the same user ids")
  source_user_ids, source_user_pos = place(src_users, in_tgt, src_sorted)
  target_user_ids, target_user_pos = place(tgt_users, in_src, tgt_sorted)
  source_item_ids, source_item_pos = place(src_items, np.zeros(len(src_items), bool),
                                            strictly_sorted(src_items))
  target_item_ids, target_item_pos = place(tgt_items, np.zeros(len(tgt_items), bool),
                                            strictly_sorted(tgt_items))
  return IdOrder(n_overlap, source_user_ids, target_user_ids, source_item_ids,
                  target_item_ids, source_user_pos, target_user_pos, source_item_pos,
                  target_item_pos)


def strictly_sorted(ids: list) -> bool:
  """True when each id is below the next (so the ids are also distinct)."""
  return all(map(operator.lt, ids, itertools.islice(ids, 1, None)))


def merge_members(a: list, b: list) -> tuple[np.ndarray, np.ndarray]:
  """``(a[i] in b, b[j] in a)`` as bool arrays, for strictly sorted ``a`` and ``b``."""
  in_a, in_b = bytearray(len(a)), bytearray(len(b))
  i = j = 0
  if a and b:
    x, y = a[0], b[0]
    while True:
      if x < y:
        i += 1
        if i == len(a):
          break
        x = a[i]
      elif y < x:
        j += 1
        if j == len(b):
          break
        y = b[j]
      else:
        in_a[i] = in_b[j] = 1
        i += 1
        j += 1
        if i == len(a) or j == len(b):
          break
        x, y = a[i], b[j]
  return (np.frombuffer(in_a, dtype=bool).copy(), np.frombuffer(in_b, dtype=bool).copy())


def place(ids: list, first: np.ndarray, presorted: bool) -> tuple[list, np.ndarray]:
  """``(ordered ids, index of each id)``: the ids where ``first`` sorted, then the rest
  sorted; ``presorted``: ``ids`` are strictly sorted already."""
  if presorted:
    order = np.arange(len(ids), dtype=np.int64)
  else:
    order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
  in_first = first[order]
  placed = np.concatenate([order[in_first], order[~in_first]])
  pos = np.empty(len(ids), dtype=np.int64)
  pos[placed] = np.arange(len(ids))
  return [ids[k] for k in placed.tolist()], pos
