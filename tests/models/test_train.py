"""Pretraining: lowers held-out MSE on a planted low-rank matrix, no retracing."""
import dataclasses
from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.models import heldout, scorers, train, train_epoch


@dataclasses.dataclass(frozen=True)
class Domain:  # stand-in for pfcdr_jax.data.splits.DomainData
  user: np.ndarray
  item: np.ndarray
  rating: np.ndarray
  n_users: int
  n_items: int


def _planted(seed=0, n_users=120, n_items=80, rank=3, density=0.5):
  rng = np.random.default_rng(seed)
  A, B = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
  mask = rng.random((n_users, n_items)) < density
  u, i = np.nonzero(mask)
  r = 3.0 + 0.7 * np.sum(A[u] * B[i], axis=1) + 0.05 * rng.normal(size=u.size)
  return Domain(u.astype(np.int32), i.astype(np.int32), r.astype(np.float32),
                n_users, n_items)


@pytest.mark.parametrize("name", ["mf", "gmf", "dnn"])
def test_training_lowers_heldout_mse_and_picks_sane_lr(name):
  dom = _planted()
  cfg = train.TrainConfig(lrs=(1e-4, 0.02), epochs=15, batch_size=256,
                          heldout_fraction=0.1, seed=0)
  res = train.train_scorer(scorers.get_scorer(name), dom, cfg, jax.random.key(0))
  assert res.curve.shape == (2, 15)
  # The tiny lr barely moves in 15 epochs; the grid must pick the working one.
  assert res.lr == 0.02
  var = float(np.var(dom.rating))
  assert res.heldout_mse < 0.5 * var, (res.heldout_mse, var)
  assert res.heldout_mse == pytest.approx(float(np.min(res.curve)), rel=1e-6)
  assert res.curve[1, res.epoch - 1] == pytest.approx(res.heldout_mse, rel=1e-6)
  assert 1 <= res.epoch <= 15
  # Returned params reproduce the reported held-out MSE.
  _, ho = heldout.heldout_split(dom.rating.size, 0.1, 0)
  pred = scorers.get_scorer(name).predict(res.params, jnp.asarray(dom.user[ho]),
                                          jnp.asarray(dom.item[ho]))
  mse = float(np.mean((np.asarray(pred) - dom.rating[ho]) ** 2))
  assert mse == pytest.approx(res.heldout_mse, rel=1e-4)


def test_vmapped_lr_grid_equals_single_lr_runs():
  dom = _planted(seed=1, n_users=40, n_items=30)
  sc = scorers.get_scorer("mf")
  base = dict(epochs=3, batch_size=64, heldout_fraction=0.1, seed=0)
  both = train.train_scorer(sc, dom, train.TrainConfig(lrs=(0.01, 0.05), **base),
                            jax.random.key(3))
  for li, lr in enumerate((0.01, 0.05)):
    one = train.train_scorer(sc, dom, train.TrainConfig(lrs=(lr,), **base), jax.random.key(3))
    np.testing.assert_allclose(one.curve[0], both.curve[li], rtol=1e-4)


def test_epoch_function_never_retraces():
  dom = _planted(seed=2, n_users=30, n_items=20)
  sc = scorers.get_scorer("mf")
  cfg = train.TrainConfig(lrs=(0.01, 0.02), epochs=4, batch_size=50)
  tr, ho = heldout.heldout_split(dom.rating.size, cfg.heldout_fraction, cfg.seed)
  chex.clear_trace_counter()
  fn = jax.jit(chex.assert_max_traces(train_epoch.make_epoch_fn(sc, cfg, tr.size), n=1))
  params = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]),
                                  sc.init(jax.random.key(0), 30, 20, 10))
  import optax
  state = train_epoch._State(params=params, opt=jax.vmap(optax.scale_by_adam().init)(params),
                             best_params=params, best_mse=jnp.full((2,), jnp.inf, jnp.float32),
                             best_epoch=jnp.zeros((2,), jnp.int32))
  trd = tuple(jnp.asarray(x[tr]) for x in (dom.user, dom.item, dom.rating))
  hod = tuple(jnp.asarray(x[ho]) for x in (dom.user, dom.item, dom.rating))
  for e in range(4):  # a retrace would raise AssertionError
    state, mse = fn(state, jnp.asarray(cfg.lrs), trd, hod, jax.random.key(1),
                    jnp.asarray(e, jnp.int32))
  assert mse.shape == (2,)
  # train_scorer counts its own traces and raises on a retrace.
  train.train_scorer(sc, dom, cfg, jax.random.key(0))


def test_heldout_split_is_seeded_and_disjoint():
  a = heldout.heldout_split(1000, 0.1, 5)
  b = heldout.heldout_split(1000, 0.1, 5)
  np.testing.assert_array_equal(a[1], b[1])
  assert len(a[1]) == 100 and not set(a[0]) & set(a[1])
  with pytest.raises(ValueError):
    heldout.heldout_split(10, 1.5, 0)


def test_requires_key():
  with pytest.raises(ValueError):
    train.train_scorer(scorers.get_scorer("mf"), _planted(), train.TrainConfig(), None)


