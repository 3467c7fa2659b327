"""privacy.transfers for FedCDR, PF2CDR and PPGenCDR: the rebuilt vectors are the ones the
registry runner made (same key, settings and users), and FedCDR's upload reading is exact."""
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import sparse

from pfcdr_jax.baselines import fedcdr, pf2cdr, ppgencdr, ppgencdr_generator, registry, selection
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.privacy import transfers


@pytest.fixture(scope="module")
def run_and_ctx(tiny_untrained_run):
  data, scorer, params_s, params_t = tiny_untrained_run
  key = jax.random.PRNGKey(7)
  run = SimpleNamespace(data=data, scorer=scorer, params_s=params_s, params_t=params_t,
                        keys=SimpleNamespace(baselines=key))
  ctx = BaselineContext(data=data, scorer=scorer, params_s=params_s, params_t=params_t,
                        key=key, seed=0)
  return run, ctx


def _spy(monkeypatch, module, name):
  """Records every return value of ``module.name`` while the registry runs."""
  seen, real = [], getattr(module, name)

  def wrapper(*args, **kwargs):
    out = real(*args, **kwargs)
    seen.append(out)
    return out

  monkeypatch.setattr(module, name, wrapper)
  return seen


def _needed_users(run):
  return np.union1d(run.data.train_users, run.data.test_users)


def test_pf2cdr_transfer_is_the_runners_release(run_and_ctx, monkeypatch):
  run, ctx = run_and_ctx
  seen = _spy(monkeypatch, pf2cdr, "release")
  (name,) = registry.quick_names(("PF2CDR",))
  _, chosen = selection.fit_predict(name, ctx)
  (rel,) = seen
  tr = transfers.pf2cdr_transfer(run, "PF2CDR", chosen, 1.0)
  np.testing.assert_array_equal(tr.users, rel.users)
  np.testing.assert_array_equal(tr.vectors, np.asarray(rel.vectors))
  assert tr.settings["sigma"] == rel.sigma > 0 and tr.in_user_space
  assert np.isin(_needed_users(run), tr.users).all()


def test_ppgencdr_transfer_is_the_runners_release(run_and_ctx, monkeypatch):
  run, ctx = run_and_ctx
  seen = _spy(monkeypatch, ppgencdr, "source_release")
  (name,) = registry.quick_names(("PPGenCDR",))
  _, chosen = selection.fit_predict(name, ctx)
  (rel,) = seen
  tr = transfers.ppgencdr_transfer(run, "PPGenCDR", chosen, 1.0)
  np.testing.assert_array_equal(tr.users, rel.users)
  # The rows and B's item scores give back exactly the generated vectors the target used.
  np.testing.assert_allclose(jax.nn.sigmoid(tr.vectors @ tr.item_scores),
                             ppgencdr_generator.vectors(rel), rtol=1e-5, atol=1e-6)
  hidden = np.asarray(ppgencdr_generator.hidden(rel.generator, rel.generator.codes))
  np.testing.assert_array_equal(tr.vectors[:, :-1], hidden)
  assert tr.item_scores.shape == (hidden.shape[1] + 1, run.data.source.n_items)
  assert tr.settings["noise_multiplier"] == rel.noise_multiplier > 0 and not tr.in_user_space
  assert np.isin(_needed_users(run), tr.users).all()


