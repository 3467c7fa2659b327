"""Pretraining's fast paths: deferred and lazy (row-sparse) Adam, host-drawn epoch orders,
early stop.

Each is checked against a reference: lazy Adam against ``optax.adam`` where every row
is touched and against a numpy lazy-Adam step with repeated rows; the host order is a
seeded permutation; early stopping is a prefix of the full run that ends where the
patience rule says.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from pfcdr_jax.models import deferred_adam, early_stop, lazy_adam, scorers, train, train_epoch

import test_train  # the planted domain (tests/ is on the path: pytest rootdir conftest)


def _planted(seed=0, n_users=60, n_items=40, rank=3, density=0.6):
  """test_train's planted low-rank domain, smaller and denser."""
  return test_train._planted(seed, n_users, n_items, rank, density)


@pytest.mark.parametrize("name", ["mf", "gmf", "dnn"])
def test_lazy_adam_equals_dense_adam_when_every_row_is_touched(name):
  # One minibatch holds all training ratings: every user and item row is touched at
  # every step, where lazy and dense Adam are the same optimiser.
  dom = _planted()
  n = dom.rating.size
  base = dict(lrs=(0.01, 0.05), epochs=3, batch_size=n, heldout_fraction=0.1, shuffle="host")
  sc = scorers.get_scorer(name)
  dense = train.train_scorer(sc, dom, train.TrainConfig(optimizer="adam", **base),
                             jax.random.key(0))
  lazy = train.train_scorer(sc, dom, train.TrainConfig(optimizer="lazy_adam", **base),
                            jax.random.key(0))
  np.testing.assert_allclose(lazy.curve, dense.curve, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(lazy.params), jax.tree_util.tree_leaves(dense.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def _dense_adam_f64(p0, idxs, grads, lrs):
  """numpy float64 dense Adam over sparse steps: step t adds grads[t, b] to row
  idxs[t, b] (rows repeat) and every row takes the Adam step."""
  p, m, v = p0.astype(np.float64), np.zeros(p0.shape), np.zeros(p0.shape)
  for t in range(1, len(idxs) + 1):
    g = np.zeros_like(p)
    for b, row in enumerate(idxs[t - 1]):
      if row < p.shape[0]:
        g[row] += grads[t - 1, b]
    m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    step = (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    p = p - lrs[None, :, None] * step
  return p, m, v


def test_deferred_adam_reproduces_dense_adam_over_sparse_steps():
  # 400 steps of 4 examples on a 30-row table (rows idle for dozens of steps, some
  # repeated in a step, some padded slots): the closed-form catch-up lands where
  # dense Adam's step-by-step drift does, within float32 rounding (dense float32
  # Adam is compared with the same float64 reference for scale).
  rng = np.random.default_rng(0)
  n, L, d, B, T = 30, 2, 3, 4, 400
  lrs = np.array([0.01, 0.1], np.float32)
  p0 = rng.normal(size=(n, L, d)).astype(np.float32)
  idxs = rng.integers(0, n + 1, size=(T, B))      # n: a padded slot
  grads = rng.normal(size=(T, B, L, d)).astype(np.float32)
  want_p, want_m, want_v = _dense_adam_f64(p0, idxs, grads, lrs)
  zeros = jnp.zeros((L, n, d))
  tab = deferred_adam.to_rows(jnp.swapaxes(jnp.asarray(p0), 0, 1), zeros, zeros, 0)
  table = jnp.asarray(deferred_adam.idle_gain_table())
  for t in range(1, T + 1):
    idx = jnp.asarray(idxs[t - 1])
    rows = deferred_adam.gather(tab, idx, jnp.asarray(t - 1), jnp.asarray(lrs), table)
    tab = deferred_adam.rows_step(tab, idx, rows, jnp.asarray(grads[t - 1]),
                                  jnp.asarray(t, jnp.int32), jnp.asarray(lrs))
  p, m, v = (np.swapaxes(np.asarray(x), 0, 1) for x in deferred_adam.catch_up_all(
      tab, jnp.asarray(T), jnp.asarray(lrs), table))
  adam, dense = optax.scale_by_adam(), jnp.asarray(p0)
  state = adam.init(dense)
  for t in range(T):
    g = np.zeros(p0.shape, np.float32)
    for b, row in enumerate(idxs[t]):
      if row < n:
        g[row] += grads[t, b]
    upd, state = adam.update(jnp.asarray(g), state)
    dense = dense - jnp.asarray(lrs)[None, :, None] * upd
  f32_err = np.abs(np.asarray(dense) - want_p).max()
  assert 0 < f32_err < 1e-3
  assert np.abs(p - want_p).max() < 4 * f32_err
  np.testing.assert_allclose(m, want_m, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(v, want_v, rtol=1e-4, atol=1e-9)
  # Lazy Adam (the other row-sparse optimiser) is a different trajectory.
  assert np.abs(p0 - want_p).max() > 1.0


def test_idle_gain_table_is_the_sum_it_stands_for():
  table = deferred_adam.idle_gain_table()
  r, s = deferred_adam.R, np.arange(1, 200_001, dtype=np.float64)
  c = np.sqrt(1 - 0.999 ** s) / (1 - 0.9 ** s)
  for a in (0, 1, 17, 900, 39_000):
    j = np.arange(1, 200_001 - a)
    assert table[a] == pytest.approx(float(np.sum(r ** j * c[a + j - 1])), rel=1e-6)


@pytest.mark.parametrize("name,offsets", [("mf", "none"), ("gmf", "none"), ("dnn", "none"),
                                          ("mf", "bias"), ("dnn", "bias")])
def test_deferred_adam_trains_as_dense_adam_on_minibatches(name, offsets):
  # Minibatches of 16 of ~1,400 ratings: most rows idle at most steps. The held-out
  # curve and the selected (lr, epoch) are dense Adam's.
  dom = _planted()
  base = dict(lrs=(0.01, 0.05), epochs=4, batch_size=16, heldout_fraction=0.1,
              shuffle="host")
  sc = scorers.get_scorer(name, offsets=offsets)
  dense = train.train_scorer(sc, dom, train.TrainConfig(optimizer="adam", **base),
                             jax.random.key(0))
  deferred = train.train_scorer(sc, dom, train.TrainConfig(optimizer="deferred_adam",
                                                           **base), jax.random.key(0))
  # The two differ by float32 rounding (an idle row's drift is summed in one step) and
  # the idle-step eps (deferred_adam's docstring); lr 0.05 amplifies that over the
  # epochs, so the first epoch is held tighter than the rest.
  np.testing.assert_allclose(deferred.curve[:, 0], dense.curve[:, 0], rtol=5e-5)
  np.testing.assert_allclose(deferred.curve, dense.curve, rtol=1e-3)
  assert (deferred.lr, deferred.epoch) == (dense.lr, dense.epoch)


def test_rows_step_equals_numpy_lazy_adam_with_repeated_rows():
  rng = np.random.default_rng(1)
  n, L, d, B = 7, 2, 3, 5
  p0, m0, v0 = (rng.normal(size=(n, L, d)).astype(np.float32) for _ in range(3))
  v0 = np.abs(v0)
  idx = np.array([4, 1, 4, 7, 2])          # row 4 twice; 7 == n: a padded slot
  g = rng.normal(size=(B, L, d)).astype(np.float32)
  lrs = np.array([0.1, 0.01], np.float32)
  t = 3.0
  tab = lazy_adam.RowTables(p=jnp.asarray(p0), m=jnp.asarray(m0), v=jnp.asarray(v0),
                            g=jnp.zeros((n, L, d)))
  out = lazy_adam.rows_step(tab, jnp.asarray(idx), jnp.asarray(g), jnp.asarray(t),
                            jnp.asarray(lrs))
  want_p, want_m, want_v = p0.copy(), m0.copy(), v0.copy()
  for row in (1, 2, 4):
    gs = g[idx == row].sum(axis=0)
    m = 0.9 * m0[row] + 0.1 * gs
    v = 0.999 * v0[row] + 0.001 * gs * gs
    step = (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    want_p[row], want_m[row], want_v[row] = p0[row] - lrs[:, None] * step, m, v
  np.testing.assert_allclose(np.asarray(out.p), want_p, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(out.m), want_m, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(out.v), want_v, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(out.g), 0.0)     # accumulator clean again
  untouched = [0, 3, 5, 6]
  np.testing.assert_array_equal(np.asarray(out.p)[untouched], p0[untouched])


def test_dense_step_equals_optax_adam():
  rng = np.random.default_rng(2)
  params = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)}
  opt = optax.adam(0.05)
  state = opt.init(params)
  mu = nu = jax.tree_util.tree_map(jnp.zeros_like, params)
  ours = params
  for t in range(1, 4):
    grads = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)}
    upd, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, upd)
    ours, mu, nu = lazy_adam.dense_step(ours, grads, mu, nu, jnp.asarray(float(t)), 0.05)
  np.testing.assert_allclose(np.asarray(ours["w"]), np.asarray(params["w"]), rtol=1e-5)


