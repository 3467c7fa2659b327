"""The PFCDR method (pfcdr_jax.pfcdr.method) against a plain numpy pipeline on tiny data."""

import jax
import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.pfcdr import method


@pytest.fixture(scope="module")
def run(tiny_untrained_run):
  return (*tiny_untrained_run, method.StageKeys.from_seed(0))


def _numpy_eq14(P_hat, W_t, valid, V_t, ratings, row_of_user, k, r):
  """Eq. (13)-(14) by brute force: sort every candidate by |r - w_t . P_hat|."""
  dist = np.abs(r - P_hat @ W_t.T)                               # [C, T]
  dist[:, ~valid] = np.inf
  nn = np.argsort(dist, axis=1, kind="stable")[:, :k]
  mean_w = W_t[nn].mean(axis=1)                                   # [C, d]
  rows = row_of_user[ratings.user]
  return np.sum(mean_w[rows] * V_t[ratings.item], axis=1)


@pytest.mark.parametrize("k", ["auto", "7"])
def test_fit_predict_equals_a_numpy_pipeline(run, k):
  data, scorer, params_s, params_t, keys = run
  inv = inversion.InversionConfig(method="closed_form", steps=50)
  topk = config_lib.TopKConfig(k=k, grid=(0.01, 0.1, 0.5))
  bridge = config_lib.BridgeConfig(epochs=20)
  fit = method.fit_predict(scorer, params_s, params_t, data, keys, inversion=inv,
                           bridge=bridge, topk=topk)
  # Reference: the same prototypes and bridge weights, everything after them in numpy.
  protos = method.invert_run(scorer, params_s, params_t, data, keys, inv)
  nb = len(data.train_users)
  P_hat = protos.source[nb:] @ fit.bridge_weights
  np.testing.assert_allclose(fit.transferred, P_hat, rtol=1e-5, atol=1e-6)
  W_t = np.asarray(scorer.user_repr(params_t, np.arange(data.target_train.n_users)))
  V_t = np.asarray(scorer.item_matrix(params_t))
  valid = np.asarray(data.target_trained)
  cold = np.concatenate([data.val_users, data.test_users])
  row = np.full(data.target_train.n_users, -1)
  row[cold] = np.arange(cold.size)
  n_valid = int(valid.sum())
  ks = ([7] if k == "7" else
        sorted({max(1, min(n_valid, int(round(f * n_valid)))) for f in topk.grid}))
  val_mae = {kk: np.mean(np.abs(_numpy_eq14(P_hat, W_t, valid, V_t, data.target_val, row, kk,
                                            5.0) - data.target_val.rating)) for kk in ks}
  best = min(val_mae, key=val_mae.get)
  assert fit.k == best
  assert fit.n_candidates == n_valid
  for kk, v in fit.val_mae_by_k.items():
    assert v == pytest.approx(val_mae[kk], abs=1e-5)
  ref = _numpy_eq14(P_hat, W_t, valid, V_t, data.target_test, row, best, 5.0)
  np.testing.assert_allclose(fit.pred, ref, rtol=1e-5, atol=1e-5)
  mse = np.mean((protos.source[:nb] @ fit.bridge_weights - protos.target) ** 2)
  assert fit.bridge_train_mse == pytest.approx(mse, rel=1e-4)


def test_given_prototypes_are_used_as_is(run):
  data, scorer, params_s, params_t, keys = run
  kw = dict(inversion=inversion.InversionConfig(method="closed_form", steps=20),
            bridge=config_lib.BridgeConfig(epochs=5), topk=config_lib.TopKConfig(k="3"))
  protos = method.invert_run(scorer, params_s, params_t, data, keys, kw["inversion"])
  a = method.fit_predict(scorer, params_s, params_t, data, keys, **kw)
  b = method.fit_predict(scorer, params_s, params_t, data, keys, protos=protos, **kw)
  np.testing.assert_array_equal(a.pred, b.pred)
  shuffled = method.Prototypes(protos.source[::-1].copy(), protos.target)
  c = method.fit_predict(scorer, params_s, params_t, data, keys, protos=shuffled, **kw)
  assert not np.allclose(a.pred, c.pred)


def test_cold_index_and_user_order(run):
  data = run[0]
  cold = method.cold_users(data)
  np.testing.assert_array_equal(cold.users, np.concatenate([data.val_users, data.test_users]))
  assert np.all(cold.row_of_user[cold.users] == np.arange(cold.users.size))
  assert np.sum(cold.row_of_user >= 0) == cold.users.size
  users = method.source_prototype_users(data)
  np.testing.assert_array_equal(users[:len(data.train_users)], data.train_users)
  assert method.k_candidates(config_lib.TopKConfig(k="0.5"), 10) == [5]
  with pytest.raises(ValueError, match="positive"):
    method.parse_k("-3")


@pytest.mark.parametrize("include_untrained", [False, True])
def test_neighbor_representations_masked_path_equals_the_selected_set(include_untrained):
  # At a K the threshold kernel serves, "auto" averages by one masked product; it must
  # be the mean of exactly the set select_neighbors returns (numpy reference below).
  import jax.numpy as jnp
  from pfcdr_jax.pfcdr import topk
  rng = np.random.default_rng(0)
  P = rng.normal(size=(21, 4)).astype(np.float32)
  W = rng.normal(size=(3000, 4)).astype(np.float32)
  valid = rng.random(3000) < 0.9
  k = topk.AUTO_THRESHOLD_MIN_K + 100
  cfg = config_lib.TopKConfig(include_untrained=include_untrained)
  got = np.asarray(method.neighbor_representations(P, jnp.asarray(W), jnp.asarray(valid), k,
                                                   cfg, 5.0))
  cand = np.ones_like(valid) if include_untrained else valid
  dist = np.where(cand[None], np.abs(5.0 - P @ W.T), np.inf)
  want = np.stack([W[np.argsort(d, kind="stable")[:k]].mean(0) for d in dist])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  sel = np.asarray(method.neighbor_representations(
      P, jnp.asarray(W), jnp.asarray(valid), k,
      config_lib.TopKConfig(include_untrained=include_untrained, method="threshold"), 5.0))
  np.testing.assert_allclose(got, sel, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, tower", [("mf", "linear"), ("gmf", "linear"),
                                         ("dnn", "linear"), ("dnn", "mlp")])
@pytest.mark.parametrize("offsets", ["none", "global", "bias"])
def test_jitted_representations_are_bit_identical_to_eager(name, tower, offsets):
  """``method.representations`` is jitted to save compiles; every cached stage keyed
  before that holds eager values, so the two must agree bit for bit."""
  from pfcdr_jax.models import scorers
  s = scorers.get_scorer(name, dnn_tower=tower, offsets=offsets)
  p = s.init(jax.random.PRNGKey(1), 37, 29, 10)
  p = jax.tree_util.tree_map(
      lambda x: x + 0.37 * jax.random.normal(jax.random.PRNGKey(2), x.shape), p)
  for a, b in zip(method.representations_eager(s, p, 37), method.representations(s, p, 37)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
