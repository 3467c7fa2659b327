"""Top-k matching of transferred prototypes and the prediction (Eq. 13-14).

For a cold user with transferred prototype ``P_hat`` [d], every target user ``t``
gets the distance ``|r - w_t . P_hat|`` (Eq. 13); the K closest VALID users are
kept (``valid[t]``: the user has target training ratings; the rest get distance
+inf, i.e. -inf on the negated scores, and can never be returned because
``k <= #valid`` is enforced). The prediction for item ``j`` is the mean over those
K users of ``w_t . v_j`` = ``(mean_t w_t) . v_j`` (Eq. 14).

Memory is bounded by chunking the cold users (``lax.map`` over padded chunks) and,
optionally, the target users (``lax.scan`` over padded target chunks, merging the
running top-k with each chunk's candidates by another ``lax.top_k``).
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np


def resolve_k(k: int | float, n_valid: int) -> int:
  """Number of neighbours: an int count, or a float fraction in (0, 1] of n_valid.

  Counts are capped at ``n_valid``; fractions round to the nearest count, >= 1.

  Raises:
    ValueError: k not positive, a fraction above 1, or no valid users.
  """
  if n_valid < 1:
    raise ValueError("no valid target users to match against")
  if isinstance(k, (bool, np.bool_)):
    raise ValueError(f"k must be a count or a fraction, got {k!r}")
  if isinstance(k, (int, np.integer)):
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    return int(min(k, n_valid))
  k = float(k)
  if not 0.0 < k <= 1.0:
    raise ValueError(f"a fractional k must be in (0, 1], got {k}")
  return int(min(n_valid, max(1, round(k * n_valid))))


def match_scores(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array,
                 r: float | jax.Array) -> jax.Array:
  """Negated Eq. (13) distances, ``-|r - P_hat @ W_tgt^T|``, -inf where invalid.

  Args:
    P_hat: [C, d] transferred prototypes.
    W_tgt: [T, d] target user representations.
    valid: bool[T].
    r: the inversion's target rating.

  Returns:
    [C, T] scores (higher is closer).
  """
  s = -jnp.abs(r - P_hat @ W_tgt.T)
  return jnp.where(valid[None, :], s, -jnp.inf)


@functools.partial(jax.jit, static_argnames=("k", "chunk_size", "target_chunk_size"))
def _topk(P_hat, W_tgt, valid, r, *, k, chunk_size, target_chunk_size):
  C, d = P_hat.shape
  T = W_tgt.shape[0]
  n_chunks = -(-C // chunk_size)
  Pp = jnp.pad(P_hat, ((0, n_chunks * chunk_size - C), (0, 0)))
  Pp = Pp.reshape(n_chunks, chunk_size, d)

  if target_chunk_size is None or target_chunk_size >= T:
    def one_chunk(P):
      return jax.lax.top_k(match_scores(P, W_tgt, valid, r), k)[1]
  else:
    tc = target_chunk_size
    n_t = -(-T // tc)
    tpad = n_t * tc - T
    Wt = jnp.pad(W_tgt, ((0, tpad), (0, 0))).reshape(n_t, tc, d)
    vt = jnp.pad(valid, (0, tpad)).reshape(n_t, tc)
    base = (jnp.arange(n_t) * tc).astype(jnp.int32)

    def one_chunk(P):
      init = (jnp.full((chunk_size, k), -jnp.inf, jnp.float32),
              jnp.zeros((chunk_size, k), jnp.int32))

      def merge(carry, xs):
        vals, idx = carry
        W_c, v_c, b = xs
        s = match_scores(P, W_c, v_c, r)                             # [cs, tc]
        cand_v = jnp.concatenate([vals, s], axis=1)
        cand_i = jnp.concatenate(
            [idx, jnp.broadcast_to(b + jnp.arange(tc, dtype=jnp.int32), s.shape)], axis=1)
        new_v, pos = jax.lax.top_k(cand_v, k)
        return (new_v, jnp.take_along_axis(cand_i, pos, axis=1)), None

      (_, idx), _ = jax.lax.scan(merge, init, (Wt, vt, base))
      return idx

  idx = jax.lax.map(one_chunk, Pp)
  return idx.reshape(n_chunks * chunk_size, k)[:C].astype(jnp.int32)


def topk_neighbors(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array | None = None, *,
                   r: float, k: int | float, chunk_size: int = 256,
                   target_chunk_size: int | None = None,
                   include_untrained: bool = False) -> jax.Array:
  """Eq. (13): indices of the K target users best matching each prototype.

  Args:
    P_hat: [C, d] transferred prototypes of the cold users.
    W_tgt: [T, d] target user representations ``user_repr``.
    valid: bool[T] users allowed as neighbours (have target training ratings);
      None means all.
    r: target rating used in the inversion.
    k: neighbour count, or a float fraction of the valid users (``resolve_k``).
    chunk_size: cold users per ``lax.map`` step.
    target_chunk_size: if set and < T, scan the target users in chunks of this
      size, merging partial top-k's (bounded memory for large T).
    include_untrained: ignore ``valid`` (parity with the public code, which
      ranks every target user, including ones without target training ratings).

  Returns:
    idx: int32[C, K], closest first.
  """
  chex.assert_rank([P_hat, W_tgt], [2, 2])
  chex.assert_equal_shape_suffix([P_hat, W_tgt], 1)
  T = W_tgt.shape[0]
  if valid is None or include_untrained:
    valid = jnp.ones((T,), bool)
  valid = jnp.asarray(valid, bool)
  chex.assert_shape(valid, (T,))
  n_valid = int(np.sum(np.asarray(valid)))
  k = resolve_k(k, n_valid)
  C = P_hat.shape[0]
  if C == 0:
    return jnp.zeros((0, k), jnp.int32)
  cs = int(min(chunk_size, C))
  tcs = None if target_chunk_size is None else int(target_chunk_size)
  return _topk(jnp.asarray(P_hat, jnp.float32), jnp.asarray(W_tgt, jnp.float32), valid,
               jnp.asarray(r, jnp.float32), k=k, chunk_size=cs, target_chunk_size=tcs)


def neighbour_mean(idx: jax.Array, W_tgt: jax.Array, *, chunk_size: int = 64) -> jax.Array:
  """Mean representation of each cold user's K neighbours (Eq. 14's ``M``).

  Gathers ``chunk_size`` cold users at a time, so memory is
  ``O(chunk_size * K * d)`` even for K in the tens of thousands.

  Args:
    idx: int[C, K] neighbour indices.
    W_tgt: [T, d] target user representations.
    chunk_size: cold users gathered per step.

  Returns:
    [C, d] mean of ``W_tgt[idx[c]]``.
  """
  chex.assert_rank([idx, W_tgt], [2, 2])
  C = idx.shape[0]
  if C == 0:
    return jnp.zeros((0, W_tgt.shape[1]), jnp.float32)
  return _neighbour_mean(jnp.asarray(idx, jnp.int32), jnp.asarray(W_tgt, jnp.float32),
                         chunk_size=int(min(chunk_size, C)))


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _neighbour_mean(idx, W_tgt, *, chunk_size):
  C, K = idx.shape
  n = -(-C // chunk_size)
  ip = jnp.pad(idx, ((0, n * chunk_size - C), (0, 0))).reshape(n, chunk_size, K)
  out = jax.lax.map(lambda i: jnp.mean(W_tgt[i], axis=1), ip)
  return out.reshape(n * chunk_size, -1)[:C]


def predict_from_neighbours(mean_w: jax.Array, V: jax.Array, items: jax.Array) -> jax.Array:
  """Eq. (14): ``(1/K) sum_k M_k . v_j``. mean_w [B, d] (row per rating), items int[B]."""
  return jnp.sum(mean_w * V[items], axis=-1)