def test_lazy_adam_learns_on_minibatches():
  dom = _planted(seed=3)
  cfg = train.TrainConfig(lrs=(0.02,), epochs=15, batch_size=64, heldout_fraction=0.1,
                          optimizer="lazy_adam", shuffle="host")
  res = train.train_scorer(scorers.get_scorer("mf"), dom, cfg, jax.random.key(1))
  untrained = float(res.curve[0, 0])
  assert res.heldout_mse < 0.5 * float(np.var(dom.rating)), res.heldout_mse
  assert res.heldout_mse < 0.5 * untrained


def test_host_order_is_a_seeded_permutation():
  key = jax.random.key(7)
  a, b = train_epoch.host_order(key, 0, 1000), train_epoch.host_order(key, 0, 1000)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(np.sort(a), np.arange(1000))
  assert a.dtype == np.int32
  assert not np.array_equal(a, train_epoch.host_order(key, 1, 1000))
  assert not np.array_equal(a, train_epoch.host_order(jax.random.key(8), 0, 1000))


def test_early_stopping_is_a_prefix_of_the_full_run():
  dom = _planted(seed=4)
  base = dict(lrs=(0.05, 0.2), epochs=40, batch_size=64, heldout_fraction=0.1, shuffle="host")
  sc = scorers.get_scorer("mf")
  full = train.train_scorer(sc, dom, train.TrainConfig(**base), jax.random.key(2))
  early = train.train_scorer(sc, dom, train.TrainConfig(patience=3, early_stop="any_lr", **base),
                             jax.random.key(2))
  n = early.curve.shape[1]
  assert n < 40       # these lrs overfit early: the run must stop
  np.testing.assert_allclose(early.curve, full.curve[:, :n], rtol=1e-6)
  best_epoch = np.argmin(full.curve[:, :n], axis=1) + 1    # per lr, within the prefix
  assert n - int(best_epoch.max()) == 3    # stopped `patience` epochs after the last gain
  li = int(np.argmin(full.curve[:, :n].min(axis=1)))
  assert (early.lr, early.epoch) == (base["lrs"][li], int(best_epoch[li]))
  assert early.heldout_mse == pytest.approx(float(full.curve[:, :n].min()), rel=1e-6)


