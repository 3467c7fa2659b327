"""Tests of EMCDR: which embedding it maps (for YouTube-DNN, the tower output)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.pfcdr import bridge
from pfcdr_jax.baselines import emcdr
from pfcdr_jax.models import scorers

N_USERS, N_ITEMS, DIM = 30, 12, 4
FIT = dict(lr=0.01, epochs=20, batch_size=8)


def _setup(name, tower="linear"):
  sc = scorers.get_scorer(name, dnn_tower=tower)
  ks, kt, kb = jax.random.split(jax.random.key(0), 3)
  ps, pt = sc.init(ks, N_USERS, N_ITEMS, DIM), sc.init(kt, N_USERS, N_ITEMS, DIM)
  if name == "dnn":   # non-zero biases, so a tower re-applied to a mapped vector shows
    for p, shift in ((ps, 0.3), (pt, -0.2)):
      p["tower"] = {k: (v + shift if k.startswith("b") else v) for k, v in p["tower"].items()}
  bridge_users = np.arange(20, dtype=np.int32)
  test_user = np.array([25, 21, 25, 29, 22], np.int32)
  test_item = np.array([0, 3, 11, 5, 5], np.int32)
  return sc, ps, pt, bridge_users, test_user, test_item, kb


def _np(x):
  return np.asarray(x, np.float64)


@pytest.mark.parametrize("tower", ["linear", "mlp"])
def test_dnn_maps_the_user_tower_output(tower):
  sc, ps, pt, bu, tu, ti, key = _setup("dnn", tower)
  pred = emcdr.fit_predict(sc, ps, pt, bu, tu, ti, key, **FIT)
  # Reference: the map is fit from tower_s(U_s) to tower_t(U_t) on the bridge users, and
  # the mapped tower output is dotted with the target item embedding (no tower after).
  tower_s = sc.user_repr(ps, jnp.arange(N_USERS))
  tower_t = sc.user_repr(pt, jnp.arange(N_USERS))
  W = bridge.fit_linear_bridge(tower_s[bu], tower_t[bu], key, **FIT)
  want = np.sum(_np(tower_s)[tu] @ _np(W) * _np(pt["item"])[ti], axis=1)
  np.testing.assert_allclose(pred, want, rtol=1e-4, atol=1e-5)
  assert emcdr.resolve_space("auto", sc) == "repr"
  # The raw variant (map raw U, re-apply the target tower) is an option and differs.
  raw = emcdr.fit_predict(sc, ps, pt, bu, tu, ti, key, space="raw", **FIT)
  W_raw = bridge.fit_linear_bridge(ps["user"][bu], pt["user"][bu], key, **FIT)
  mapped = ps["user"][jnp.asarray(tu)] @ W_raw
  t = {k: _np(v) for k, v in pt["tower"].items()}
  x = _np(mapped)
  rep = (x @ t["w"] + t["b"] if tower == "linear"
         else np.maximum(x @ t["w1"] + t["b1"], 0) @ t["w2"] + t["b2"])
  np.testing.assert_allclose(raw, np.sum(rep * _np(pt["item"])[ti], axis=1), rtol=1e-4,
                             atol=1e-5)
  assert np.max(np.abs(raw - pred)) > 1e-3


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_mf_and_gmf_map_the_raw_embedding_by_default(name):
  sc, ps, pt, bu, tu, ti, key = _setup(name)
  auto = emcdr.fit_predict(sc, ps, pt, bu, tu, ti, key, **FIT)
  raw = emcdr.fit_predict(sc, ps, pt, bu, tu, ti, key, space="raw", **FIT)
  np.testing.assert_array_equal(auto, raw)
  W = bridge.fit_linear_bridge(ps["user"][bu], pt["user"][bu], key, **FIT)
  h = _np(pt["h"]) if name == "gmf" else 1.0
  want = np.sum(_np(ps["user"])[tu] @ _np(W) * h * _np(pt["item"])[ti], axis=1)
  np.testing.assert_allclose(auto, want, rtol=1e-4, atol=1e-5)
  if name == "mf":   # MF: user_repr is U, so both spaces are one computation
    rep = emcdr.fit_predict(sc, ps, pt, bu, tu, ti, key, space="repr", **FIT)
    np.testing.assert_allclose(rep, auto, rtol=1e-6, atol=1e-7)


def test_bad_space_raises():
  sc = scorers.get_scorer("mf")
  with pytest.raises(ValueError, match="space"):
    emcdr.resolve_space("tower", sc)
