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
* ``"threshold"``: each row's exact K-th smallest distance by bisection on the
  float bits, then the set by one compaction; about a dozen fused passes over the
  row, for any K (:mod:`topk_threshold`).
* ``"partition"``: each row's K-th value by numpy's ``partition`` on a thread pool,
  on the host (:mod:`topk_partition`), for CPU backends: ``"auto"`` in
  :func:`select_neighbors` uses it there wherever :func:`resolve_method` picks the
  threshold kernel (:func:`selection_method`).

All three return the set ``lax.top_k`` returns (ties at the K-th place go to the
lower index); the threshold and partition paths return it in ascending index order
unless ``sorted=True``, then their output equals the ``"top_k"`` kernel's exactly.
The pipeline's ``method.neighbor_representations`` needs only each set's mean; on one
device with ``"auto"`` it takes it as one masked product (:func:`neighbor_means_grid`,
threshold bisection, no set compaction) and calls :func:`select_neighbors` otherwise.

The distances of Eq. (13) are in :mod:`topk_distances`. Eq. (14) needs only the set,
so the pipeline asks for ``sorted=False``.
"""
from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking
from pfcdr_jax.pfcdr.topk_distances import match_scores
from pfcdr_jax.pfcdr.topk_partition import _partition_topk
from pfcdr_jax.pfcdr.topk_threshold import (_distance_bits, _mask_at, _sorted_sample,
                                            _threshold_mask, _threshold_topk)


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


# Above this K the threshold kernel beats lax.top_k on CPU (bench.py measures both).
AUTO_THRESHOLD_MIN_K = 2048
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
    valid = np.ones((T,), bool)
  valid = jax.device_put(np.asarray(valid, bool)) if isinstance(valid, np.ndarray) else \
      jnp.asarray(valid, bool)
  chex.assert_shape(valid, (T,))
  for name, x in (("P_hat", P_hat), ("W_tgt", W_tgt)):
    bad = int(_nonfinite_rows(jnp.asarray(x)))   # one scalar back
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


@jax.jit
def _nonfinite_rows(x: jax.Array) -> jax.Array:
  """How many rows of ``x`` hold a NaN or an infinity (one compile per shape)."""
  return jnp.sum(~jnp.all(jnp.isfinite(x), axis=1))


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
                        ks: tuple[int, ...], chunk_size: int = 16,
                        host_sort: bool | None = None) -> jax.Array:
  """Eq. (14)'s neighbor mean for several K at once: [C, d] -> [C, G, d].

  Equals ``neighbor_mean(select_neighbors(P_hat, W_tgt, valid, r=r, k=K))`` for every
  ``K`` in ``ks`` (same sets, ties to the lower index; sums in another order), but
  shares the work a K grid would repeat: each chunk's distance row is computed once and
  each K costs one masked ``mask @ W`` product instead of a gather of K rows. The mask
  needs the row's K-th smallest distance. On the CPU backend (``host_sort`` None or
  True; when some K reaches ``AUTO_THRESHOLD_MIN_K``) numpy sorts each chunk's rows
  once for every K (a vectorised sort: ~8 ms for 16 rows of 124k, where XLA's CPU sort
  takes ~400 ms and a threshold search ~15 ms per K). Elsewhere (or
  ``host_sort=False``) the Ks below ``AUTO_THRESHOLD_MIN_K`` are prefixes of one
  ``lax.top_k`` and the larger ones are searched on the device (``_threshold_mask``:
  bracket + interpolation / bisection passes).

  Args:
    P_hat: [C, d] transferred prototypes; W_tgt: [T, d] target representations.
    valid: bool[T] candidate neighbors; r: the inversion's target rating.
    ks: G neighbor counts, each in ``[1, #valid]``.
    chunk_size: cold users per step of the device search (the host sort takes
      ``HOST_SORT_CHUNK``).
    host_sort: find the K-th distances by a numpy sort (None: on the CPU backend).

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
  args = (jnp.asarray(P_hat, jnp.float32), jnp.asarray(W_tgt, jnp.float32),
          jnp.asarray(valid, bool), jnp.asarray(r, jnp.float32))
  if host_sort is None:
    host_sort = jax.default_backend() == "cpu"
  if not (host_sort and max(ks) >= AUTO_THRESHOLD_MIN_K):
    return _grid_means(*args, ks=ks, chunk_size=int(min(chunk_size, C)))
  # With the rows sorted anyway, every K's set is read off its K-th distance (one
  # masked product a K: cheaper there than the top_k the device path uses for small Ks).
  return _grid_means_host_sort(*args, ks=ks, chunk_size=int(min(HOST_SORT_CHUNK, C)))


# Cold users per host sort (a chunk's distances: HOST_SORT_CHUNK x T float32).
HOST_SORT_CHUNK = 64


def _small_means(u, W_tgt, small):
  """[c, len(small), d]: the Ks below AUTO_THRESHOLD_MIN_K from one lax.top_k of the
  largest of them. Its list is sorted by (distance, index), so each smaller K's set is
  a prefix (one top_k of K = 1240 costs less than one threshold search there)."""
  # The largest negated distances (invalid users: -inf); lax.top_k puts the lower
  # index first among equals. (On the uint32 bits themselves XLA's CPU top_k takes a
  # generic path ~30x slower.)
  _, idx = jax.lax.top_k(-jax.lax.bitcast_convert_type(u, jnp.float32), max(small))
  sums = jnp.cumsum(W_tgt[idx], axis=1)                                  # [c, K, d]
  at = jnp.asarray(small, jnp.int32)
  return sums[:, at - 1, :] / at.astype(jnp.float32)[None, :, None]


def _in_order(ks, small, means_small, large, means_large):
  parts = {k: means_small[:, g] for g, k in enumerate(small)}
  parts.update({k: means_large[:, g] for g, k in enumerate(large)})
  return jnp.stack([parts[k] for k in ks], axis=1)                        # [c, G, d]


@functools.partial(jax.jit, static_argnames=("ks", "chunk_size"))
def _grid_means(P_hat, W_tgt, valid, r, *, ks, chunk_size):
  small = tuple(k for k in ks if k < AUTO_THRESHOLD_MIN_K)
  large = tuple(k for k in ks if k >= AUTO_THRESHOLD_MIN_K)
  k_large = jnp.asarray(large, jnp.int32)

  def one_chunk(P):
    u = _distance_bits(P, W_tgt, valid, r)
    none = jnp.zeros((P.shape[0], 0, W_tgt.shape[1]), jnp.float32)
    means_small = _small_means(u, W_tgt, small) if small else none
    means_large = none
    if large:
      samp = _sorted_sample(u)      # one sort of the bracket sample for the whole grid
      # One compiled body for every K (K traced), so the grid's size does not grow the
      # compile time.
      means_large = jnp.swapaxes(jax.lax.map(
          lambda k: (_threshold_mask(u, k, samp).astype(jnp.float32) @ W_tgt) / k,
          k_large), 0, 1)
    return _in_order(ks, small, means_small, large, means_large)

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)