def _per_lr_stops(curve, patience):
  """numpy reference: each lr's last epoch under per-lr patience (first stall)."""
  stops = []
  for row in curve:
    best, best_e, stop = np.inf, 0, len(row)
    for e, v in enumerate(row):
      if v < best:
        best, best_e = v, e + 1
      if e + 1 - best_e >= patience:
        stop = e + 1
        break
    stops.append(stop)
  return stops


def test_per_lr_early_stop_drops_each_lr_at_its_own_stall():
  dom = _planted(seed=4)
  base = dict(lrs=(0.002, 0.05, 0.2), epochs=40, batch_size=64, heldout_fraction=0.1,
              shuffle="host")
  sc = scorers.get_scorer("mf")
  full = train.train_scorer(sc, dom, train.TrainConfig(**base), jax.random.key(2))
  early = train.train_scorer(sc, dom, train.TrainConfig(patience=3, early_stop="per_lr", **base),
                             jax.random.key(2))
  stops = _per_lr_stops(full.curve, 3)
  assert len(set(stops)) > 1           # the lrs stall at different epochs
  assert early.curve.shape == (3, max(stops))
  for li, stop in enumerate(stops):    # trained exactly until its own stall, then NaN
    np.testing.assert_allclose(early.curve[li, :stop], full.curve[li, :stop], rtol=1e-5)
    assert np.all(np.isnan(early.curve[li, stop:]))
  best = [float(np.min(full.curve[li, :stop])) for li, stop in enumerate(stops)]
  li = int(np.argmin(best))
  assert early.lr == base["lrs"][li]
  assert early.epoch == int(np.argmin(full.curve[li, :stops[li]])) + 1
  assert early.heldout_mse == pytest.approx(best[li], rel=1e-5)
  # The selected params are that (lr, epoch)'s: the same as a run that stops there.
  at = train.train_scorer(sc, dom, train.TrainConfig(**dict(base, lrs=(early.lr,),
                                                            epochs=early.epoch)),
                          jax.random.key(2))
  for a, b in zip(jax.tree_util.tree_leaves(early.params), jax.tree_util.tree_leaves(at.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rule", ["per_lr", "per_lr_reach"])
def test_per_lr_early_stop_in_a_seed_stack_equals_each_seed_alone(rule):
  a = _planted(seed=4)
  b = test_train.dataclasses.replace(a, rating=np.asarray(a.rating[::-1]))
  sc = scorers.get_scorer("mf")
  cfgs = [train.TrainConfig(lrs=(0.0005, 0.05, 0.2), epochs=30, batch_size=64, seed=s,
                            heldout_fraction=0.1, shuffle="host", patience=3,
                            early_stop=rule) for s in (0, 1)]
  keys = [jax.random.key(s) for s in (5, 6)]
  stacked = train.train_scorer_seeds(sc, [a, b], cfgs, keys)
  for dom, cfg, key, got in zip((a, b), cfgs, keys, stacked):
    want = train.train_scorer(sc, dom, cfg, key)
    assert (got.lr, got.epoch) == (want.lr, want.epoch)
    n = want.curve.shape[1]     # the stack runs until its last seed stops
    np.testing.assert_allclose(got.curve[:, :n], want.curve, rtol=1e-5)
    assert np.all(np.isnan(got.curve[:, n:]))
    for x, y in zip(jax.tree_util.tree_leaves(got.params), jax.tree_util.tree_leaves(want.params)):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_epochs_without_gain_rules():
  best_mse = np.array([0.9, 0.5, 0.7])        # lr 1 is the selected one, best at epoch 4
  best_epoch = np.array([10, 4, 7])
  assert early_stop.epochs_without_gain(best_mse, best_epoch, 12, "any_lr") == 2
  assert early_stop.epochs_without_gain(best_mse, best_epoch, 12, "selected") == 8
  # A seed stack [S, L]: the count is the smallest over seeds (stop once all stalled).
  mse2 = np.stack([best_mse, np.array([0.4, 0.5, 0.7])])
  ep2 = np.stack([best_epoch, np.array([11, 4, 7])])
  assert early_stop.epochs_without_gain(mse2, ep2, 12, "selected") == 1
  assert early_stop.epochs_without_gain(mse2, ep2, 12, "any_lr") == 1


def test_early_stop_on_the_selected_lr_ignores_a_slow_lr_still_improving():
  # "selected" counts only gains of the best MSE over the lrs: it stops `patience`
  # epochs after the best so far although the slow lr is still improving; "any_lr"
  # runs on.
  dom = _planted(seed=4)
  base = dict(lrs=(0.002, 0.2), epochs=40, batch_size=64, heldout_fraction=0.1,
              shuffle="host", patience=3)
  sc = scorers.get_scorer("mf")
  full = train.train_scorer(sc, dom, train.TrainConfig(**dict(base, patience=None)),
                            jax.random.key(2))
  sel = train.train_scorer(sc, dom, train.TrainConfig(early_stop="selected", **base),
                           jax.random.key(2))
  anylr = train.train_scorer(sc, dom, train.TrainConfig(early_stop="any_lr", **base),
                             jax.random.key(2))
  n = sel.curve.shape[1]
  np.testing.assert_allclose(sel.curve, full.curve[:, :n], rtol=1e-6)
  li, e = np.unravel_index(np.argmin(full.curve[:, :n]), (2, n))
  assert (sel.lr, sel.epoch) == (base["lrs"][li], e + 1) and n == sel.epoch + 3
  assert full.curve[0, n - 1] < full.curve[0, n - 2]        # lr 0.002 was still improving
  assert anylr.curve.shape[1] > n


def test_cannot_reach_extrapolates_the_steepest_recent_gain():
  fast = [1.0, 0.8, 0.7, 0.65, 0.62, 0.60]
  slow = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]          # gains 0.1 per epoch
  curve = np.array([fast, slow]).T                # [E=6, L=2]
  # 4 epochs left: 2.5 - 4 x 0.1 = 2.1 > 0.60; 24 left: 0.1 < 0.60.
  np.testing.assert_array_equal(early_stop.cannot_reach(curve, 10, 5), [False, True])
  np.testing.assert_array_equal(early_stop.cannot_reach(curve, 30, 5), [False, False])
  assert not early_stop.cannot_reach(curve[:5], 10, 5).any()     # too few epochs to judge
  # The window: over the last 2 gains (0.1) or after a late jump (NaN = untrained).
  jump = np.array(slow[:4] + [1.7, 1.6])
  np.testing.assert_array_equal(early_stop.cannot_reach(np.array([fast, jump]).T, 10, 2),
                                [False, False])            # 1.6 - 4 x 0.9 < 0.60
  stopped = np.array(fast[:3] + [np.nan] * 3)               # best 0.7 is kept
  np.testing.assert_array_equal(early_stop.cannot_reach(np.array([stopped, slow]).T, 10, 5),
                                [False, True])
  # A seed axis [E, S, L]: each seed against its own best.
  both = np.stack([curve, np.array([[1.0 - 0.01 * e for e in range(6)], [0.5] * 6]).T], axis=1)
  np.testing.assert_array_equal(early_stop.cannot_reach(both, 10, 5),
                                [[False, True], [True, False]])


# Held-out MSE per epoch of lr = 0.001 and lr = 0.1 beside the best lr (0.01: 1.0500
# at epoch 1, then worse) on synthetic music2movie, seed 0 (the run of 2026-12-05).
_M2M_SLOW = [1.2376, 1.1980, 1.1649, 1.1375, 1.1156, 1.0984, 1.0861, 1.0786, 1.0754,
             1.0764, 1.0813, 1.0894, 1.1003]
_M2M_DIVERGED = [8.6491, 9.0699, 7.6407, 5.7497, 4.5665, 3.8442, 3.5734, 3.7310, 4.8226,
                 9.9013, 25.767]
_M2M_BEST = [1.0500] + [1.1147 + 0.1 * e for e in range(12)]


def _first_stop(curves, geometric, epochs=20, window=5):
  """Per lr, the first epoch count at which cannot_reach says stop (None: never)."""
  n = max(len(c) for c in curves)
  curve = np.array([list(c) + [np.nan] * (n - len(c)) for c in curves]).T   # NaN: stopped
  out = []
  for j in range(curve.shape[1]):
    stops = [e for e in range(1, n + 1)
             if early_stop.cannot_reach(curve[:e], epochs, window, geometric=geometric)[j]]
    out.append(stops[0] if stops else None)
  return out


def test_geometric_reach_stops_shrinking_gains_the_line_keeps():
  line = _first_stop([_M2M_BEST, _M2M_SLOW, _M2M_DIVERGED], geometric=False)
  geo = _first_stop([_M2M_BEST, _M2M_SLOW, _M2M_DIVERGED], geometric=True)
  assert line[0] is None and geo[0] is None        # the grid's best never stops by reach
  assert line[1] == 13 and geo[1] == 10            # lr 0.001: shrinking gains, best 1.0754
  assert line[2] == 11 and geo[2] == 8             # lr 0.1: recovering, then worse
  # Never beyond the line: whatever the line stops, the geometric rule stops too.
  fast = [1.0, 0.8, 0.7, 0.65, 0.62, 0.60]
  slow = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]
  curve = np.array([fast, slow]).T
  for epochs in (10, 30, 60):
    line_stop = early_stop.cannot_reach(curve, epochs, 5)
    assert np.all(early_stop.cannot_reach(curve, epochs, 5, geometric=True) >= line_stop)
  # The price: gains that do not shrink are projected at ratio 0.95, so 0.1 per epoch
  # for 20 epochs left reaches 0.1 x 0.95 (1 - 0.95^20) / 0.05 = 1.22, not the line's
  # 2.0: with 26 epochs the line keeps the slow lr (2.5 - 2.0 < 0.60), this rule drops it.
  assert not early_stop.cannot_reach(curve, 26, 5)[1]
  assert early_stop.cannot_reach(curve, 26, 5, geometric=True)[1]


