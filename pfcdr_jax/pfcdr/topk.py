"""Top-k matching of transferred prototypes and the prediction (Eq. 13-14).

For a cold user with transferred prototype ``P_hat`` [d], every target user ``t``
gets the distance ``|r - w_t . P_hat|`` (Eq. 13); the K closest VALID users are
kept (``valid[t]``: the user has target training ratings; the rest get distance
+inf, i.e. -inf on the negated scores, and are not returned because ``k <= #valid``
is enforced, unless a valid user's own distance is +inf: it then ties with them and
the lower index wins). A NaN distance counts as +inf in every kernel;
:func:`select_neighbors` refuses non-finite prototypes or representations. The
prediction for item ``j`` is the mean over those K users of ``w_t . v_j`` =
``(mean_t w_t) . v_j`` (Eq. 14).

Three exact selection kernels, chosen by ``method`` (``"auto"`` picks by K and
backend):

* ``"top_k"``: ``lax.top_k`` on the negated distances (closest first). Memory is
  bounded by chunking the cold users (``lax.map`` over padded chunks) and,
  optionally, the target users (``lax.scan`` over padded target chunks, merging the
  running top-k with each chunk's candidates by another ``lax.top_k``). Its cost
  grows with K (XLA's CPU TopK is a partial sort).
* ``"threshold"``: finds each row's exact K-th smallest distance by bisection on
  the float bits (a non-negative float32 orders like its uint32 bits), starting
  from a bracket read off a strided sample of the row and stopping as soon as a
  threshold splits off exactly K users; then one cumsum compacts the selected
  indices. About a dozen passes of a fused compare-and-count over the row, for
  any K. Ties at the K-th place go to the lower index, which is the set
  ``lax.top_k`` returns; the set comes in ascending index order unless
  ``sorted=True``, which sorts it by (distance, index) -- then the output equals
  the ``"top_k"`` kernel's exactly.

* ``"partition"``: the distances of a block of cold users computed by XLA, then
  each row's K-th value by numpy's ``partition`` on a thread pool (numpy releases the
  GIL while it partitions) and the set as ``dist <= K-th value``, with the same tie
  rule and output order as ``"threshold"`` (:func:`partition_rows`). Host
  memory and one device-to-host copy per block: for CPU backends, where
  ``bench.json`` measured the threshold kernel slower than numpy at large K.
  ``"auto"`` in :func:`select_neighbors` uses it on a CPU backend wherever
  :func:`resolve_method` picks the threshold kernel (:func:`selection_method`).
  The pipeline's ``method.neighbor_representations`` needs only each set's mean; on one
  device with ``"auto"`` it takes it as one masked product (:func:`neighbor_means_grid`,
  threshold bisection, no set compaction) and calls :func:`select_neighbors` otherwise.

Eq. (14) needs only the set, so the pipeline asks for ``sorted=False``.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking


def resolve_k(k: int | float, n_valid: int) -> int:
  """Number of neighbors: an int count, or a float fraction in (0, 1] of n_valid.

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


def match_distances(P_hat: jax.Array, W_tgt: jax.Array, r: float | jax.Array) -> jax.Array:
  """Eq. (13) distances ``|r - P_hat @ W_tgt^T|``: [C, d] x [T, d] -> [C, T].

  How far target user t's predicted rating of cold user c's transferred prototype is
  from the inversion's target rating r; every top-k kernel ranks by it. NaN (a
  diverged prototype or representation) becomes +inf, so all kernels order it alike.
  """
  d = jnp.abs(r - P_hat @ W_tgt.T)
  return jnp.where(jnp.isnan(d), jnp.inf, d)


def match_scores(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array,
                 r: float | jax.Array) -> jax.Array:
  """Negated Eq. (13) distances, ``-match_distances``, -inf where invalid.

  Args:
    P_hat: [C, d] transferred prototypes.
    W_tgt: [T, d] target user representations.
    valid: bool[T].
    r: the inversion's target rating.

  Returns:
    [C, T] scores (higher is closer).
  """
  return jnp.where(valid[None, :], -match_distances(P_hat, W_tgt, r), -jnp.inf)


