"""PFCDR+ (plus.method): a numpy reference, learning, selection, the DP offset, the CLI."""
import json

import numpy as np
import pytest

from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.features import crowd_agreement
from pfcdr_jax.plus.features import item_features
from pfcdr_jax.plus.features import SOURCE_ITEM_SHRINKAGE
from pfcdr_jax.plus.features import source_spread
from pfcdr_jax.plus.inputs import Pairs
from pfcdr_jax.plus.inputs import PlusInputs
from pfcdr_jax.plus.method import _helps_out_of_fold
from pfcdr_jax.plus.method import fit_predict_plus
from pfcdr_jax.plus.neighbours import uniform_neighbour_mean
from pfcdr_jax.plus.release import sent_offsets



def _tiny(rng, n_bridge=6, n_cold=6, n_only=2, n_items=7, n_src_items=5, d=3, n_r=1):
  """Random PlusInputs: users 0..B-1 bridge, then cold, then target-only users."""
  n_users = n_bridge + n_cold + n_only
  trained = np.r_[np.arange(n_bridge), np.arange(n_bridge + n_cold, n_users)]
  tu, ti = np.meshgrid(trained, np.arange(n_items), indexing="ij")
  keep = rng.random(tu.size) < 0.7
  tu, ti = tu.ravel()[keep], ti.ravel()[keep]
  su, si = np.meshgrid(np.arange(n_bridge + n_cold), np.arange(n_src_items), indexing="ij")
  skeep = rng.random(su.size) < 0.6
  su, si = su.ravel()[skeep], si.ravel()[skeep]
  mask = np.zeros(n_users, bool)
  mask[trained] = True
  inp = PlusInputs(
      source=(su, si, rng.integers(1, 6, su.size).astype(np.float32)),
      target=(tu, ti, rng.integers(1, 6, tu.size).astype(np.float32)),
      n_users=n_users, n_items_t=n_items, bridge_users=np.arange(n_bridge),
      cold_users=np.arange(n_bridge, n_bridge + n_cold),
      protos_src=rng.normal(size=(n_r, n_bridge + n_cold, d)), rs=(5.0,) * n_r,
      P_hat=rng.normal(size=(n_cold, d)), W_t=rng.normal(size=(n_users, d)),
      V_t=rng.normal(size=(n_items, d)), trained=mask)
  cold = np.arange(n_bridge, n_bridge + n_cold)
  val_u = np.repeat(cold[:3], n_items)
  val_i = np.tile(np.arange(n_items), 3)
  val = (val_u, val_i, rng.integers(1, 6, val_u.size).astype(np.float32))
  pairs = Pairs(np.repeat(cold, n_items), np.tile(np.arange(n_items), n_cold))
  return inp, val, pairs


def _reference(inp, pairs, lam, ridge, tau, beta):
  """The module docstring's prediction, written out with loops."""
  su, _, sr = inp.source
  tu, ti, tr = inp.target
  mu, mu_s = tr.mean(), sr.mean()
  b = np.array([(tr[ti == j] - mu).sum() / ((ti == j).sum() + lam)
                for j in range(inp.n_items_t)])
  offset = {u: (sr[su == u] - mu_s).sum() / ((su == u).sum() + 2.0)
            for u in np.unique(su)}
  users = list(inp.bridge_users) + list(inp.cold_users)

  def phi(u, j):
    z = np.r_[inp.protos_src[0][users.index(u)], offset[u], 1.0]
    return np.kron(z, np.r_[inp.V_t[j], 1.0])

  rows = [k for k in range(len(tu)) if tu[k] in inp.bridge_users]
  Phi = np.array([phi(tu[k], ti[k]) for k in rows])
  y = np.array([tr[k] - mu - b[ti[k]] for k in rows])
  A = Phi.T @ Phi
  theta = np.linalg.solve(A + ridge * np.mean(np.diag(A)) * np.eye(len(A)), Phi.T @ y)
  valid = np.flatnonzero(inp.trained)
  w_all = inp.W_t[valid].mean(0)
  out = []
  for u, j in zip(pairs.user, pairs.item):
    c = list(inp.cold_users).index(u)
    logits = -np.abs(5.0 - inp.W_t[valid] @ inp.P_hat[c]) / tau
    w = np.exp(logits - logits.max())
    w_bar = (w / w.sum()) @ inp.W_t[valid]
    out.append(mu + b[j] + phi(u, j) @ theta + beta * (w_bar - w_all) @ inp.V_t[j])
  return np.clip(out, tr.min(), tr.max())