@pytest.mark.parametrize("name", ["mf", "dnn"])
def test_seed_stack_equals_one_run_per_seed(name):
  """Seeds vmapped together give each seed's own train_scorer result."""
  sc = scorers.get_scorer(name)
  a = _planted(seed=4, n_users=40, n_items=30)
  # Same shape, different ratings: a second seed's data (e.g. another synthetic draw).
  b = dataclasses.replace(a, rating=np.asarray(a.rating[::-1]))
  doms = [a, a, b]
  cfgs = [train.TrainConfig(lrs=(0.01, 0.05), epochs=4, batch_size=64, seed=s)
          for s in (0, 1, 2)]
  keys = [jax.random.key(s) for s in (10, 11, 12)]
  stacked = train.train_scorer_seeds(sc, doms, cfgs, keys)
  assert len(stacked) == 3
  for dom, cfg, key, got in zip(doms, cfgs, keys, stacked):
    want = train.train_scorer(sc, dom, cfg, key)
    assert (got.lr, got.epoch) == (want.lr, want.epoch)
    np.testing.assert_allclose(got.curve, want.curve, rtol=1e-5)
    chex.assert_trees_all_close(got.params, want.params, rtol=1e-5, atol=1e-6)
  # Different seeds really are different runs.
  assert not np.allclose(stacked[0].curve, stacked[1].curve)


def test_seed_stack_refuses_shapes_that_do_not_match():
  sc = scorers.get_scorer("mf")
  a = _planted(seed=5, n_users=30, n_items=20)
  short = dataclasses.replace(a, user=a.user[:-1], item=a.item[:-1], rating=a.rating[:-1])
  cfg = train.TrainConfig(lrs=(0.01,), epochs=1, batch_size=64)
  with pytest.raises(ValueError, match="one shape"):
    train.train_scorer_seeds(sc, [a, short], [cfg, cfg], [jax.random.key(0)] * 2)
  with pytest.raises(ValueError, match="differ only in seed"):
    train.train_scorer_seeds(sc, [a, a], [cfg, dataclasses.replace(cfg, epochs=2)],
                             [jax.random.key(0)] * 2)


def _sparse_domain(seed=0, n_users=300, n_items=900, n=1500):
  """Few ratings per item, mean ~4.2: held-out items are mostly unseen in training."""
  rng = np.random.default_rng(seed)
  u = rng.integers(0, n_users, n).astype(np.int32)
  i = rng.integers(0, n_items, n).astype(np.int32)
  bias = 0.6 * rng.standard_normal(n_users)
  r = np.clip(np.rint(4.2 + bias[u] + 0.5 * rng.standard_normal(n)), 1, 5).astype(np.float32)
  return SimpleNamespace(user=u, item=i, rating=r, n_users=n_users, n_items=n_items)


def test_bare_product_stays_at_zero_start_and_offsets_beat_the_mean_predictor():
  """The failure the offsets fix: on sparse data the bare product's held-out MSE stays
  far above the mean predictor's; the biased form starts at the mean and beats it."""
  dom = _sparse_domain()
  cfg = train.TrainConfig(lrs=(0.01, 0.05), epochs=30, batch_size=128, patience=5)
  key = jax.random.PRNGKey(0)
  bare = train.train_scorer(scorers.get_scorer("mf"), dom, cfg, key)
  biased = train.train_scorer(scorers.get_scorer("mf", offsets="bias"), dom, cfg, key)
  assert bare.heldout_mse > 3 * bare.mean_mse
  assert biased.heldout_mse < biased.mean_mse
  np.testing.assert_allclose(biased.mean_mse, bare.mean_mse)


def test_mu_starts_at_the_training_mean():
  dom = _sparse_domain()
  cfg = train.TrainConfig(lrs=(1e-9,), epochs=1, batch_size=128)
  res = train.train_scorer(scorers.get_scorer("mf", offsets="global"), dom, cfg,
                           jax.random.PRNGKey(0))
  tr, _ = heldout.heldout_split(dom.rating.size, cfg.heldout_fraction, cfg.seed)
  np.testing.assert_allclose(float(res.params["mu"]), dom.rating[tr].mean(), rtol=1e-5)


def test_grid_is_extended_beyond_an_edge_and_reported():
  dom = _sparse_domain()
  cfg = train.TrainConfig(lrs=(1e-5, 1e-4), epochs=3, batch_size=128, grid_extend=2)
  res = train.train_scorer(scorers.get_scorer("mf", offsets="bias"), dom, cfg,
                           jax.random.PRNGKey(0))
  # Tiny lrs barely move: the best sits at the high edge, so 1e-3 and 1e-2 are tried.
  np.testing.assert_allclose(res.lrs_tried, (1e-5, 1e-4, 1e-3, 1e-2))
  assert res.lr in res.lrs_tried and res.lr >= 1e-3
  assert res.lr_at_edge == ("high" if res.lr == 1e-2 else "")
  assert res.cap_reached and res.epochs_run == 3   # no patience: the cap ended it
  none = train.train_scorer(scorers.get_scorer("mf", offsets="bias"), dom,
                            dataclasses.replace(cfg, grid_extend=0), jax.random.PRNGKey(0))
  assert none.lrs_tried == (1e-5, 1e-4) and none.lr_at_edge == "high"


@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam"])
def test_zero_opt_state_is_the_optimizers_own_init(optimizer):
  """The lr stack's optimiser state is built in numpy: it must equal the optimiser's
  own (vmapped) init, leaf for leaf, dtype included."""
  import optax
  from pfcdr_jax.models import lazy_adam
  opt_init = lazy_adam.init if optimizer == "lazy_adam" else optax.scale_by_adam().init
  params = {"user": jnp.ones((3, 7, 4)), "item": jnp.full((3, 5, 4), 2.0),
            "mu": jnp.ones((3,))}
  ours = train.zero_opt_state(opt_init, params)
  theirs = jax.vmap(opt_init)(params)
  assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
  for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