def test_per_lr_reach_drops_a_slow_lr_that_cannot_catch_up():
  dom = _planted(seed=4)
  base = dict(lrs=(0.0005, 0.05), epochs=25, batch_size=64, heldout_fraction=0.1,
              shuffle="host", patience=3)
  sc = scorers.get_scorer("mf")
  per = train.train_scorer(sc, dom, train.TrainConfig(early_stop="per_lr", **base),
                           jax.random.key(2))
  reach = train.train_scorer(sc, dom, train.TrainConfig(early_stop="per_lr_reach", **base),
                             jax.random.key(2))
  stop_per = int(np.sum(~np.isnan(per.curve[0])))
  stop_reach = int(np.sum(~np.isnan(reach.curve[0])))
  assert stop_reach < stop_per          # the slow lr left the stack earlier ...
  np.testing.assert_allclose(reach.curve[0, :stop_reach], per.curve[0, :stop_reach], rtol=1e-6)
  want = early_stop.cannot_reach(per.curve[:, :stop_reach].T, 25, 3)
  assert want[0] and not early_stop.cannot_reach(per.curve[:, :stop_reach - 1].T, 25, 3)[0]
  assert (reach.lr, reach.epoch) == (per.lr, per.epoch) == (0.05, per.epoch)  # ... same pick
  assert reach.heldout_mse == pytest.approx(per.heldout_mse, rel=1e-6)