def test_prediction_matches_numpy_reference():
  inp, val, pairs = _tiny(np.random.default_rng(0))
  cfg = PlusConfig(item_shrinkage=(3.0,), ridge=(0.1,), neighbours="softmax", taus=(0.7,),
                   betas=(0.5,), offset_shrinkage=(2.0,), select_steps=False,
                   offset_debias=False, crowd=False, item_bias_feature=False,
                   fit_loss="l2")
  fit = fit_predict_plus(inp, val, pairs, cfg)
  np.testing.assert_allclose(fit.pred, _reference(inp, pairs, 3.0, 0.1, 0.7, 0.5),
                             rtol=1e-4, atol=1e-4)
  assert fit.chosen["tau"] == 0.7 and set(fit.val_mae) == {"floor", "bilinear", "neighbours"}
  # The chosen model predicts any (cold user, item) pairs: reversed pairs, same numbers.
  rev = slice(None, None, -1)
  np.testing.assert_array_equal(fit.predict(pairs.user[rev], pairs.item[rev]), fit.pred[rev])


def test_uniform_neighbours_are_the_k_closest():
  inp, _, _ = _tiny(np.random.default_rng(1))
  got = uniform_neighbour_mean(inp.P_hat, inp.W_t, inp.trained, 5.0, 3)
  valid = np.flatnonzero(inp.trained)
  for c in range(len(inp.P_hat)):
    dist = np.abs(5.0 - inp.W_t[valid] @ inp.P_hat[c])
    np.testing.assert_allclose(got[c], inp.W_t[valid[np.argsort(dist)[:3]]].mean(0),
                               rtol=1e-5, atol=1e-6)


