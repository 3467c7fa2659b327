"""pfcdr_jax.studies: the K and r sweeps equal the main job, Figure 4's numbers, Table 3's
storage, all on a tiny synthetic task (one prepared run shared by the module)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import stages
from pfcdr_jax.baselines import cmf
from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.baselines import pf2cdr
from pfcdr_jax.baselines import ppgencdr
from pfcdr_jax.baselines import ppgencdr_config
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.baselines import ptupcdr
from pfcdr_jax.studies import cost
from pfcdr_jax.studies import embedding_map
from pfcdr_jax.studies import k_sweep
from pfcdr_jax.studies import rating_sweep
from pfcdr_jax.harness import records


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("studies")
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "synthetic", "data.scale": 0.002, "seed": 0, "pretrain.epochs": 3,
      "pretrain.batch_size": 256, "pretrain.lrs": (0.02,), "inversion.steps": 20,
      "bridge.epochs": 10, "baselines.names": (), "cache.dir": str(root / "cache")})
  main = pipeline.run_pfcdr(cfg, root / "main")
  run = stages.prepare(cfg, root)
  protos = stages.run_prototypes(run, cfg, root)
  return cfg, root, main, run, protos


def test_log_grid():
  assert k_sweep.log_grid(1) == [1]
  assert k_sweep.log_grid(100, per_decade=2) == [1, 3, 10, 32, 100]
  assert k_sweep.log_grid(4347)[-2:] == [3162, 4347]


def test_k_sweep_equals_separate_topk_runs(tiny):
  cfg, root, main, run, protos = tiny
  sweep = k_sweep.sweep_k(k_sweep.cold_setup(run, protos, cfg), run.data, cfg, ks=[1, 3])
  assert sweep.k_selected == main["selected"]["topk"]   # the main job's validation pick
  at = dict(zip(sweep.ks.tolist(), sweep.test_mae.tolist()))
  assert at[sweep.k_selected] == pytest.approx(main["methods"]["PFCDR"]["mae"], rel=1e-6)
  for k in (1, 3):
    c = config_lib.override(cfg, {"topk.k": str(k)})
    res = pipeline.run_pfcdr(c, root / f"k{k}")
    assert res["selected"]["topk"] == k
    assert at[k] == pytest.approx(res["methods"]["PFCDR"]["mae"], rel=1e-6)


def test_k_aggregate_mean_std():
  recs = [{"seed": s, "ks": [1, 2, 5], "log_ks": [1, 2, 5], "n_candidates": 5,
           "val_mae": [1.0 + s, 2.0, 3.0], "test_mae": [4.0, 5.0 + s, 6.0], "k_selected": 2}
          for s in range(3)]
  agg = k_sweep.aggregate(recs)
  assert agg["k"] == [1, 2, 5.0]
  np.testing.assert_allclose(agg["val_mae"], [2.0, 2.0, 3.0])
  np.testing.assert_allclose(agg["test_mae_std"], [0.0, np.std([5, 6, 7], ddof=1), 0.0])
  assert agg["test_mae_at_selected_by_seed"] == [5.0, 6.0, 7.0]


def test_rating_sweep_at_5_equals_main_job(tiny):
  cfg, root, main, run, _ = tiny
  rows = rating_sweep.sweep_rating(run, cfg, root, ratings=(5.0,))
  assert rows[0]["r"] == 5.0 and rows[0]["k"] == main["selected"]["topk"]
  assert rows[0]["test_mae"] == main["methods"]["PFCDR"]["mae"]
  assert rows[0]["test_rmse"] == main["methods"]["PFCDR"]["rmse"]
  other = dict(rows[0], r=1.0, test_mae=rows[0]["test_mae"] + 0.5)
  s = rating_sweep.summarize([[rows[0], other], [dict(rows[0], test_mae=0.0), other]])
  assert s[0]["test_mae"] == pytest.approx(rows[0]["test_mae"] / 2)
  assert s[1]["r"] == 1.0 and s[1]["test_mae_std"] == 0.0


def test_neighbor_representations_are_what_predict_cold_scores(tiny):
  cfg, _, _, run, protos = tiny
  st = k_sweep.cold_setup(run, protos, cfg)
  test = run.data.target_test
  pred = method_lib.predict_cold(st.P_hat, st.W_t, st.valid, st.V_t, test, st.cold, 3,
                                 cfg.topk, 5.0)
  mean_w = np.asarray(method_lib.neighbor_representations(st.P_hat, st.W_t, st.valid, 3,
                                                          cfg.topk, 5.0))
  ref = np.sum(mean_w[st.cold.row_of_user[test.user]] * np.asarray(st.V_t)[test.item], -1)
  np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-5)


def test_ridge_fit_matches_numpy_per_user():
  rng = np.random.default_rng(0)
  V = rng.normal(size=(7, 3))
  row, item = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 3, 5, 1, 2, 6])
  y = rng.normal(size=6)
  U = embedding_map.ridge_fit(V, row, item, y, 3, 0.5)
  for u in range(3):
    X = V[item[row == u]]
    ref = np.linalg.solve(X.T @ X + 0.5 * np.eye(3), X.T @ y[row == u])
    np.testing.assert_allclose(U[u], ref, rtol=1e-10)


def test_mmd2_matches_direct_sum_and_detects_a_shift():
  rng = np.random.default_rng(1)
  X, Y = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 1.5
  m, p, sigma = embedding_map.mmd2(X, Y, n_perm=50)
  k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma ** 2))  # noqa: E731
  xx = np.mean([k(a, b) for i, a in enumerate(X) for j, b in enumerate(X) if i != j])
  yy = np.mean([k(a, b) for i, a in enumerate(Y) for j, b in enumerate(Y) if i != j])
  xy = np.mean([k(a, b) for a in X for b in Y])
  assert m == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
  assert p < 0.05
  _, p_same, _ = embedding_map.mmd2(X, rng.normal(size=(25, 2)), n_perm=50)
  assert p_same > 0.05
  c = embedding_map.compare(X, X + 0.1)
  assert c["mean_distance"] == pytest.approx(np.sqrt(0.02))


def test_storage_is_the_bytes_of_the_arrays(tiny):
  cfg, _, _, run, protos = tiny
  pf = cost.pfcdr_cost(run, cfg)
  d = protos.source.shape[1]
  assert pf.sent_bytes == protos.source.nbytes and pf.kept_bytes == 4 * d * d
  em = cost.emcdr_cost(run, cfg)
  users = method_lib.source_prototype_users(run.data)
  assert em.sent_bytes == np.asarray(run.params_s["user"])[users].nbytes
  data, key = run.data, jax.random.PRNGKey(0)
  s = data.source
  sent, kept, _ = cost.storage("PriCDR-S", run)
  y, _ = pricdr.publish((s.user, s.item, s.rating), s.n_users, s.n_items,
                        pricdr.PriCDRConfig(), key)
  assert cost.nbytes(sent) == np.asarray(y).nbytes
  assert cost.nbytes(kept) == cost.nbytes(pricdr.init(key, 64, (), d))
  _, kept, _ = cost.storage("PTUPCDR", run)
  assert cost.nbytes(kept) == sum(np.asarray(a).nbytes for a in ptupcdr.init(key, d, 50))
  sent, kept, _ = cost.storage("CMF", run)
  assert cost.nbytes(sent) == s.user.nbytes + s.item.nbytes + s.rating.nbytes
  n_all = s.n_users + data.target_train.n_users - data.n_overlap
  assert cost.nbytes(kept) == cost.nbytes(cmf.init(key, n_all, s.n_items,
                                                   data.target_train.n_items, d))
  assert cost.nbytes([jnp.zeros((3, 2)), np.zeros(4, np.int32)]) == 40
  table1 = ("TGT", "EMCDR", "GlobalMean", "ItemMean", "BiasFloor", "LightGCN", "CMF", "SSCDR",
            "PTUPCDR", "DP-EMCDR(eps=1)", "PriCDR-S", "SourceUserMean")
  for name in table1 + ("FedCDR", "PF2CDR", "PPGenCDR", "PFCDR-DP(eps=1)", "PFCDR+"):
    sent, kept, what = cost.storage(name, run)   # every Table 1 method has a rule
    assert sent is not None and kept is not None and what, name
  # The private methods: the arrays their modules build.
  _, kept, _ = cost.storage("PF2CDR", run)
  assert cost.nbytes(kept) == cost.nbytes(pf2cdr.init(key, d, jnp.zeros(d)))
  _, kept, _ = cost.storage("PPGenCDR", run)
  gcfg = ppgencdr_config.PPGenCDRConfig(gen_dim=d)
  assert cost.nbytes(kept) == cost.nbytes(ppgencdr.init_target(key, s.n_items, d, jnp.zeros(d),
                                                               gcfg))
  sent, kept, _ = cost.storage("PFCDR+", run)
  cold = method_lib.cold_users(data).users
  n_test = int(np.isin(cold, data.test_users).sum())
  assert cost.nbytes(sent) == protos.source.nbytes + 4 * (2 * 4 * (len(users) - n_test)
                                                          + 2 * n_test)
  sent, _, _ = cost.storage("PFCDR-DP(eps=1)", run)
  assert cost.nbytes(sent) == protos.source.nbytes
  sent, kept, _ = cost.storage("FedCDR", run)
  f = fedcdr.FedCDRConfig(rounds=200, local_batch=64)   # the registry entry's defaults
  per_round = 4 * (f.local_batch * (f.dim + 2) * (s.n_users + data.target_train.n_users)
                   + len(method_lib.bridge_users(data)) * (f.dim + 1) * (f.dim + 2))
  assert cost.nbytes(sent) == f.rounds * per_round


def test_records_resume_only_with_the_same_decisions(tmp_path):
  cfg = config_lib.PFCDRConfig()
  calls = []
  compute = lambda: calls.append(1) or {"x": 1.5}  # noqa: E731
  path = records.cell_path(tmp_path, "k", cfg)
  assert records.cached(path, cfg, compute)["x"] == 1.5
  assert records.cached(path, cfg, compute)["x"] == 1.5 and len(calls) == 1
  other = config_lib.override(cfg, {"topk.k": "3"})
  records.cached(path, other, compute)
  assert len(calls) == 2
  # Execution-only fields (the cache path) and the method list do not count.
  moved = config_lib.override(other, {"cache.dir": "/elsewhere", "baselines.names": ()})
  assert records.load(path, moved) is not None and records.load(path, cfg) is None
