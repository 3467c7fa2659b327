"""What the attacker knows and holds before attacking (Section 4.2).

``AttackerData`` is the source platform arranged by leaf slot of the
clustering tree, with the attacker's pretend accounts: their profiles
(``make_pretend_profiles``) and their user ids once created on the platform
through the black box (``register_pretend_users``).
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import tree as tree_lib


@flax.struct.dataclass
class AttackerData:
  """What the attacker knows, indexed by leaf slot of the clustering tree.

  Attributes:
    leaf_profiles: int32[S, L_max] time-ordered source profiles (target item
      ids, -1 padded) of the user at each leaf slot.
    leaf_len: int32[S] their lengths (0 for empty slots).
    leaf_p: float32[S, e] MF user vectors p^B (0 for empty slots).
    leaf_valid: bool[S] slot holds a user.
    q: float32[N, e] MF item vectors q^B in target item ids.
    pretend_users: int32[P] ids of the attacker's pretend accounts.
    pretend_profiles: int32[P, Lp] their profiles (-1 padded).
  """

  leaf_profiles: jnp.ndarray
  leaf_len: jnp.ndarray
  leaf_p: jnp.ndarray
  leaf_valid: jnp.ndarray
  q: jnp.ndarray
  pretend_users: jnp.ndarray
  pretend_profiles: jnp.ndarray


def make_attacker_data(tree: tree_lib.ClusterTree, profiles: np.ndarray,
                       lengths: np.ndarray, p: np.ndarray, q: np.ndarray,
                       pretend_users: np.ndarray,
                       pretend_profiles: np.ndarray) -> AttackerData:
  """Arranges the source platform by leaf slot.

  Args:
    tree: clustering tree over the source users.
    profiles: int32[U_B, L_max].
    lengths: int32[U_B].
    p: float[U_B, e].
    q: float[N, e].
    pretend_users: int32[P].
    pretend_profiles: int32[P, Lp].

  Returns:
    AttackerData.
  """
  lu = tree.leaf_user
  valid = lu >= 0
  safe = np.maximum(lu, 0)
  return AttackerData(
      leaf_profiles=jnp.asarray(np.where(valid[:, None], profiles[safe], -1),
                                jnp.int32),
      leaf_len=jnp.asarray(np.where(valid, lengths[safe], 0), jnp.int32),
      leaf_p=jnp.asarray(np.where(valid[:, None], p[safe], 0.0), jnp.float32),
      leaf_valid=jnp.asarray(valid),
      q=jnp.asarray(q, jnp.float32),
      pretend_users=jnp.asarray(pretend_users, jnp.int32),
      pretend_profiles=jnp.asarray(pretend_profiles, jnp.int32))


def make_pretend_profiles(profiles: np.ndarray, lengths: np.ndarray,
                          n_pretend: int, max_len: int, min_len: int,
                          seed: int) -> np.ndarray:
  """Profiles of the attacker's pretend accounts (Section 4.2, U*^A).

  The attacker creates its accounts before any attack with realistic
  histories: each is a random contiguous time window of ``max_len`` items
  (or the whole profile if shorter) of a distinct random source user with at
  least ``min_len`` items. They are the same for all target items.

  Args:
    profiles: int32[U_B, L_max] source profiles.
    lengths: int32[U_B].
    n_pretend: P.
    max_len: Lp.
    min_len: minimum source profile length to copy from.
    seed: numpy seed.

  Returns:
    int32[P, max_len] (-1 padded).
  """
  rng = np.random.default_rng(seed)
  pool = np.flatnonzero(lengths >= min_len)
  users = rng.choice(pool, size=n_pretend, replace=False)
  out = np.full((n_pretend, max_len), -1, np.int32)
  for r, u in enumerate(users):
    n = int(lengths[u])
    keep = min(n, max_len)
    start = int(rng.integers(0, n - keep + 1))
    out[r, :keep] = profiles[u, start:start + keep]
  return out


def register_pretend_users(bb: blackbox.BlackBox, state, profiles: np.ndarray):
  """Creates the pretend accounts on the platform through ``inject``.

  Args:
    bb: the black box.
    state: its state before any attack.
    profiles: int32[P, Lp] from ``make_pretend_profiles``.

  Returns:
    (state with the accounts, their user ids int32[P]).
  """
  padded = np.full((profiles.shape[0], bb.max_profile_len), -1, np.int32)
  padded[:, :profiles.shape[1]] = profiles
  lengths = (profiles >= 0).sum(-1).astype(np.int32)

  def body(st, row):
    st, uid = bb.inject(st, row[0], row[1])
    return st, uid

  state, uids = jax.jit(lambda s, a, b: jax.lax.scan(body, s, (a, b)))(
      state, jnp.asarray(padded), jnp.asarray(lengths))
  return state, uids


def held_out_pretend_users(train_pairs: np.ndarray, n_users: int, n: int,
                           min_len: int, seed: int):
  """Pretend accounts that behave like target users (Section 4.2).

  ``n`` real target users with at least ``min_len`` training interactions,
  drawn once by seed; the caller removes them from evaluation.

  Returns:
    (user ids int32[n] sorted, their training profiles int32[n, L], -1
    padded; used to exclude pretend users who already have v*).
  """
  counts = np.bincount(train_pairs[:, 0], minlength=n_users)
  pool = np.flatnonzero(counts >= min_len)
  if len(pool) < n:
    raise ValueError(f"only {len(pool)} target users have >= {min_len} "
                     f"interactions for {n} pretend accounts")
  users = np.sort(np.random.default_rng(seed).choice(pool, n, replace=False))
  profiles = np.full((n, int(counts[users].max())), -1, np.int32)
  for r, u in enumerate(users):
    items = train_pairs[train_pairs[:, 0] == u, 1]
    profiles[r, :len(items)] = items
  return users.astype(np.int32), profiles
