"""The ``"threshold"`` top-k kernel: each row's exact K smallest distances.

Finds each row's exact K-th smallest distance by a search on the float bits (a
non-negative float32 orders like its uint32 bits) that alternates interpolation on the
counts and bisection, starting from a bracket read off a strided sample of the row and
stopping as soon as a threshold splits off exactly K users (on a music2movie-sized K
grid, 7 % faster than bisection alone, the same sets); then one cumsum compacts the selected indices. About a dozen passes of a fused
compare-and-count over the row, for any K. Ties at the K-th place go to the lower
index, which is the set ``lax.top_k`` returns; the set comes in ascending index order
unless ``sorted=True``, which sorts it by (distance, index) -- then the output equals
the ``"top_k"`` kernel's exactly.

The bisection alone (:func:`_threshold_mask`, a mask, no set compaction) also gives
:func:`topk.neighbor_means_grid` its sets.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from pfcdr_jax.infra import chunking
from pfcdr_jax.pfcdr.topk_distances import match_distances


_INF_BITS = 0x7F800000      # uint32 bits of +inf: invalid users sort last
_SAMPLE_STRIDE = 32         # every 32nd target user brackets the K-th distance


def _distance_bits(P, W_tgt, valid, r):
  """uint32 bits of ``|r - P W^T|`` [c, T]; +inf bits where invalid (orders as floats)."""
  s = match_distances(P, W_tgt, r)
  return jnp.where(valid[None, :], jax.lax.bitcast_convert_type(s, jnp.uint32),
                   jnp.uint32(_INF_BITS))


def _count_below(u, t):
  """Per row, how many entries of ``u`` [c, T] are < ``t`` [c]."""
  return jnp.sum(u < t[:, None], axis=1, dtype=jnp.int32)


def _sorted_sample(u):
  """The strided sample of each row of ``u`` [c, T] that brackets a K-th value, sorted."""
  return jnp.sort(u[:, ::_SAMPLE_STRIDE], axis=1)                      # [c, S]


def _threshold_mask(u, k, samp=None):
  """Exact K smallest of each row of ``u`` [c, T] (uint32 float bits) as a mask.

  ``samp``: ``_sorted_sample(u)`` when the caller already has it (a K grid shares it).
  Returns bool[c, T] with K True per row; ties at the K-th value go to the lower
  index (the set ``lax.top_k`` returns).
  """
  c, T = u.shape
  top = jnp.uint32(_INF_BITS + 1)
  # Bracket from a strided sample: the sample's order statistics around rank
  # k * S / T, widened by ~4 binomial standard deviations; verified below and
  # replaced by the full range where it does not hold.
  samp = _sorted_sample(u) if samp is None else samp
  S = samp.shape[1]
  # k may be a static int or a traced int32 (neighbor_means_grid scans over K).
  j = jnp.asarray(k, jnp.float32) * S / T
  margin = 4.0 * jnp.sqrt(jnp.maximum(j * (1.0 - j / S), 0.0)) + 2.0
  j_lo = jnp.floor(j - margin).astype(jnp.int32)
  j_hi = jnp.floor(j + margin).astype(jnp.int32) + 1
  take = lambda jj: jax.lax.dynamic_index_in_dim(samp, jnp.clip(jj, 0, S - 1), axis=1,
                                                 keepdims=False)
  lo = jnp.where(j_lo >= 0, take(j_lo), jnp.uint32(0))
  hi = jnp.where(j_hi < S, take(j_hi) + 1, top)
  c_lo, c_hi = _count_below(u, lo), _count_below(u, hi)
  ok = (c_lo < k) & (c_hi >= k)
  lo = jnp.where(ok, lo, jnp.uint32(0))
  hi = jnp.where(ok, hi, top)
  c_lo = jnp.where(ok, c_lo, jnp.int32(0))
  c_hi = jnp.where(ok, c_hi, jnp.int32(T))
  k_f = jnp.asarray(k, jnp.float32)
  # Invariant: count(< lo) = c_lo < k <= c_hi = count(< hi), so the K-th value is in
  # [lo, hi). Done when a threshold splits off exactly K (c_hi == k) or the interval is
  # one value wide (then that value is the K-th and ties fill the set). Steps alternate
  # between interpolation on the counts (float bits of one octave are linear in the
  # value, so on a smooth row it lands within a few users of the K-th) and bisection
  # (which bounds the passes by twice bisection's). Any path ends in the same set.
  def not_done(st):
    lo, hi, c_lo, c_hi, _ = st
    return jnp.any((c_hi != k) & (hi - lo > 1))

  def step(st):
    lo, hi, c_lo, c_hi, it = st
    active = (c_hi != k) & (hi - lo > 1)
    width = hi - lo
    # Interpolation on the values (finite brackets only; bits are log-spaced across
    # octaves, so the values, not the bits, are what a smooth row is linear in).
    frac = (k_f - c_lo.astype(jnp.float32)) / jnp.maximum(c_hi - c_lo, 1).astype(jnp.float32)
    lo_v = jax.lax.bitcast_convert_type(lo, jnp.float32)
    hi_v = jax.lax.bitcast_convert_type(jnp.minimum(hi, jnp.uint32(_INF_BITS - 1)), jnp.float32)
    guess = jax.lax.bitcast_convert_type(lo_v + frac * (hi_v - lo_v), jnp.uint32)
    interp = (it % 2 == 0) & (hi < jnp.uint32(_INF_BITS))
    mid = jnp.where(interp, jnp.clip(guess, lo + 1, hi - 1), lo + width // 2)
    cnt = _count_below(u, mid)
    go_up = active & (cnt < k)
    go_down = active & (cnt >= k)
    return (jnp.where(go_up, mid, lo), jnp.where(go_down, mid, hi),
            jnp.where(go_up, cnt, c_lo), jnp.where(go_down, cnt, c_hi), it + 1)

  lo, hi, _, c_hi, _ = jax.lax.while_loop(not_done, step, (lo, hi, c_lo, c_hi, jnp.int32(0)))
  return _mask_at(u, k, jnp.where(c_hi == k, hi, lo))


def _mask_at(u, k, tau):
  """The K smallest of each row of ``u`` [c, T] given ``tau`` uint32[c]: each row's
  K-th smallest value, or a value that exactly K entries lie below. Ties at ``tau``
  go to the lower index."""
  less = u < tau[:, None]
  need = k - jnp.sum(less, axis=1, dtype=jnp.int32)      # 0 where exact
  eq = (u == tau[:, None]) & (need > 0)[:, None]
  # Ties beyond the one threshold element are rare: only then rank the ties.
  n_eq = jnp.sum(eq, axis=1, dtype=jnp.int32)
  return jax.lax.cond(
      jnp.all(n_eq == need), lambda: less | eq,
      lambda: less | (eq & (_exclusive_prefix_count(eq) < need[:, None])))


def _threshold_rows(u, k):
  """Exact K smallest of each row of ``u`` [c, T] (uint32 float bits) as a set.

  Returns int32[c, k], ascending index order; ties at the K-th value go to the
  lower index. For K <= T / 4 the set is read off the packed mask by gathers
  (:func:`_compact_words`, O(T / 32 + K) per row); above, by one permutation scatter
  of the row (O(T)), which is as fast there.
  """
  T = u.shape[1]
  sel = _threshold_mask(u, k)
  if 4 * k <= T:
    return _compact_words(_pack_words(sel), k)
  # Stable partition: the k selected go to slots 0..k-1 in index order, the rest
  # after them, so the scatter is a permutation (every slot written once, all in
  # bounds: no per-element bounds check, ~2x faster than dropping the rest).
  io = jax.lax.broadcasted_iota(jnp.int32, u.shape, 1)
  before = _exclusive_prefix_count(sel)
  pos = jnp.where(sel, before, k + io - before)
  return jax.vmap(lambda p, i: jnp.zeros((T,), jnp.int32).at[p].set(
      i, mode="promise_in_bounds", unique_indices=True))(pos, io)[:, :k]


def _pack_words(mask):
  """bool [c, T] -> uint32 [c, ceil(T / 32)]: bit b of word w is ``mask[:, 32 w + b]``."""
  c, T = mask.shape
  nw = -(-T // 32)
  m = jnp.pad(mask, ((0, 0), (0, nw * 32 - T))).reshape(c, nw, 32)
  shifts = jnp.arange(32, dtype=jnp.uint32)[None, None, :]
  return jnp.sum(m.astype(jnp.uint32) << shifts, axis=2, dtype=jnp.uint32)


def _select_bit(x, q):
  """Position (0..31) of the ``q``-th (0-based) set bit of each uint32 ``x``: a binary
  search on the popcounts of its low bits."""
  pos = jnp.zeros(x.shape, jnp.uint32)
  for step in (16, 8, 4, 2, 1):
    low = (x >> pos) & ((jnp.uint32(1) << jnp.uint32(step)) - jnp.uint32(1))
    cnt = jax.lax.population_count(low).astype(jnp.int32)
    go = cnt <= q
    pos = jnp.where(go, pos + jnp.uint32(step), pos)
    q = jnp.where(go, q - cnt, q)
  return pos.astype(jnp.int32)


def _compact_words(words, k):
  """Indices of the set bits of each row of ``words`` [c, nw] (exactly ``k`` per row),
  ascending: int32[c, k].

  Output slot p holds the p-th set bit: its word is the last non-empty word whose
  first slot (the prefix of the popcounts) is <= p -- a scatter-max of each word's
  index to its first slot (nw writes, not T) and a running max over the k slots --
  and its place in the word is the (p - first slot)-th set bit.
  """
  c, nw = words.shape
  cnt = jax.lax.population_count(words).astype(jnp.int32)
  first = jnp.cumsum(cnt, axis=1, dtype=jnp.int32) - cnt
  wid = jnp.broadcast_to(jnp.arange(nw, dtype=jnp.int32), (c, nw))
  slot = jnp.where(cnt > 0, first, k)                      # empty words: slot k, cut
  start = jax.vmap(lambda s, w: jnp.full((k + 1,), -1, jnp.int32).at[s].max(w))(slot, wid)
  word_of = jax.lax.cummax(start[:, :k], axis=1)
  q = jnp.arange(k, dtype=jnp.int32)[None] - jnp.take_along_axis(first, word_of, axis=1)
  return word_of * 32 + _select_bit(jnp.take_along_axis(words, word_of, axis=1), q)


def _exclusive_prefix_count(mask):
  """``cumsum(mask, axis=1) - mask`` for bool [c, T], without a length-T scan.

  The row is packed into 32-bit words: each position's count is the prefix of the
  word popcounts (a scan 32x shorter) plus the popcount of its own word below it.
  (3,606 rows of 123,960 on 2 CPU cores: 0.5 s, against 2.1 s for ``jnp.cumsum``.)
  """
  c, T = mask.shape
  nw = -(-T // 32)
  shifts = jnp.arange(32, dtype=jnp.uint32)[None, None, :]
  words = _pack_words(mask)                                             # [c, nw]
  cnt = jax.lax.population_count(words).astype(jnp.int32)
  base = jnp.cumsum(cnt, axis=1, dtype=jnp.int32) - cnt
  below = (jnp.uint32(1) << shifts) - jnp.uint32(1)                     # [1, 1, 32]
  inword = jax.lax.population_count(words[:, :, None] & below).astype(jnp.int32)
  return (base[:, :, None] + inword).reshape(c, nw * 32)[:, :T]


def _sort_by_distance(u, idx):
  """Reorders each row of ``idx`` [c, k] (ascending indices) closest first.

  One sort key: the stable sort keeps equal distances in index order.
  """
  d = jnp.take_along_axis(u, idx, axis=1)
  return jax.lax.sort((d, idx), dimension=1, num_keys=1, is_stable=True)[1]


def _threshold_topk(P_hat, W_tgt, valid, r, *, k, chunk_size, sorted):  # pylint: disable=redefined-builtin
  """Threshold kernel, ``chunk_size`` cold users per step: [C, d] -> int32[C, k]."""
  def one_chunk(P):
    u = _distance_bits(P, W_tgt, valid, r)
    idx = _threshold_rows(u, k)
    return _sort_by_distance(u, idx) if sorted else idx

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)
