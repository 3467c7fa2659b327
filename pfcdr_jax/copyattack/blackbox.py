"""Query-only interface to the frozen target recommender (Sections 3 and 4.5).

The attacker may (i) inject a user profile, (ii) ask for the top-k list of given
users -- or, what the whole-catalogue list says about one item, that item's
position in each list (``position``, one query as well) --, and (iii) read how
many queries it made -- nothing else. Attack code
imports only this module (a test parses the imports).

Injections write into fixed-capacity buffers: an interaction list of ``C``
(user, item) slots with a live count and a user count, so every injection and
query has the same shapes and never recompiles. A profile of up to ``L_max``
items is written with one ``dynamic_update_slice``; ``C`` includes ``L_max``
slack so the write is never clamped.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class BlackBoxState:
  """Mutable-by-copy state of the target platform.

  Attributes:
    inter_user: int32[C] user of each interaction slot.
    inter_item: int32[C] item of each slot (-1 in unused slots).
    n_inter: int32[] number of live slots (a prefix of the buffer).
    n_users: int32[] number of registered users (ids 0..n_users-1).
    n_queries: int32[] top-k queries answered so far.
  """

  inter_user: jnp.ndarray
  inter_item: jnp.ndarray
  n_inter: jnp.ndarray
  n_users: jnp.ndarray
  n_queries: jnp.ndarray


class BlackBox(NamedTuple):
  """What the attacker sees of the target recommender.

  Attributes:
    inject: ``(state, items int32[L_max], length int32[]) -> (state, user_id)``
      registers a new user whose time-ordered profile is ``items[:length]``.
    topk: ``(state, users int32[B], k static) -> (int32[B, k], state)``, the
      top-k items of each user among the items they have not interacted with;
      increments the query counter.
    n_items: N.
    max_profile_len: L_max accepted by ``inject``.
    user_capacity: U_cap, users that fit in the buffers.
    position: ``(state, users int32[B], item int32[]) -> (int32[B], state)``,
      the 0-based position of ``item`` in each user's whole-catalogue list
      (the list ``topk`` gives with k = N, interacted items last): exactly
      ``argmax(topk(state, users, N) == item)``, read without sorting the
      catalogue; one query, counted as ``topk``'s. None: the attacker reads
      it from ``topk`` (``item_position``).
  """

  inject: Callable
  topk: Callable
  n_items: int
  max_profile_len: int
  user_capacity: int
  position: Optional[Callable] = None


def _inject(state: BlackBoxState, items: jnp.ndarray, length: jnp.ndarray):
  uid = state.n_users
  pos = jnp.arange(items.shape[0])
  row_items = jnp.where(pos < length, items, -1).astype(jnp.int32)
  row_users = jnp.full(items.shape, uid, jnp.int32)
  new = state.replace(
      inter_user=jax.lax.dynamic_update_slice(state.inter_user, row_users,
                                              (state.n_inter,)),
      inter_item=jax.lax.dynamic_update_slice(state.inter_item, row_items,
                                              (state.n_inter,)),
      n_inter=state.n_inter + length.astype(jnp.int32),
      n_users=uid + 1)
  return new, uid


def _encode(model, params, state: BlackBoxState):
  live = jnp.arange(state.inter_item.shape[0]) < state.n_inter
  weight = (live & (state.inter_item >= 0)).astype(jnp.float32)
  return model.apply(params, state.inter_user, state.inter_item, weight)


def _scores(model, params, state: BlackBoxState, users: jnp.ndarray):
  f, h = _encode(model, params, state)
  return f[users] @ h.T


def item_position(bb: BlackBox, state, users: jnp.ndarray, item: jnp.ndarray):
  """One query: ``item``'s 0-based position in each user's whole list.

  ``bb.position`` when the platform offers it, else read off ``bb.topk`` with
  k = N (the same number, at the cost of a sort).

  Returns:
    (int32[B] positions, state after the query).
  """
  if bb.position is not None:
    return bb.position(state, users, item)
  top, state = bb.topk(state, users, bb.n_items)
  return jnp.argmax(top == item, -1).astype(jnp.int32), state


def position_in_ranking(scores: jnp.ndarray, item: jnp.ndarray) -> jnp.ndarray:
  """0-based position of ``item`` in each row's descending ranking. int32[B].

  The ranking ``lax.top_k`` gives over the whole row (equal scores: the lower
  index first), so ``position_in_ranking(s, v) == argmax(top_k(s, N)[1] == v)``
  row by row; one pass over the row instead of a sort.

  Args:
    scores: float[B, N] (excluded items at -inf).
    item: int32[] the item.
  """
  s_v = scores[:, item][:, None]
  lower_index = (jnp.arange(scores.shape[1]) < item)[None, :]
  before = (scores > s_v) | ((scores == s_v) & lower_index)
  return before.sum(-1).astype(jnp.int32)


def _masked_scores(model, params, state: BlackBoxState, users: jnp.ndarray):
  """Scores of ``users`` with their interacted items at -inf. [B, N]."""
  scores = _scores(model, params, state, users)
  # Row of each interaction's user within this query (B = not queried).
  n_q = users.shape[0]
  row_of = jnp.full((model.n_users,), n_q, jnp.int32).at[users].set(
      jnp.arange(n_q, dtype=jnp.int32))
  live = jnp.arange(state.inter_item.shape[0]) < state.n_inter
  rows = jnp.where(live & (state.inter_item >= 0),
                   row_of[jnp.clip(state.inter_user, 0, model.n_users - 1)],
                   n_q)
  return scores.at[rows, jnp.maximum(state.inter_item, 0)].set(
      -jnp.inf, mode="drop")


def _topk(model, params, state: BlackBoxState, users: jnp.ndarray, k: int):
  scores = _masked_scores(model, params, state, users)
  top = jax.lax.top_k(scores, k)[1].astype(jnp.int32)
  return top, state.replace(n_queries=state.n_queries + 1)


def _position(model, params, state: BlackBoxState, users: jnp.ndarray,
              item: jnp.ndarray):
  pos = position_in_ranking(_masked_scores(model, params, state, users), item)
  return pos, state.replace(n_queries=state.n_queries + 1)


@flax.struct.dataclass
class IncrementalState:
  """State of the incremental black box (``make_blackbox(incremental=True)``).

  Attributes:
    nb_sum: float32[N, e] sum of the hop-1 vectors z_u of each item's users.
    deg: float32[N] each item's number of interactions.
    extra_rows: float32[X, N] item counts of each injected user's profile.
    n_users: int32[] registered users.
    n_queries: int32[] top-k queries answered so far.
  """

  nb_sum: jnp.ndarray
  deg: jnp.ndarray
  extra_rows: jnp.ndarray
  n_users: jnp.ndarray
  n_queries: jnp.ndarray


class _Incremental(NamedTuple):
  """Frozen pieces of the incremental black box."""

  model: object  # the PinSage module
  params: dict
  base_rows: jnp.ndarray  # float32[U0, N] item counts of the base users
  n_base: int


def _inc_inject(inc: _Incremental, state: IncrementalState,
                items: jnp.ndarray, length: jnp.ndarray):
  """Adds one user: its z_u joins the neighbour sums of its items."""
  n_items = inc.base_rows.shape[1]
  w = (jnp.arange(items.shape[0]) < length).astype(jnp.float32)
  idx = jnp.clip(items, 0, n_items - 1)
  emb = inc.model.apply(inc.params, method="embeddings")[idx]
  mean_emb = (emb * w[:, None]).sum(0) / jnp.maximum(w.sum(), 1.0)
  z = inc.model.apply(inc.params, mean_emb, method="hop1")
  row = jnp.zeros((n_items,), jnp.float32).at[idx].add(w)
  uid = state.n_users
  new = state.replace(
      nb_sum=state.nb_sum.at[idx].add(w[:, None] * z[None, :]),
      deg=state.deg + row,
      extra_rows=jax.lax.dynamic_update_slice(
          state.extra_rows, row[None], (uid - inc.n_base, 0)),
      n_users=uid + 1)
  return new, uid


def _inc_scores(inc: _Incremental, state: IncrementalState,
                users: jnp.ndarray):
  """(scores float[B, N], item counts float[B, N]) of ``users``."""
  h = inc.model.apply(inc.params, state.nb_sum, state.deg,
                      method="items_from_sums")
  base = inc.base_rows[jnp.clip(users, 0, inc.n_base - 1)]
  extra = state.extra_rows[jnp.clip(users - inc.n_base, 0,
                                    state.extra_rows.shape[0] - 1)]
  rows = jnp.where((users < inc.n_base)[:, None], base, extra)
  mean_h = (rows @ h) / jnp.maximum(rows.sum(-1), 1.0)[:, None]
  f = inc.model.apply(inc.params, mean_h, method="user_final")
  return f @ h.T, rows


def _inc_topk(inc: _Incremental, state: IncrementalState, users: jnp.ndarray,
              k: int):
  scores, rows = _inc_scores(inc, state, users)
  top = jax.lax.top_k(jnp.where(rows > 0, -jnp.inf, scores), k)[1]
  return top.astype(jnp.int32), state.replace(n_queries=state.n_queries + 1)


def _inc_position(inc: _Incremental, state: IncrementalState,
                  users: jnp.ndarray, item: jnp.ndarray):
  scores, rows = _inc_scores(inc, state, users)
  pos = position_in_ranking(jnp.where(rows > 0, -jnp.inf, scores), item)
  return pos, state.replace(n_queries=state.n_queries + 1)


def _make_incremental(model, params, base_pairs: np.ndarray,
                      n_base_users: int, extra_users: int,
                      max_profile_len: int):
  """The incremental black box: exact for the PinSage target model.

  An injection only adds its user's hop-1 vector to the neighbour sums of its
  items, so a query recomputes h from the sums and f for the queried users
  from dense item-count rows, instead of re-encoding the whole interaction
  graph (the model and its scores are the same; a test checks it).
  """
  n_items = model.n_items
  base_rows = np.zeros((n_base_users, n_items), np.float32)
  np.add.at(base_rows, (base_pairs[:, 0], base_pairs[:, 1]), 1.0)
  base_rows = jnp.asarray(base_rows)
  emb = model.apply(params, method="embeddings")
  mean_emb = (base_rows @ emb) / jnp.maximum(base_rows.sum(-1), 1.0)[:, None]
  z = model.apply(params, mean_emb, method="hop1")
  inc = _Incremental(model=model, params=params, base_rows=base_rows,
                     n_base=n_base_users)
  state = IncrementalState(
      nb_sum=base_rows.T @ z, deg=base_rows.sum(0),
      extra_rows=jnp.zeros((extra_users, n_items), jnp.float32),
      n_users=jnp.asarray(n_base_users, jnp.int32),
      n_queries=jnp.zeros((), jnp.int32))
  bb = BlackBox(inject=functools.partial(_inc_inject, inc),
                topk=functools.partial(_inc_topk, inc),
                position=functools.partial(_inc_position, inc),
                n_items=n_items,
                max_profile_len=max_profile_len,
                user_capacity=n_base_users + extra_users)
  scorer = lambda st, users: _inc_scores(inc, st, users)[0]
  return bb, state, scorer


def make_blackbox(model, params, base_pairs: np.ndarray, n_base_users: int,
                  extra_users: int, extra_interactions: int,
                  max_profile_len: int, incremental: bool = False):
  """Freezes a trained target model behind the query interface.

  Args:
    model: the trained ``target_model.PinSage`` (only its shapes are used;
      ``n_users`` is replaced by the capacity).
    params: its frozen parameters.
    base_pairs: int32[R, 2] (user, item) interactions the platform starts with.
    n_base_users: users registered at the start (ids 0..n_base_users-1).
    extra_users: how many users may be injected later.
    extra_interactions: how many interactions they may bring in total.
    max_profile_len: L_max of one injected profile.
    incremental: keep the PinSage neighbour sums in the state and update
      them per injection (``_make_incremental``; same scores, much cheaper
      queries) instead of the padded interaction buffer.

  Returns:
    (BlackBox for the attacker, initial BlackBoxState, evaluator scoring
    function ``(state, users int32[B]) -> float[B, N]`` which is *not* given to
    the attacker).
  """
  if incremental:
    return _make_incremental(model, params, base_pairs, n_base_users,
                             extra_users, max_profile_len)
  cap_users = n_base_users + extra_users
  cap = len(base_pairs) + extra_interactions + max_profile_len
  frozen = model.clone(n_users=cap_users)
  inter_user = np.zeros(cap, np.int32)
  inter_item = np.full(cap, -1, np.int32)
  inter_user[:len(base_pairs)] = base_pairs[:, 0]
  inter_item[:len(base_pairs)] = base_pairs[:, 1]
  state = BlackBoxState(
      inter_user=jnp.asarray(inter_user), inter_item=jnp.asarray(inter_item),
      n_inter=jnp.asarray(len(base_pairs), jnp.int32),
      n_users=jnp.asarray(n_base_users, jnp.int32),
      n_queries=jnp.zeros((), jnp.int32))
  bb = BlackBox(
      inject=_inject,
      topk=functools.partial(_topk, frozen, params),
      position=functools.partial(_position, frozen, params),
      n_items=model.n_items,
      max_profile_len=max_profile_len,
      user_capacity=cap_users)
  scorer = functools.partial(_scores, frozen, params)
  return bb, state, scorer