def test_bad_fast_path_settings():
  with pytest.raises(ValueError, match="optimizer"):
    train.TrainConfig(optimizer="sgd")
  with pytest.raises(ValueError, match="shuffle"):
    train.TrainConfig(shuffle="gpu")
  with pytest.raises(ValueError, match="patience"):
    train.TrainConfig(patience=0)
  with pytest.raises(ValueError, match="early_stop"):
    train.TrainConfig(early_stop="never")


def test_auto_optimizer_takes_deferred_adam_for_large_tables_only():
  from pfcdr_jax.models.train_config import AUTO_DEFERRED_BATCHES, resolve_optimizer
  bs = 4096
  assert resolve_optimizer("auto", AUTO_DEFERRED_BATCHES * bs, bs) == "adam"
  assert resolve_optimizer("auto", AUTO_DEFERRED_BATCHES * bs + 1, bs) == "deferred_adam"
  assert resolve_optimizer("lazy_adam", 10, bs) == "lazy_adam"
  assert resolve_optimizer("adam", 10**7, bs) == "adam"
  # The planted test domain is small: "auto" trains it exactly as dense Adam.
  dom = _planted()
  base = dict(lrs=(0.01,), epochs=2, batch_size=16, heldout_fraction=0.1, shuffle="host")
  sc = scorers.get_scorer("mf")
  auto = train.train_scorer(sc, dom, train.TrainConfig(**base), jax.random.key(0))
  dense = train.train_scorer(sc, dom, train.TrainConfig(optimizer="adam", **base),
                             jax.random.key(0))
  np.testing.assert_array_equal(auto.curve, dense.curve)