_distances = jax.jit(_distance_bits)


@functools.partial(jax.jit, static_argnames=("n",))
def _host_sort_sums(u, W_tgt, taus, *, n):
  """[c, n, d]: ``(u <= taus[:, g]) @ W`` for each of the n columns of ``taus`` [c, n]
  (unrolled: a lax.map over them costs ~3x here on CPU)."""
  return jnp.stack([(u <= taus[:, g, None]).astype(jnp.float32) @ W_tgt for g in range(n)],
                   axis=1)


def _grid_means_host_sort(P_hat, W_tgt, valid, r, *, ks, chunk_size):
  C, T = P_hat.shape[0], W_tgt.shape[0]
  chunks = chunking.split_chunks(P_hat, chunk_size)            # [n_chunks, c, d]
  W_host = np.asarray(W_tgt)
  k_all = np.asarray(ks, np.int64)
  at = k_all - 1
  first = lambda i: _distances(chunks[i], W_tgt, valid, r)
  out, nxt = [], first(0)
  for i in range(chunks.shape[0]):
    u = nxt
    if i + 1 < chunks.shape[0]:
      nxt = first(i + 1)            # the device computes the next chunk meanwhile
    # Each row's K-th smallest distance for every K at once (the bits of non-negative
    # floats and +inf sort as their values).
    u_host = np.asarray(u)
    srt = np.sort(u_host, axis=1)
    taus = srt[:, at]
    sums = _host_sort_sums(u, W_tgt, jnp.asarray(taus), n=len(ks))
    # ``u <= tau`` holds more than K entries where later entries tie with the K-th:
    # the ties past the first ``K - #(u < tau)`` by index leave the set (the set
    # lax.top_k returns). Rows of the zero padding are skipped.
    n_real = min(chunk_size, C - i * chunk_size)
    excess = np.zeros(sums.shape, np.float32)
    tied = (srt[:, np.minimum(at + 1, T - 1)] == taus) & (at + 1 < T)[None, :]
    for row, g in np.argwhere(tied[:n_real]):
      ties = np.flatnonzero(u_host[row] == taus[row, g])
      keep = k_all[g] - np.searchsorted(srt[row], taus[row, g], side="left")
      excess[row, g] = W_host[ties[keep:]].sum(axis=0)
    out.append((sums - excess) / k_all.astype(np.float32)[None, :, None])
  return chunking.merge_chunks(jnp.stack(out), C)


def predict_from_neighbors(mean_w: jax.Array, V: jax.Array, items: jax.Array) -> jax.Array:
  """Eq. (14): ``(1/K) sum_k M_k . v_j``. mean_w [B, d] (row per rating), items int[B]."""
  return jnp.sum(mean_w * V[items], axis=-1)