# Above this K the threshold kernel beats lax.top_k on CPU (bench.py measures both).
AUTO_THRESHOLD_MIN_K = 2048
_INF_BITS = 0x7F800000      # uint32 bits of +inf: invalid users sort last
_SAMPLE_STRIDE = 32         # every 32nd target user brackets the K-th distance
METHODS = ("auto", "top_k", "threshold", "partition")
# Cold users per step (partition: per host block, one distance matrix of 64 x T).
DEFAULT_CHUNK = {"top_k": 256, "threshold": 16, "partition": 64}


def resolve_method(method: str, k: int) -> str:
  """``"auto"`` -> ``"top_k"`` for K < AUTO_THRESHOLD_MIN_K, else ``"threshold"``."""
  if method not in METHODS:
    raise ValueError(f"top-k method must be one of {METHODS}, got {method!r}")
  if method == "auto":
    return "top_k" if k < AUTO_THRESHOLD_MIN_K else "threshold"
  return method


def selection_method(method: str, k: int) -> str:
  """What :func:`select_neighbors` runs: :func:`resolve_method`'s choice, except that
  ``"auto"`` on a CPU backend runs ``"partition"`` where that choice is ``"threshold"``."""
  chosen = resolve_method(method, k)
  if method == "auto" and chosen == "threshold" and jax.default_backend() == "cpu":
    return "partition"
  return chosen


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
  c_hi = jnp.where(ok, c_hi, jnp.int32(T))
  # Invariant: count(< lo) < k <= count(< hi), so the K-th value is in [lo, hi).
  # Done when a threshold splits off exactly K (c_hi == k) or the interval is one
  # value wide (then that value is the K-th and ties fill the set).
  def not_done(st):
    lo, hi, c_hi = st
    return jnp.any((c_hi != k) & (hi - lo > 1))

  def halve(st):
    lo, hi, c_hi = st
    active = (c_hi != k) & (hi - lo > 1)
    mid = lo + (hi - lo) // 2
    cnt = _count_below(u, mid)
    go_up = active & (cnt < k)
    go_down = active & (cnt >= k)
    return (jnp.where(go_up, mid, lo), jnp.where(go_down, mid, hi),
            jnp.where(go_down, cnt, c_hi))

  lo, hi, c_hi = jax.lax.while_loop(not_done, halve, (lo, hi, c_hi))
  exact = c_hi == k
  tau = jnp.where(exact, hi, lo)
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
  of the row (O(T)), which is as fast there (BUILD_NOTES, issue 16).
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


NEIGHBORS_STATIC = ("k", "chunk_size", "target_chunk_size", "method", "sorted")


def _neighbors_kernel(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array,
                      r: jax.Array, *, k: int, chunk_size: int,
                      target_chunk_size: int | None = None, method: str = "top_k",
                      sorted: bool = True) -> jax.Array:  # pylint: disable=redefined-builtin
  """The jitted kernel behind ``select_neighbors`` (K and method already resolved).

  Args:
    P_hat: float32[C, d]; W_tgt: float32[T, d]; valid: bool[T]; r: float32[].
    k: neighbor count, 1 <= k <= #valid.
    chunk_size: cold users per ``lax.map`` step.
    target_chunk_size: target users per merge step of the ``"top_k"`` kernel
      (None: whole rows). The ``"threshold"`` kernel always reads whole rows; its
      memory is bounded by ``chunk_size * T``.
    method: ``"top_k"`` or ``"threshold"``.
    sorted: closest first; else (threshold kernel) ascending index order.

  Returns:
    int32[C, k].
  """
  if method == "partition":
    raise ValueError("the partition path runs on the host: call select_neighbors")
  if method == "threshold":
    return _threshold_topk(P_hat, W_tgt, valid, r, k=k, chunk_size=chunk_size,
                           sorted=sorted)
  return _topk(P_hat, W_tgt, valid, r, k=k, chunk_size=chunk_size,
               target_chunk_size=target_chunk_size)


# Module level, so that a test can jit ``_neighbors_kernel`` under
# ``chex.assert_max_traces``; ``sharding`` calls it on each device's block.
neighbors_kernel = jax.jit(_neighbors_kernel, static_argnames=NEIGHBORS_STATIC)