@pytest.mark.parametrize("name", ["mf", "gmf", "dnn"])
def test_stopped_lrs_kept_in_the_stack_change_no_number(name, monkeypatch):
  # Whether stopped lrs leave the stack at once (SHRINK_MIN_WORK 0) or stay in it,
  # masked, until one lr is left (a huge SHRINK_MIN_WORK) is a matter of speed only.
  dom = _planted(seed=5)
  cfg = train.TrainConfig(lrs=(0.0005, 0.005, 0.02, 0.05, 0.2), epochs=25, batch_size=64,
                          heldout_fraction=0.1, patience=3,
                          early_stop="per_lr_reach_geometric")
  sc = scorers.get_scorer(name)
  runs = []
  for work in (0, 10**12):
    monkeypatch.setattr(early_stop, "SHRINK_MIN_WORK", work)
    runs.append(train.train_scorer(sc, dom, cfg, jax.random.key(4)))
  shrunk, kept = runs
  n_run = np.sum(~np.isnan(shrunk.curve), axis=1)
  assert len(set(n_run.tolist())) > 2          # lrs stopped at several different epochs
  np.testing.assert_array_equal(shrunk.curve, kept.curve)
  assert (shrunk.lr, shrunk.epoch, shrunk.heldout_mse) == (kept.lr, kept.epoch,
                                                           kept.heldout_mse)
  chex.assert_trees_all_equal(shrunk.params, kept.params)


def test_worth_shrinking():
  keep = np.array([True, True, False])
  assert early_stop.worth_shrinking(keep, None)
  assert not early_stop.worth_shrinking(keep, early_stop.SHRINK_MIN_WORK - 1)
  assert early_stop.worth_shrinking(keep, early_stop.SHRINK_MIN_WORK)
  assert early_stop.worth_shrinking(np.array([True, False, False]), 1)   # one lr left
  assert not early_stop.worth_shrinking(np.ones(3, bool), 10**12)       # nothing stopped


