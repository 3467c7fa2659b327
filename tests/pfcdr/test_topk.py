"""Top-k matching (Eq. 13) and the neighbor-mean prediction (Eq. 14)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.pfcdr import topk
from pfcdr_jax.pfcdr import topk_distances
from pfcdr_jax.pfcdr import topk_partition
from pfcdr_jax.pfcdr import topk_threshold


def _data(C=13, T=57, d=5, seed=0, frac_valid=0.7):
  rng = np.random.default_rng(seed)
  P = rng.normal(size=(C, d)).astype(np.float32)
  W = rng.normal(size=(T, d)).astype(np.float32)
  valid = rng.random(T) < frac_valid
  return P, W, valid


def _np_topk(P, W, valid, r, k):
  dist = np.abs(r - P.astype(np.float64) @ W.T.astype(np.float64))
  dist[:, ~valid] = np.inf
  return np.argsort(dist, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("chunk", [1, 4, 13, 64])
def test_matches_numpy_argsort_and_excludes_invalid(k, chunk):
  P, W, valid = _data()
  idx = np.asarray(topk.select_neighbors(jnp.asarray(P), jnp.asarray(W), jnp.asarray(valid),
                                       r=5.0, k=k, chunk_size=chunk))
  assert idx.shape == (13, k) and idx.dtype == np.int32
  np.testing.assert_array_equal(idx, _np_topk(P, W, valid, 5.0, k))
  assert valid[idx].all()


def test_k_equal_to_all_valid_never_returns_excluded_rows():
  P, W, valid = _data(frac_valid=0.3)
  n_valid = int(valid.sum())
  idx = np.asarray(topk.select_neighbors(P, W, valid, r=3.0, k=1.0, chunk_size=4))
  assert idx.shape[1] == n_valid
  assert valid[idx].all()
  assert all(len(set(row)) == n_valid for row in idx)


@pytest.mark.parametrize("tchunk", [1, 7, 16, 56])
@pytest.mark.parametrize("k", [3, 20])
def test_target_chunked_equals_unchunked(tchunk, k):
  P, W, valid = _data(seed=1)
  a = topk.select_neighbors(P, W, valid, r=4.0, k=k, chunk_size=5)
  b = topk.select_neighbors(P, W, valid, r=4.0, k=k, chunk_size=5, target_chunk_size=tchunk)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_include_untrained_and_valid_none():
  P, W, valid = _data(seed=2)
  a = topk.select_neighbors(P, W, valid, r=5.0, k=6, include_untrained=True)
  b = topk.select_neighbors(P, W, None, r=5.0, k=6)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(a), _np_topk(P, W, np.ones_like(valid), 5.0, 6))


def test_neighbor_mean_and_prediction_match_numpy():
  P, W, valid = _data(seed=3)
  idx = topk.select_neighbors(P, W, valid, r=5.0, k=4)
  mean_w = topk.neighbor_mean(idx, jnp.asarray(W), chunk_size=3)
  ref = W[np.asarray(idx)].mean(axis=1)
  np.testing.assert_allclose(np.asarray(mean_w), ref, rtol=1e-5, atol=1e-6)
  V = np.random.default_rng(4).normal(size=(9, 5)).astype(np.float32)
  items = np.arange(13) % 9
  pred = topk.predict_from_neighbors(mean_w, jnp.asarray(V), jnp.asarray(items))
  ref_pred = np.mean(np.einsum("ckd,cd->ck", W[np.asarray(idx)], V[items]), axis=1)
  np.testing.assert_allclose(np.asarray(pred), ref_pred, rtol=1e-4, atol=1e-5)


def test_resolve_k():
  assert topk.resolve_k(5, 100) == 5
  assert topk.resolve_k(500, 100) == 100
  assert topk.resolve_k(0.1, 100) == 10
  assert topk.resolve_k(1.0, 100) == 100
  assert topk.resolve_k(0.001, 100) == 1
  for bad in (0, -3, 1.5, 0.0):
    with pytest.raises(ValueError):
      topk.resolve_k(bad, 100)
  with pytest.raises(ValueError):
    topk.resolve_k(3, 0)


def _tied_data(C=9, T=300, seed=3):
  """Prototypes and users on a coarse grid, so many distances tie exactly."""
  rng = np.random.default_rng(seed)
  P = rng.integers(-2, 3, size=(C, 3)).astype(np.float32)
  W = rng.integers(-2, 3, size=(T, 3)).astype(np.float32)
  valid = rng.random(T) < 0.8
  return P, W, valid


@pytest.mark.parametrize("data", ["continuous", "tied"])
@pytest.mark.parametrize("k,chunk", [(1, 3), (2, 16), (7, 3), (50, 16), (128, 3),
                                     ("all", 16)])
def test_threshold_kernel_equals_top_k_kernel(data, k, chunk):
  P, W, valid = _data(C=11, T=300, seed=4) if data == "continuous" else _tied_data()
  k = int(valid.sum()) if k == "all" else k
  ref = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="top_k"))
  srt = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="threshold",
                                       chunk_size=chunk, sorted=True))
  np.testing.assert_array_equal(srt, ref)             # same order, ties by index
  st = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="threshold",
                                      chunk_size=chunk, sorted=False))
  np.testing.assert_array_equal(st, np.sort(ref, axis=1))   # same set, index order
  assert valid[st].all()
  for srt_ in (True, False):                          # the host path: the same outputs
    host = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="partition",
                                          chunk_size=chunk, sorted=srt_))
    np.testing.assert_array_equal(host, ref if srt_ else np.sort(ref, axis=1))


def test_threshold_kernel_matches_numpy_on_large_rows():
  # Rows long enough that the sampled bracket is used (T >> the sample stride).
  P, W, valid = _data(C=6, T=5000, seed=5)
  for k in (1, 999, int(valid.sum())):
    idx = np.asarray(topk.select_neighbors(P, W, valid, r=3.0, k=k, method="threshold"))
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(_np_topk(P, W, valid, 3.0, k), 1))


@pytest.mark.parametrize("backend", ["cpu", "gpu", "tpu"])
def test_auto_method_and_bad_method(backend, monkeypatch):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  assert topk.resolve_method("auto", 10) == "top_k"
  assert topk.resolve_method("auto", topk.AUTO_THRESHOLD_MIN_K) == "threshold"
  # select_neighbors' "auto": the host partition where the threshold kernel would run
  # on a CPU backend, the threshold kernel elsewhere; explicit methods are kept.
  big = "partition" if backend == "cpu" else "threshold"
  assert topk.selection_method("auto", topk.AUTO_THRESHOLD_MIN_K) == big
  assert topk.selection_method("auto", 10) == "top_k"
  assert topk.selection_method("threshold", 10 ** 6) == "threshold"
  with pytest.raises(ValueError, match="method"):
    topk.resolve_method("radix", 10)


@pytest.mark.parametrize("T", [1, 31, 32, 33, 100, 1000])
def test_exclusive_prefix_count_matches_numpy(T):
  rng = np.random.default_rng(T)
  mask = rng.random((3, T)) < 0.4
  got = np.asarray(topk_threshold._exclusive_prefix_count(jnp.asarray(mask)))  # pylint: disable=protected-access
  np.testing.assert_array_equal(got, np.cumsum(mask, axis=1) - mask)


@pytest.mark.parametrize("T,k", [(1, 1), (31, 7), (32, 32), (33, 1), (100, 25), (1000, 999),
                                 (4097, 3)])
def test_word_compaction_matches_numpy_flatnonzero(T, k):
  rng = np.random.default_rng(T + k)
  mask = np.zeros((4, T), bool)
  for row in mask:
    row[rng.choice(T, k, replace=False)] = True
  words = topk_threshold._pack_words(jnp.asarray(mask))  # pylint: disable=protected-access
  got = np.asarray(topk_threshold._compact_words(words, k))  # pylint: disable=protected-access
  np.testing.assert_array_equal(got, np.stack([np.flatnonzero(r) for r in mask]))


def test_threshold_set_is_the_same_by_either_compaction():
  # K <= T / 4 reads the set off the packed words, K > T / 4 scatters: same sets.
  P, W, valid = _data(C=9, T=400, seed=3)
  for k in (50, 100, 101, 300):
    got = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="threshold",
                                           sorted=False))
    want = np.asarray(topk.select_neighbors(P, W, valid, r=5.0, k=k, method="top_k"))
    np.testing.assert_array_equal(got, np.sort(want, axis=1))


@pytest.mark.parametrize("host_sort", [None, False])
@pytest.mark.parametrize("data", ["continuous", "tied", "continuous_large", "tied_large"])
def test_grid_means_equal_one_k_at_a_time(data, host_sort):
  """neighbor_means_grid == numpy: the mean of each row's K smallest distances (ties
  to the lower index), for every K of the grid, including K = all valid users. The
  large rows put Ks on both sides of AUTO_THRESHOLD_MIN_K (the top_k prefixes below,
  the threshold search from it on). ``host_sort=None`` on the CPU backend sorts each
  chunk's rows in numpy for the larger Ks' K-th distances (with the ties past K
  taken out); ``False`` searches for them on the device."""
  T = 300 if not data.endswith("_large") else 3 * topk.AUTO_THRESHOLD_MIN_K
  P, W, valid = (_data(C=13, T=T, seed=5) if data.startswith("continuous")
                 else _tied_data(T=T))
  n_valid = int(valid.sum())
  ks = (1, 2, 7, 64, n_valid // 2, n_valid)
  if data.endswith("_large"):
    ks = (1, 7, 300, topk.AUTO_THRESHOLD_MIN_K - 1, topk.AUTO_THRESHOLD_MIN_K, n_valid)
  got = np.asarray(topk.neighbor_means_grid(P, W, valid, r=4.0, ks=ks, chunk_size=4,
                                            host_sort=host_sort))
  assert got.shape == (P.shape[0], len(ks), W.shape[1])
  for c in range(P.shape[0]):   # float32 distances as the kernel sees them; stable = by index
    order = np.argsort(np.asarray(topk_distances.match_distances(P[c:c + 1], W, 4.0))[0]
                       + np.where(valid, 0.0, np.inf), kind="stable")
    for j, k in enumerate(ks):
      np.testing.assert_allclose(got[c, j], W[order[:k]].mean(axis=0), atol=2e-6)


def test_grid_means_reject_bad_k():
  P, W, valid = _data(C=3, T=40, seed=1)
  with pytest.raises(ValueError, match="every K must lie in"):
    topk.neighbor_means_grid(P, W, valid, r=5.0, ks=(0, 3))
  with pytest.raises(ValueError, match="every K must lie in"):
    topk.neighbor_means_grid(P, W, valid, r=5.0, ks=(int(valid.sum()) + 1,))


def test_partition_rows_breaks_ties_by_index_and_matches_numpy():
  dist = np.array([[1.0, 0.5, 0.5, 0.5, 2.0, 0.5],
                   [3.0, 2.0, 1.0, 0.0, np.inf, 1.0]], np.float32)
  np.testing.assert_array_equal(topk_partition.partition_rows(dist, 3, sorted=False),
                                [[1, 2, 3], [2, 3, 5]])
  np.testing.assert_array_equal(topk_partition.partition_rows(dist, 3, sorted=True),
                                [[1, 2, 3], [3, 2, 5]])
  P, W, valid = _data(C=300, T=2000, seed=6)            # several host blocks, padded
  k = topk.AUTO_THRESHOLD_MIN_K // 2
  idx = np.asarray(topk.select_neighbors(P, W, valid, r=3.0, k=k, method="partition",
                                       chunk_size=64, sorted=False))
  np.testing.assert_array_equal(idx, np.sort(_np_topk(P, W, valid, 3.0, k), 1))


def test_auto_select_neighbors_runs_the_partition_path_at_large_k(monkeypatch):
  P, W, valid = _data(C=5, T=3 * topk.AUTO_THRESHOLD_MIN_K, seed=11)
  k = topk.AUTO_THRESHOLD_MIN_K
  calls = []
  real = topk_partition.partition_rows
  monkeypatch.setattr(topk_partition, "partition_rows",
                      lambda *a, **kw: calls.append(1) or real(*a, **kw))
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  got = np.asarray(topk.select_neighbors(P, W, valid, r=2.0, k=k, sorted=False))
  assert calls, "auto did not reach the host partition path"
  np.testing.assert_array_equal(got, np.sort(_np_topk(P, W, valid, 2.0, k), 1))


def test_nan_distances_count_as_inf_and_select_neighbors_refuses_non_finite_input():
  P, W, valid = _data(C=3, T=40, seed=2)
  W_nan, P_nan, W_inf = W.copy(), P.copy(), W.copy()
  W_nan[5], P_nan[1, 0], W_inf[[3, 7]] = np.nan, np.nan, np.inf
  d = np.asarray(topk_distances.match_distances(P, W_nan, 1.0))
  assert np.isinf(d[:, 5]).all() and np.isfinite(np.delete(d, 5, axis=1)).all()
  for name, args in (("P_hat", (P_nan, W)), ("W_tgt", (P, W_inf))):
    for method in topk.METHODS:
      with pytest.raises(ValueError, match=f"select_neighbors: .* of {name} have NaN"):
        topk.select_neighbors(*args, valid, r=1.0, k=4, method=method)
