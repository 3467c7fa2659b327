"""Query-only interface to the frozen target recommender (Sections 3 and 4.5).

The attacker may (i) inject a user profile, (ii) ask for the top-k list of given
users, and (iii) read how many queries it made -- nothing else. Attack code
imports only this module (a test parses the imports).

Injections write into fixed-capacity buffers: an interaction list of ``C``
(user, item) slots with a live count and a user count, so every injection and
query has the same shapes and never recompiles. A profile of up to ``L_max``
items is written with one ``dynamic_update_slice``; ``C`` includes ``L_max``
slack so the write is never clamped.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

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
  """

  inject: Callable
  topk: Callable
  n_items: int
  max_profile_len: int
  user_capacity: int


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


def _topk(model, params, state: BlackBoxState, users: jnp.ndarray, k: int):
  scores = _scores(model, params, state, users)
  # Row of each interaction's user within this query (B = not queried).
  n_q = users.shape[0]
  row_of = jnp.full((model.n_users,), n_q, jnp.int32).at[users].set(
      jnp.arange(n_q, dtype=jnp.int32))
  live = jnp.arange(state.inter_item.shape[0]) < state.n_inter
  rows = jnp.where(live & (state.inter_item >= 0),
                   row_of[jnp.clip(state.inter_user, 0, model.n_users - 1)],
                   n_q)
  scores = scores.at[rows, jnp.maximum(state.inter_item, 0)].set(
      -jnp.inf, mode="drop")
  top = jax.lax.top_k(scores, k)[1].astype(jnp.int32)
  return top, state.replace(n_queries=state.n_queries + 1)


def make_blackbox(model, params, base_pairs: np.ndarray, n_base_users: int,
                  extra_users: int, extra_interactions: int,
                  max_profile_len: int):
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

  Returns:
    (BlackBox for the attacker, initial BlackBoxState, evaluator scoring
    function ``(state, users int32[B]) -> float[B, N]`` which is *not* given to
    the attacker).
  """
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
      n_items=model.n_items,
      max_profile_len=max_profile_len,
      user_capacity=cap_users)
  scorer = functools.partial(_scores, frozen, params)
  return bb, state, scorer