def test_fedcdr_state_replays_the_runners_training(run_and_ctx, monkeypatch):
  run, ctx = run_and_ctx
  seen = _spy(monkeypatch, fedcdr, "train")
  (name,) = registry.quick_names(("FedCDR",))
  _, chosen = selection.fit_predict(name, ctx)
  ((clients, server, _),) = seen
  st = transfers.fedcdr_state(run, chosen, chosen["rounds"])
  np.testing.assert_allclose(st.clients.x_s, clients.x_s, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(st.server.y_t, server.y_t, rtol=1e-5, atol=1e-6)
  tr = transfers.fedcdr_transfer(run, "FedCDR", chosen, 1.0)
  assert np.isin(_needed_users(run), tr.users).all() and not tr.in_user_space
  # The upload of the last round gives the clients' embeddings before that round exactly.
  before = transfers.fedcdr_state(run, chosen, chosen["rounds"] - 1)
  d = st.cfg.dim
  np.testing.assert_allclose(tr.vectors[:, :d], before.clients.x_s[tr.users, :d],
                             rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(tr.vectors[:, d], 1.0)
  # Attacker B's scores are the server's p.q_j + c_j.
  y = np.asarray(before.server.y_s)
  want = tr.vectors[:, :d] @ y[:, :d].T + y[None, :, d]
  np.testing.assert_allclose(tr.vectors @ tr.item_scores, want, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="without clipping"):
    transfers.fedcdr_transfer(run, "FedCDR(eps=1)", {**chosen, "eps": 1.0}, 1.0)
  # The upload ids the server sees over the rounds: here every rated source item.
  s = run.data.source
  rated = sparse.csr_matrix((np.ones(s.user.size, bool), (s.user, s.item)),
                            shape=(s.n_users, s.n_items))[tr.users]
  assert tr.observed.shape == rated.shape
  assert (tr.observed != rated.astype(bool)).nnz == 0
  assert chosen["rounds"] * st.cfg.local_batch >= np.bincount(s.user).max()


def test_fedcdr_observed_items_are_the_union_of_the_round_batches():
  rng = np.random.default_rng(3)
  n_users, n_items = 7, 50
  user = np.repeat(np.arange(n_users), [0, 1, 3, 5, 9, 20, 40])
  item = np.concatenate([rng.choice(n_items, c, replace=False)
                         for c in np.bincount(user, minlength=n_users)])
  dom = fedcdr.client_lists(user, item, np.ones(user.size, np.float32), n_users,
                            jax.random.PRNGKey(0))
  for rounds, batch in ((1, 4), (3, 4), (2, 16), (5, 8)):
    want = np.zeros((n_users, n_items), bool)
    for r in range(rounds):
      it, _, mask = (np.asarray(a) for a in fedcdr.round_batch(dom, jnp.asarray(r), batch))
      for u in range(n_users):
        want[u, it[u][mask[u]]] = True
    got = fedcdr.observed_items(dom, rounds, batch, n_items)
    np.testing.assert_array_equal(got.toarray(), want, err_msg=f"{rounds} x {batch}")


def test_fedcdr_upload_reading_matches_numpy():
  rng = np.random.default_rng(0)
  d, l2 = 3, 0.1
  p = rng.normal(size=(2, d))
  y_s = rng.normal(size=(5, d + 1))
  items = np.array([[1, 3, 0], [4, 2, 2]])
  e = np.array([[0.5, -2.0, 9.0], [0.0, 1.5, 0.0]])   # client 1: one valid row of 3
  count = np.array([2, 2])
  x1 = np.concatenate([p, np.ones((2, 1))], axis=1)
  g = e[:, :, None] * x1[:, None, :] + l2 * y_s[items]
  up = fedcdr.Upload(jnp.asarray(items), jnp.asarray(g, jnp.float32), *([None] * 4))
  server = fedcdr.ServerModel(jnp.asarray(y_s, jnp.float32), None, None, None)
  got = transfers.fedcdr_upload_vectors(up, server, jnp.asarray(count), l2)
  np.testing.assert_allclose(got, x1, rtol=1e-4, atol=1e-5)


def test_pfcdr_plus_scalars_equal_a_pandas_reference(run_and_ctx):
  import pandas as pd  # pylint: disable=g-import-not-at-top
  run, _ = run_and_ctx
  s = run.data.source
  sc = transfers.pfcdr_plus_scalars(run, kappa=0.0)
  f = pd.DataFrame({"u": s.user, "i": s.item, "r": s.rating.astype(np.float64)})
  mu = f.r.mean()
  g = f.groupby("i").r
  b = (g.sum() - mu * g.count()) / (g.count() + 10.0)      # source item bias, lambda 10
  f["b"] = f.i.map(b)
  off = (f.r - mu - f.b).groupby(f.u).mean()                 # debiased offset, kappa 0
  f["c"] = f.r - f.groupby("u").r.transform("mean")
  slope = (f.c * f.b).groupby(f.u).sum() / (f.b ** 2).groupby(f.u).sum()
  slope -= slope.mean()                                      # centred over rating users
  np.testing.assert_allclose(sc[off.index, 0], off.to_numpy(), atol=1e-6)  # mu_s in float32
  np.testing.assert_allclose(sc[slope.index, 1], slope.to_numpy(), rtol=1e-5, atol=1e-6)
  unrated = np.setdiff1d(np.arange(sc.shape[0]), off.index)
  assert np.all(sc[unrated] == 0)


def test_pfcdr_plus_sends_the_prototypes_with_the_two_scalars(run_and_ctx):
  run, _ = run_and_ctx
  users = transfers.method_lib.source_prototype_users(run.data)
  d = int(np.asarray(run.scorer.item_matrix(run.params_s)).shape[1])
  protos = SimpleNamespace(source=np.random.default_rng(0).normal(size=(len(users), d)))
  full, scalars = transfers.pfcdr_plus(run, protos, 0.9)
  grid = transfers.plus_config.PlusConfig().offset_shrinkage    # every kappa sent
  sc = np.concatenate([transfers.pfcdr_plus_scalars(run, k)[users] for k in grid], axis=1)
  np.testing.assert_allclose(full.vectors[:, :d], protos.source, rtol=1e-6)
  np.testing.assert_allclose(full.vectors[:, d:], sc, rtol=1e-6)
  np.testing.assert_allclose(scalars.vectors, sc, rtol=1e-6)
  assert full.vectors.shape == (len(users), d + 2 * len(grid)) and not full.in_user_space
  # Attacker B scores items with the prototype part only.
  np.testing.assert_allclose(full.vectors @ full.item_scores,
                             full.vectors[:, :d] @ full.item_scores[:d], rtol=1e-5)
  assert scalars.item_scores is None and scalars.mae is None and full.mae == 0.9


def test_pfcdr_plus_dp_transfer_is_the_runners_release(run_and_ctx, monkeypatch):
  """The privacy row of PFCDR+(eps=1) holds the scalars the registry's runner computed
  (same seed, users, scale): one release, whatever kappa the grid tries."""
  from pfcdr_jax.plus import config as plus_config  # pylint: disable=g-import-not-at-top
  from pfcdr_jax.plus import release as plus_release  # pylint: disable=g-import-not-at-top
  run, ctx = run_and_ctx
  seen = _spy(monkeypatch, plus_release, "rating_dp_release")
  (name,) = registry.quick_names(("PFCDR+(eps=1)",))
  selection.fit_predict(name, ctx)
  assert seen, "the runner never released the DP sums"
  for rel in seen[1:]:
    np.testing.assert_array_equal(rel.sums, seen[0].sums)
    np.testing.assert_array_equal(rel.cross, seen[0].cross)
  users = transfers.method_lib.source_prototype_users(run.data)
  d = int(np.asarray(run.scorer.item_matrix(run.params_s)).shape[1])
  protos = SimpleNamespace(source=np.zeros((len(users), d), np.float32))
  full, scalars = transfers.pfcdr_plus_dp(run, protos, "PFCDR+(eps=1)", 1.0, ctx.seed, 0.8)
  rel = seen[0]
  grid = plus_config.PlusConfig().offset_shrinkage
  for j, kappa in enumerate(grid):
    want_o = plus_release.dp_offsets(rel, kappa, True, (1.0, 5.0))[users]
    want_a = plus_release.dp_crowd(rel, kappa)[users]
    np.testing.assert_allclose(scalars.vectors[:, 2 * j], want_o, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scalars.vectors[:, 2 * j + 1], want_a, rtol=1e-5, atol=1e-5)
  plain = transfers.pfcdr_plus_scalars(run, grid[0])[users]
  assert not np.allclose(scalars.vectors[:, :2], plain)  # noised
  assert full.vectors.shape == (len(users), d + 2 * len(grid)) and full.mae == 0.8
  assert scalars.settings["laplace_scale"] == 4.0 and scalars.name.startswith("PFCDR+(eps=1)")
