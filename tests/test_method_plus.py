"""PFCDR+ (method_plus): a numpy reference, learning, selection, the DP offset, the CLI."""
import json
import math

import numpy as np
import pytest

from pfcdr_jax import method_plus as mp



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
  inp = mp.PlusInputs(
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
  pairs = mp.Pairs(np.repeat(cold, n_items), np.tile(np.arange(n_items), n_cold))
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
  cfg = mp.PlusConfig(item_shrinkage=(3.0,), ridge=(0.1,), neighbours="softmax", taus=(0.7,),
                      betas=(0.5,), offset_shrinkage=(2.0,), select_steps=False)
  fit = mp.fit_predict_plus(inp, val, pairs, cfg)
  np.testing.assert_allclose(fit.pred, _reference(inp, pairs, 3.0, 0.1, 0.7, 0.5),
                             rtol=1e-4, atol=1e-4)
  assert fit.chosen["tau"] == 0.7 and set(fit.val_mae) == {"floor", "bilinear", "neighbours"}


def test_uniform_neighbours_are_the_k_closest():
  inp, _, _ = _tiny(np.random.default_rng(1))
  got = mp.uniform_neighbour_mean(inp.P_hat, inp.W_t, inp.trained, 5.0, 3)
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
  inp = mp.PlusInputs(source=(su, np.zeros_like(su), sr), target=(tu[~cold], ti[~cold],
                                                                   r[~cold]),
                      n_users=n, n_items_t=n_items, bridge_users=np.arange(n_bridge),
                      cold_users=np.arange(n_bridge, n), protos_src=P[None], rs=(5.0,),
                      P_hat=P[n_bridge:], W_t=rng.normal(size=(n, d)), V_t=V, trained=trained)
  is_val = cold & (tu < n_bridge + n_cold // 2)
  is_test = cold & ~is_val
  return inp, (tu[is_val], ti[is_val], r[is_val]), (tu[is_test], ti[is_test], r[is_test])


def test_bilinear_bridge_learns_and_selection_uses_validation():
  inp, val, test = _planted(np.random.default_rng(2))
  pairs = mp.Pairs(test[0], test[1])
  mae = lambda fit: float(np.mean(np.abs(fit.pred - test[2])))
  base = dict(neighbours="none", item_shrinkage=(0.0,))
  full = mp.fit_predict_plus(inp, val, pairs, mp.PlusConfig(ridge=(1e-6, 1.0, 1e3), **base))
  untrained = mp.fit_predict_plus(inp, val, pairs, mp.PlusConfig(ridge=(1e6,), **base))
  no_proto = mp.fit_predict_plus(inp, val, pairs, mp.PlusConfig(use_prototype=False, **base))
  floor = mp.fit_predict_plus(inp, val, pairs, mp.PlusConfig(bilinear=False, use_offset=False,
                                                            **base))
  assert mae(full) < 0.8 * mae(no_proto) and mae(full) < 0.8 * mae(untrained)
  assert mae(no_proto) < mae(floor)         # the source offset carries the user's level
  # The chosen ridge strength is the validation argmin of the single-point fits.
  single = {s: mp.fit_predict_plus(inp, val, pairs, mp.PlusConfig(ridge=(s,), **base))
            for s in (1e-6, 1.0, 1e3)}
  best = min(single, key=lambda s: single[s].val_mae["bilinear"])
  assert full.chosen["ridge"] == best
  np.testing.assert_array_equal(full.pred, single[best].pred)


def test_non_cold_users_are_refused():
  inp, val, pairs = _tiny(np.random.default_rng(3))
  with pytest.raises(ValueError, match="cold"):
    mp.fit_predict_plus(inp, val, mp.Pairs(np.array([0]), np.array([0])), mp.PlusConfig())
  with pytest.raises(ValueError, match="validation"):
    mp.fit_predict_plus(inp, (val[0][:0], val[1][:0], val[2][:0]), pairs, mp.PlusConfig())


def test_noised_offsets_follow_the_gaussian_mechanism():
  sigma = mp.gaussian_sigma(0.5, 1e-5, 1.0)
  assert sigma == pytest.approx(2.0 * math.sqrt(2.0 * math.log(1.25e5)) / 0.5)
  noised = mp.noise_offsets(np.full(20000, 3.0), np.random.default_rng(0), epsilon=0.5,
                            delta=1e-5, clip=1.0)
  assert abs(noised.mean() - 1.0) < 0.05 * sigma and abs(noised.std() / sigma - 1) < 0.03


def test_method_plus_on_a_custom_task(tmp_path):
  """--method=pfcdr_plus adds the "PFCDR+" registry entry (tests/test_pipeline.py runs
  the script with it); here the custom-task run in-process, as the script does it."""
  from pfcdr_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from pfcdr_jax import pipeline  # pylint: disable=g-import-not-at-top
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