def _planted(rng, n_bridge=300, n_cold=200, n_items=25, d=4):
  """Ratings = 3 + item bias + 0.6 * the user's source level + P_u^T M v_j + noise."""
  n = n_bridge + n_cold
  P, V, M = rng.normal(size=(n, d)), rng.normal(size=(n_items, d)), rng.normal(size=(d, d))
  level = rng.normal(0, 0.6, n)
  su = np.repeat(np.arange(n), 8)
  sr = 3.5 + level[su] + rng.normal(0, 0.3, su.size)
  tu, ti = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n_items), indexing="ij"))
  r = (3 + np.linspace(-1, 1, n_items)[ti] + 0.6 * level[tu]
       + 0.3 * np.einsum("pd,de,pe->p", P[tu], M, V[ti]) + rng.normal(0, 0.2, tu.size))
  cold = tu >= n_bridge
  trained = np.arange(n) < n_bridge
  inp = PlusInputs(source=(su, np.zeros_like(su), sr), target=(tu[~cold], ti[~cold],
                                                                r[~cold]),
                   n_users=n, n_items_t=n_items, bridge_users=np.arange(n_bridge),
                   cold_users=np.arange(n_bridge, n), protos_src=P[None], rs=(5.0,),
                   P_hat=P[n_bridge:], W_t=rng.normal(size=(n, d)), V_t=V, trained=trained)
  is_val = cold & (tu < n_bridge + n_cold // 2)
  is_test = cold & ~is_val
  return inp, (tu[is_val], ti[is_val], r[is_val]), (tu[is_test], ti[is_test], r[is_test])


def test_bilinear_bridge_learns_and_selection_uses_validation():
  inp, val, test = _planted(np.random.default_rng(2))
  pairs = Pairs(test[0], test[1])
  mae = lambda fit: float(np.mean(np.abs(fit.pred - test[2])))
  base = dict(neighbours="none", item_shrinkage=(0.0,))
  full = fit_predict_plus(inp, val, pairs, PlusConfig(ridge=(1e-6, 1.0, 1e3), **base))
  untrained = fit_predict_plus(inp, val, pairs, PlusConfig(ridge=(1e6,), **base))
  no_proto = fit_predict_plus(inp, val, pairs, PlusConfig(use_prototype=False, **base))
  floor = fit_predict_plus(inp, val, pairs, PlusConfig(bilinear=False, use_offset=False,
                                                      **base))
  assert mae(full) < 0.8 * mae(no_proto) and mae(full) < 0.8 * mae(untrained)
  assert mae(no_proto) < mae(floor)         # the source offset carries the user's level
  # The chosen ridge strength is the validation argmin of the single-point fits.
  single = {s: fit_predict_plus(inp, val, pairs, PlusConfig(ridge=(s,), **base))
            for s in (1e-6, 1.0, 1e3)}
  best = min(single, key=lambda s: single[s].val_mae["bilinear"])
  assert full.chosen["ridge"] == best
  np.testing.assert_array_equal(full.pred, single[best].pred)


def test_non_cold_users_are_refused():
  inp, val, pairs = _tiny(np.random.default_rng(3))
  with pytest.raises(ValueError, match="cold"):
    fit_predict_plus(inp, val, Pairs(np.array([0]), np.array([0])), PlusConfig())
  with pytest.raises(ValueError, match="validation"):
    fit_predict_plus(inp, (val[0][:0], val[1][:0], val[2][:0]), pairs, PlusConfig())


def test_rating_dp_refuses_what_it_has_no_mechanism_for():
  with pytest.raises(ValueError, match=r"no mechanism for \['spread'\]"):
    PlusConfig(rating_epsilon=1.0, spread=True)
  with pytest.raises(ValueError, match="> 0"):
    PlusConfig(rating_epsilon=0.0)


def test_rating_dp_noise_costs_validation_accuracy_as_epsilon_shrinks():
  """The DP offset's value to the fit falls as epsilon shrinks: with a tiny budget the
  offset is noise and the validation MAE is worse than without noise."""
  rng = np.random.default_rng(1)
  inp, val, pairs = _tiny(rng, n_bridge=40, n_cold=40, n_only=0, n_items=8, n_src_items=30)
  su, si, _ = inp.source
  level = rng.normal(0.0, 1.0, inp.n_users)     # a user's level, in both domains
  sr = np.clip(np.round(3 + level[su] + rng.normal(0, 0.3, su.size)), 1, 5)
  tu, ti, _ = inp.target
  tr = np.clip(np.round(3 + level[tu] + rng.normal(0, 0.3, tu.size)), 1, 5)
  vr = np.clip(np.round(3 + level[val[0]] + rng.normal(0, 0.3, val[0].size)), 1, 5)
  inp = inp._replace(source=(su, si, sr), target=(tu, ti, tr))
  val = (val[0], val[1], vr)
  base = dict(neighbours="none", use_prototype=False, select_steps=False, fit_loss="l2")
  maes = [fit_predict_plus(inp, val, pairs, PlusConfig(rating_epsilon=e, **base)
                           ).val_mae["bilinear"] for e in (None, 3.0, 0.01)]
  assert maes[0] <= maes[1] + 0.02 and maes[1] + 0.1 < maes[2]


def test_method_plus_on_a_custom_task(tmp_path):
  """--method=pfcdr_plus adds the "PFCDR+" registry entry (tests/harness/test_pipeline.py runs
  the script with it); here the custom-task run in-process, as the script does it."""
  from pfcdr_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.harness import pipeline  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  src, tgt, _ = synthetic.make_synthetic_cdr(0, like="music2movie", scale=0.002)
  files = []
  for name, df in (("s", src), ("t", tgt)):
    files.append(tmp_path / f"{name}.tsv")
    df[["user", "item", "rating"]].to_csv(files[-1], sep="\t", index=False)
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "custom", "data.source_file": str(files[0]),
      "data.target_file": str(files[1]), "pretrain.epochs": 2, "pretrain.lrs": (0.02,),
      "topk.k": "0.05", "inversion.steps": 30, "bridge.epochs": 5, "cache.enabled": False,
      "baselines.names": config_lib.MAIN_BASELINES + ("PFCDR+",)})
  methods = pipeline.run_pfcdr(cfg, tmp_path / "w")["methods"]
  on_disk = json.loads((tmp_path / "w" / "results.json").read_text())["methods"]
  assert on_disk == methods
  assert {"PFCDR", "PFCDR+", "EMCDR"} <= set(methods)
  assert 0 < methods["PFCDR+"]["mae"] < 4