def _threshold_topk(P_hat, W_tgt, valid, r, *, k, chunk_size, sorted):  # pylint: disable=redefined-builtin
  """Threshold kernel, ``chunk_size`` cold users per step: [C, d] -> int32[C, k]."""
  def one_chunk(P):
    u = _distance_bits(P, W_tgt, valid, r)
    idx = _threshold_rows(u, k)
    return _sort_by_distance(u, idx) if sorted else idx

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)


def _merged_topk(P, Wt, vt, r, *, k):
  """Top-k of one block ``P`` [c, d] against target users in chunks: int32[c, k].

  ``Wt`` [n_t, tc, d] and ``vt`` bool[n_t, tc] are the target users cut by
  ``chunking.split_chunks`` (padded users invalid). The running top-k (values,
  indices) is merged with each target chunk's scores by one more ``lax.top_k`` over
  their concatenation.
  """
  tc = Wt.shape[1]
  base = (jnp.arange(Wt.shape[0]) * tc).astype(jnp.int32)
  init = (jnp.full((P.shape[0], k), -jnp.inf, jnp.float32),
          jnp.zeros((P.shape[0], k), jnp.int32))

  def merge(carry, xs):
    vals, idx = carry
    W_c, v_c, b = xs
    s = match_scores(P, W_c, v_c, r)                                   # [c, tc]
    cand_v = jnp.concatenate([vals, s], axis=1)
    cand_i = jnp.concatenate(
        [idx, jnp.broadcast_to(b + jnp.arange(tc, dtype=jnp.int32), s.shape)], axis=1)
    new_v, pos = jax.lax.top_k(cand_v, k)
    return (new_v, jnp.take_along_axis(cand_i, pos, axis=1)), None

  (_, idx), _ = jax.lax.scan(merge, init, (Wt, vt, base))
  return idx


def _topk(P_hat, W_tgt, valid, r, *, k, chunk_size, target_chunk_size):
  """``lax.top_k`` kernel, ``chunk_size`` cold users per step: [C, d] -> int32[C, k]."""
  if target_chunk_size is None or target_chunk_size >= W_tgt.shape[0]:
    def one_chunk(P):
      return jax.lax.top_k(match_scores(P, W_tgt, valid, r), k)[1]
  else:
    Wt, vt = chunking.split_chunks((W_tgt, valid), target_chunk_size)
    one_chunk = functools.partial(_merged_topk, Wt=Wt, vt=vt, r=r, k=k)
  return chunking.chunked_map(one_chunk, P_hat, chunk_size).astype(jnp.int32)


@jax.jit
def _masked_distances(P, W_tgt, valid, r):
  """``match_distances`` [c, T] with +inf where invalid (the partition path's input)."""
  return jnp.where(valid[None, :], match_distances(P, W_tgt, r), jnp.inf)


def partition_rows(dist: np.ndarray, k: int, sorted: bool) -> np.ndarray:  # pylint: disable=redefined-builtin
  """Exact K smallest entries of each row of ``dist`` [c, T], by ``np.partition``.

  The K-th smallest value ``t`` of each row comes from a partition of the values (no
  index array); the set is then ``dist <= t``, read off in ascending index order by one
  ``flatnonzero``. Ties at the K-th value go to the lower index (the set ``lax.top_k``
  returns): in a row with more entries equal to ``t`` than the set has room for, the
  last ones are dropped. Returns int32[c, K] in ascending index order, or by
  (distance, index) if `sorted`.
  """
  kth = np.partition(dist, k - 1, axis=1)[:, k - 1:k]                  # [c, 1]
  keep = dist <= kth
  for i in np.flatnonzero(np.sum(keep, axis=1) > k):   # rare: exact ties at the K-th place
    ties = np.flatnonzero(dist[i] == kth[i, 0])
    keep[i, ties[len(ties) - (int(keep[i].sum()) - k):]] = False
  out = (np.flatnonzero(keep) % dist.shape[1]).reshape(dist.shape[0], k)
  if sorted:
    order = np.argsort(np.take_along_axis(dist, out, 1), axis=1, kind="stable")
    out = np.take_along_axis(out, order, 1)
  return out.astype(np.int32)