def test_rising():
  nan = np.nan
  curve = np.array([[1.00, 1.20, 9.0, 1.5],
                    [1.10, 1.10, 9.5, 1.4],
                    [1.20, 1.05, 9.6, nan]])      # [E, L]
  np.testing.assert_array_equal(early_stop.rising(curve), [True, False, True, False])
  np.testing.assert_array_equal(early_stop.rising(curve[:2]), [False] * 4)   # too short
  np.testing.assert_array_equal(early_stop.rising(curve, 1), [True, False, True, False])
  np.testing.assert_array_equal(early_stop.rising(curve[:, None, :])[0],
                                [True, False, True, False])          # a seed axis


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_replay_on_a_recorded_curve_is_the_run_under_that_rule(name):
  """early_stop.replay of per_lr_reach_rise on a per_lr_reach_geometric run's curves
  gives the curves (to float32 rounding), the selection and the epochs of a real
  per_lr_reach_rise run."""
  dom = _planted(seed=5, density=0.3)
  base = dict(lrs=(0.0005, 0.005, 0.02, 0.05, 0.5), epochs=25, batch_size=64,
              heldout_fraction=0.1, patience=6)
  sc = scorers.get_scorer(name)
  rec = train.train_scorer(sc, dom, train.TrainConfig(early_stop="per_lr_reach_geometric",
                                                      **base), jax.random.key(4))
  real = train.train_scorer(sc, dom, train.TrainConfig(early_stop="per_lr_reach_rise",
                                                       **base), jax.random.key(4))
  # The itself-replay is the identity; the rise rule stops some lr earlier here.
  same, n_same = early_stop.replay(rec.curve.T, "per_lr_reach_geometric", 6, 25)
  np.testing.assert_array_equal(same, rec.curve.T)
  assert n_same == rec.curve.shape[1]
  got, n = early_stop.replay(rec.curve.T, "per_lr_reach_rise", 6, 25)
  assert np.sum(~np.isnan(got)) < np.sum(~np.isnan(rec.curve))
  assert n == real.curve.shape[1]
  # The same epochs trained; the values equal up to float32 rounding (a stack whose
  # other lrs are masked at other epochs may round the last bit differently).
  np.testing.assert_array_equal(np.isnan(got), np.isnan(real.curve.T))
  np.testing.assert_allclose(got, real.curve.T, rtol=1e-6)
  li = int(np.nanargmin(np.nanmin(got, axis=0)))
  assert (real.lr, real.epoch) == (base["lrs"][li], int(np.nanargmin(got[:, li])) + 1)
  # A rule that would train beyond the recording is refused.
  with pytest.raises(ValueError, match="that the recorded run did not"):
    early_stop.replay(got, "per_lr_reach_geometric", 6, 25)


@pytest.mark.parametrize("n_rows", [None, 30, 2 ** 20])
def test_repeat_groups_packed_key_equals_stable_argsort(n_rows):
  """The packed uint32 key (row * B + position) sorts as the stable argsort does, so
  every path groups the same examples and sums them in the same order. 2^20 rows with
  B = 4096 overflow 32 bits and take the argsort (the key is then not packed)."""
  rng = np.random.default_rng(3)
  B, n = 4096, 30
  idx = jnp.asarray(rng.integers(0, n + 1, size=B), jnp.int32)     # n: a padded slot
  order, seg, pos = (np.asarray(x) for x in deferred_adam.repeat_groups(idx, n_rows))
  want = np.argsort(np.asarray(idx), kind="stable")
  np.testing.assert_array_equal(order, want)
  s = np.asarray(idx)[want]
  np.testing.assert_array_equal(seg, np.concatenate([[0], np.cumsum(s[1:] != s[:-1])]))
  # pos: each example's group, the group of its row in sorted order.
  np.testing.assert_array_equal(s[np.searchsorted(seg, pos)], np.asarray(idx))
  grads = jnp.asarray(rng.normal(size=(B, 2, 3)), jnp.float32)
  got = np.asarray(deferred_adam.sum_repeats(idx, grads, deferred_adam.repeat_groups(idx, n_rows)))
  g = np.asarray(grads)
  for b in rng.integers(0, B, size=50):
    np.testing.assert_allclose(got[b], g[np.asarray(idx) == np.asarray(idx)[b]].sum(0),
                               rtol=1e-5, atol=1e-5)