def test_source_scalars_match_loops():
  """Debiased offset, crowd agreement, spread and x_j = [v_j, b_j, 1] by plain loops."""
  inp, _, _ = _tiny(np.random.default_rng(5))
  su, si, sr = inp.source
  sr = sr.astype(np.float64)
  mu = sr.mean()
  bs = np.array([(sr[si == i] - mu).sum() / ((si == i).sum() + SOURCE_ITEM_SHRINKAGE)
                 for i in range(si.max() + 1)])
  users = np.unique(su)
  cfg = PlusConfig(offset_debias=True)
  got = sent_offsets(inp.source, inp.n_users, cfg, 2.0)
  for u in users:
    r, b = sr[su == u], bs[si[su == u]]
    assert got[u] == pytest.approx((r - mu - b).sum() / (len(r) + 2.0))
  slope = {u: ((sr[su == u] - sr[su == u].mean()) * bs[si[su == u]]).sum()
              / ((bs[si[su == u]] ** 2).sum() + 3.0 * np.mean(bs[si] ** 2)) for u in users}
  crowd = crowd_agreement(inp.source, inp.n_users, 3.0)
  mean_slope = np.mean(list(slope.values()))
  for u in users:
    assert crowd[u] == pytest.approx(slope[u] - mean_slope)
    r = sr[su == u]
    want = np.sqrt((((r - r.mean()) ** 2).sum() + 4.0 * sr.var()) / (len(r) + 4.0)) - sr.std()
    assert source_spread(su, sr, inp.n_users, 4.0)[u] == pytest.approx(want, rel=1e-6)
  b = np.arange(inp.n_items_t, dtype=float)
  np.testing.assert_array_equal(item_features(inp.V_t, inp.n_items_t, b),
                                np.c_[inp.V_t, b, np.ones(inp.n_items_t)])


def test_crowd_agreement_is_learned():
  """Users who follow the item biases in the source do so in the target: the crowd
  scalar with x_j = [v_j, b_j, 1] beats the same model without it, and the L1 refit
  beats the ridge fit on MAE when the noise is heavy-tailed."""
  rng = np.random.default_rng(6)
  n, n_bridge, n_items, n_src = 600, 400, 30, 40
  agree = rng.uniform(0.0, 2.0, n)
  src_b, tgt_b = np.linspace(-1, 1, n_src), np.linspace(-1, 1, n_items)
  su, si = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n_src), indexing="ij"))
  sr = 3.5 + agree[su] * src_b[si] + rng.normal(0, 0.3, su.size)
  tu, ti = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(n_items), indexing="ij"))
  r = 3.5 + agree[tu] * tgt_b[ti] + 0.3 * rng.standard_t(1.5, tu.size)
  cold, trained = tu >= n_bridge, np.arange(n) < n_bridge
  d = 3
  inp = PlusInputs(source=(su, si, sr), target=(tu[~cold], ti[~cold], r[~cold]),
                   n_users=n, n_items_t=n_items, bridge_users=np.arange(n_bridge),
                   cold_users=np.arange(n_bridge, n), protos_src=rng.normal(size=(1, n, d)),
                   rs=(5.0,), P_hat=rng.normal(size=(n - n_bridge, d)),
                   W_t=rng.normal(size=(n, d)), V_t=rng.normal(size=(n_items, d)),
                   trained=trained)
  is_val = cold & (tu < n_bridge + 100)
  test = ~is_val & cold
  val, pairs = (tu[is_val], ti[is_val], r[is_val]), Pairs(tu[test], ti[test])
  base = dict(neighbours="none", item_shrinkage=(0.0,), offset_shrinkage=(0.0,),
              ridge=(1e-4,), select_steps=False)
  mae = lambda **kw: float(np.mean(np.abs(fit_predict_plus(
      inp, val, pairs, PlusConfig(**base, **kw)).pred - r[test])))
  with_crowd = mae(crowd=True, item_bias_feature=True, fit_loss="l2")
  assert with_crowd < 0.9 * mae(crowd=False, item_bias_feature=True, fit_loss="l2")
  assert mae(crowd=True, item_bias_feature=True, fit_loss="l1") < 0.98 * with_crowd


def test_neighbours_need_to_help_out_of_fold():
  """A candidate that only fits the odd users' ratings is rejected by the cross-fold
  check; one that moves every user towards their ratings is kept."""
  rng = np.random.default_rng(7)
  users = np.repeat(np.arange(40), 5)
  r = rng.integers(1, 6, users.size).astype(float)
  base = np.full(users.size, 3.0)
  odd = users % 2 == 1
  clip = lambda p: p
  overfit = {("k", 1, 1.0): np.where(odd, r, base), ("k", 1, 0.0): base}
  assert not _helps_out_of_fold(overfit, base, (users, None, r), clip)
  real = {("k", 1, 0.5): 0.5 * base + 0.5 * r, ("k", 1, 0.0): base}
  assert _helps_out_of_fold(real, base, (users, None, r), clip)
