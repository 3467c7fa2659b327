"""The ``"partition"`` top-k path: each row's K smallest distances on the host.

The distances of a block of cold users computed by XLA, then each row's K-th value by
numpy's ``partition`` on a thread pool (numpy releases the GIL while it partitions)
and the set as ``dist <= K-th value``, with the same tie rule and output order as
``"threshold"`` (:func:`partition_rows`). Host memory and one device-to-host copy per
block: for CPU backends, where ``bench.json`` measured the threshold kernel slower
than numpy at large K.
"""
from __future__ import annotations

import concurrent.futures
import os

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking
from pfcdr_jax.pfcdr.topk_distances import match_distances


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