def _host_threads() -> int:
  """CPU cores this process may run on (its affinity mask, not the machine's count)."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:      # no sched_getaffinity (macOS, Windows)
    return os.cpu_count() or 1


def _partition_topk(P_hat, W_tgt, valid, r, *, k, chunk_size, sorted):  # pylint: disable=redefined-builtin
  """The partition path: [C, d] -> int32[C, k], blocks of `chunk_size` cold users,
  one worker thread per CPU core (the last block padded, so one compilation)."""
  C = P_hat.shape[0]
  P = chunking.pad_rows(jnp.asarray(P_hat, jnp.float32), chunk_size)
  W, v, rr = jnp.asarray(W_tgt, jnp.float32), jnp.asarray(valid), jnp.asarray(r, jnp.float32)

  def block(lo):
    dist = np.asarray(_masked_distances(P[lo:lo + chunk_size], W, v, rr))
    return partition_rows(dist[:C - lo], k, sorted)    # padded rows: not partitioned

  with concurrent.futures.ThreadPoolExecutor(_host_threads()) as pool:
    out = np.concatenate(list(pool.map(block, range(0, P.shape[0], chunk_size))))
  return jnp.asarray(out)


def select_neighbors(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array | None = None, *,
                   r: float, k: int | float, chunk_size: int | None = None,
                   target_chunk_size: int | None = None,
                   include_untrained: bool = False, method: str = "auto",
                   sorted: bool = True) -> jax.Array:  # pylint: disable=redefined-builtin
  """Eq. (13): indices of the K target users best matching each prototype.

  Args:
    P_hat: [C, d] transferred prototypes of the cold users.
    W_tgt: [T, d] target user representations ``user_repr``.
    valid: bool[T] users allowed as neighbors (have target training ratings);
      None means all.
    r: target rating used in the inversion.
    k: neighbor count, or a float fraction of the valid users (``resolve_k``).
    chunk_size: cold users per ``lax.map`` step (partition: per host block); None:
      ``DEFAULT_CHUNK`` of the method (the threshold kernel re-reads a ``chunk x T``
      block a dozen times, so a small block that stays in cache is faster).
    target_chunk_size: if set and < T, scan the target users in chunks of this
      size, merging partial top-k's (bounded memory for large T; the ``"top_k"``
      kernel only: the others hold a ``chunk x T`` block).
    include_untrained: ignore ``valid`` (parity with the public code, which
      ranks every target user, including ones without target training ratings).
    method: ``"auto"`` (by K and backend, see ``selection_method``), ``"top_k"``,
      ``"threshold"`` or ``"partition"``; all exact, with the same set.
    sorted: closest first (ties: lower index first). ``False`` lets the threshold
      and partition paths return the set in ascending index order (enough for Eq. 14).

  Returns:
    idx: int32[C, K].

  Raises:
    ValueError: ``P_hat`` or ``W_tgt`` has a NaN or infinite entry (counted).
  """
  chex.assert_rank([P_hat, W_tgt], [2, 2])
  chex.assert_equal_shape_suffix([P_hat, W_tgt], 1)
  T = W_tgt.shape[0]
  if valid is None or include_untrained:
    valid = jnp.ones((T,), bool)
  valid = jnp.asarray(valid, bool)
  chex.assert_shape(valid, (T,))
  for name, x in (("P_hat", P_hat), ("W_tgt", W_tgt)):
    bad = int(jnp.sum(~jnp.all(jnp.isfinite(jnp.asarray(x)), axis=1)))   # one scalar back
    if bad:
      raise ValueError(f"select_neighbors: {bad} of {x.shape[0]} rows of {name} have NaN or "
                       "infinite entries (a diverged inversion or pretraining?)")
  n_valid = int(np.sum(np.asarray(valid)))
  k = resolve_k(k, n_valid)
  C = P_hat.shape[0]
  if C == 0:
    return jnp.zeros((0, k), jnp.int32)
  method = selection_method(method, k)
  cs = int(min(DEFAULT_CHUNK[method] if chunk_size is None else chunk_size, C))
  if method == "partition":
    return _partition_topk(P_hat, W_tgt, valid, r, k=k, chunk_size=cs, sorted=bool(sorted))
  tcs = None if target_chunk_size is None else int(target_chunk_size)
  return neighbors_kernel(jnp.asarray(P_hat, jnp.float32), jnp.asarray(W_tgt, jnp.float32),
                          valid, jnp.asarray(r, jnp.float32), k=k, chunk_size=cs,
                          target_chunk_size=tcs, method=method,
                          sorted=bool(sorted))


def neighbor_mean(idx: jax.Array, W_tgt: jax.Array, *, chunk_size: int = 64) -> jax.Array:
  """Mean representation of each cold user's K neighbors (Eq. 14's ``M``).

  Gathers ``chunk_size`` cold users at a time, so memory is
  ``O(chunk_size * K * d)`` even for K in the tens of thousands.

  Args:
    idx: int[C, K] neighbor indices.
    W_tgt: [T, d] target user representations.
    chunk_size: cold users gathered per step.

  Returns:
    [C, d] mean of ``W_tgt[idx[c]]``.
  """
  chex.assert_rank([idx, W_tgt], [2, 2])
  C = idx.shape[0]
  if C == 0:
    return jnp.zeros((0, W_tgt.shape[1]), jnp.float32)
  return _neighbor_mean(jnp.asarray(idx, jnp.int32), jnp.asarray(W_tgt, jnp.float32),
                         chunk_size=int(min(chunk_size, C)))


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _neighbor_mean(idx, W_tgt, *, chunk_size):
  return chunking.chunked_map(lambda i: jnp.mean(W_tgt[i], axis=1), idx, chunk_size)


def neighbor_means_grid(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array, *, r: float,
                        ks: tuple[int, ...], chunk_size: int = 16) -> jax.Array:
  """Eq. (14)'s neighbor mean for several K at once: [C, d] -> [C, G, d].

  Equals ``neighbor_mean(select_neighbors(P_hat, W_tgt, valid, r=r, k=K))`` for every
  ``K`` in ``ks`` (same sets, ties to the lower index; sums in another order), but
  shares the work a K grid would repeat: each chunk's distance row is computed once,
  each K costs one threshold search (``_threshold_mask``: bracket + bisection, no
  compaction) and one ``mask @ W`` product instead of a gather of K rows.

  Args:
    P_hat: [C, d] transferred prototypes; W_tgt: [T, d] target representations.
    valid: bool[T] candidate neighbors; r: the inversion's target rating.
    ks: G neighbor counts, each in ``[1, #valid]``.
    chunk_size: cold users per step.

  Returns:
    float32[C, G, d].
  """
  chex.assert_rank([P_hat, W_tgt, valid], [2, 2, 1])
  n_valid = int(np.sum(np.asarray(valid)))
  ks = tuple(int(k) for k in ks)
  if not ks or min(ks) < 1 or max(ks) > n_valid:
    raise ValueError(f"every K must lie in [1, {n_valid}] (the valid target users), got {ks}")
  C = P_hat.shape[0]
  if C == 0:
    return jnp.zeros((0, len(ks), W_tgt.shape[1]), jnp.float32)
  return _grid_means(jnp.asarray(P_hat, jnp.float32), jnp.asarray(W_tgt, jnp.float32),
                     jnp.asarray(valid, bool), jnp.asarray(r, jnp.float32), ks=ks,
                     chunk_size=int(min(chunk_size, C)))


@functools.partial(jax.jit, static_argnames=("ks", "chunk_size"))
def _grid_means(P_hat, W_tgt, valid, r, *, ks, chunk_size):
  k_arr = jnp.asarray(ks, jnp.int32)

  def one_chunk(P):
    u = _distance_bits(P, W_tgt, valid, r)
    samp = _sorted_sample(u)      # one sort of the bracket sample for the whole grid
    # One compiled body for every K (K traced), so the grid's size does not grow the
    # compile time.
    per_k = jax.lax.map(
        lambda k: (_threshold_mask(u, k, samp).astype(jnp.float32) @ W_tgt) / k, k_arr)
    return jnp.swapaxes(per_k, 0, 1)                                    # [c, G, d]

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)


def predict_from_neighbors(mean_w: jax.Array, V: jax.Array, items: jax.Array) -> jax.Array:
  """Eq. (14): ``(1/K) sum_k M_k . v_j``. mean_w [B, d] (row per rating), items int[B]."""
  return jnp.sum(mean_w * V[items], axis=-1)
