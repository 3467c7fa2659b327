"""Pretraining of a scorer with an lr grid under vmap (Section 5.1, "Pretraining stage").

Adam on the mean squared error (Eq. 7). One epoch is a jitted
:func:`pfcdr_jax.models.minibatch.run_epoch` (the project's shared minibatch loop, a
``lax.scan`` over shuffled minibatches): the permutation comes from
``fold_in(key, epoch)``, the last batch is padded and masked so every step has the
same shape. The learning-rate grid (paper: {0.001, 0.005, 0.01, 0.02, 0.1}) trains
as one vmapped model stack:
``optax.scale_by_adam`` followed by a per-lr ``-lr`` scale. A seeded held-out slice
of the TRAINING ratings (never test) scores every (lr, epoch); the best params per
lr are kept inside the jitted epoch, and the best (lr, epoch) overall is returned.

The epoch function is jitted once per call of ``train_scorer`` and called once per
epoch with identical shapes, so it is traced once (``train_scorer`` counts traces
and raises if it ever retraces; the test guards ``make_epoch_fn`` with
``chex.assert_max_traces(n=1)``).

This module holds the loop over epochs (its configuration and result, re-exported here,
are in :mod:`train_config`); the parts live beside it: the epoch function in :mod:`train_epoch`, the held-out slice in
:mod:`heldout`, early stopping in :mod:`early_stop`, the grid's extension in
:mod:`lr_grid`.

Default batch size 4096: an ML-1M-size domain (300k ratings) runs 20 epochs x 5
lrs in seconds on 2 CPU cores, and Adam's dense moment update over the embedding
tables (the cost that scales with the number of steps) stays cheap for 1.7M-rating
domains.
"""
from __future__ import annotations

import dataclasses
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.infra import progress
from pfcdr_jax.models import lazy_adam
from pfcdr_jax.models import sharded_tables
from pfcdr_jax.models.early_stop import _Stack, _full_best, _stop_check, _take_lrs, stack_lrs
from pfcdr_jax.models.heldout import _split_domain, mean_predictor_mse
from pfcdr_jax.models.lr_grid import extend_grid, lr_edge
from pfcdr_jax.models.scorers import Scorer
from pfcdr_jax.models.train_config import EARLY_STOPS  # pylint: disable=unused-import
from pfcdr_jax.models.train_config import OPTIMIZERS  # pylint: disable=unused-import
from pfcdr_jax.models.train_config import SHUFFLES  # pylint: disable=unused-import
from pfcdr_jax.models.train_config import TrainConfig
from pfcdr_jax.models.train_config import TrainResult
from pfcdr_jax.models.train_epoch import _State, host_order, make_epoch_fn

log = logging.getLogger(__name__)


def _init_state(scorer: Scorer, domain, cfg: TrainConfig, k_init: jax.Array,
                mean: float = 0.0) -> _State:
  """The lr-stacked start state: every lr starts from the same ``scorer.init``; a
  scorer with rating offsets starts its ``mu`` at ``mean`` (the training mean)."""
  n_lrs = len(cfg.lrs)
  params0 = scorer.init(k_init, domain.n_users, domain.n_items, cfg.dim)
  if "mu" in params0:
    params0["mu"] = jnp.asarray(mean, jnp.float32)
  # Built in numpy and placed once: eager jnp ops would compile once per leaf shape
  # (early_stop.on_one_device); the values are the same.
  host = jax.tree_util.tree_map(
      lambda x: np.ascontiguousarray(np.broadcast_to(np.asarray(x), (n_lrs,) + x.shape)),
      params0)
  opt_init = lazy_adam.init if cfg.optimizer == "lazy_adam" else optax.scale_by_adam().init
  opt = zero_opt_state(opt_init, host)
  return _State(params=jax.device_put(host), opt=opt,
                best_params=jax.device_put(host),
                best_mse=jax.device_put(np.full((n_lrs,), np.inf, np.float32)),
                best_epoch=jax.device_put(np.zeros((n_lrs,), np.int32)))


def zero_opt_state(opt_init, params):
  """``jax.vmap(opt_init)(params)`` for an optimiser whose state starts at zero (Adam,
  lazy Adam: the count and both moments), built in numpy (tests check the two agree)."""
  shapes = jax.eval_shape(jax.vmap(opt_init), params)
  return jax.tree_util.tree_map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype)), shapes)


def _result(state: _State, curve: np.ndarray, cfg: TrainConfig,
            mean_mse: float = float("nan")) -> TrainResult:
  """Picks the best (lr, epoch) of one lr-stacked state (``best_*`` of every grid lr)."""
  best_mse = np.asarray(state.best_mse)
  li = int(np.argmin(best_mse))
  best = _take_lrs(state.best_params, li, 0)
  epoch, epochs_run = int(state.best_epoch[li]), int(curve.shape[-1])
  cap_reached = epochs_run >= cfg.epochs and (
      cfg.patience is None or epochs_run - epoch < cfg.patience)
  return TrainResult(params=best, lr=float(cfg.lrs[li]), epoch=epoch,
                     heldout_mse=float(best_mse[li]), curve=curve, mean_mse=float(mean_mse),
                     epochs_run=epochs_run, cap_reached=bool(cap_reached),
                     lrs_tried=tuple(float(x) for x in cfg.lrs),
                     lr_at_edge=lr_edge(cfg.lrs, float(cfg.lrs[li])))


def _epoch_order(k_shuffle: jax.Array, epoch: int, n: int, cfg: TrainConfig, n_seeds: int | None):
  """What ``epoch_fn`` takes as ``order``: the key, or the host order(s) ([S, n] stacked)."""
  if cfg.shuffle == "device":
    return k_shuffle
  if n_seeds is None:
    return jax.device_put(host_order(k_shuffle, epoch, n))
  return jax.device_put(np.stack([host_order(k_shuffle[s], epoch, n) for s in range(n_seeds)]))


def _run_epochs(epoch_fn, state, lrs, data_args, k_shuffle, cfg: TrainConfig, label: str,
                n: int, n_seeds: int | None = None, put=lambda x: x,
                place=lambda state: state):
  """Calls the jitted ``epoch_fn`` once per epoch, stopping early as ``cfg.patience`` and
  ``cfg.early_stop`` say.

  Returns ``(best, curve, n_shapes)``: a ``_State`` with the best params, MSE and epoch
  of every grid lr (lr axis in grid order), the held-out MSE of every epoch run ([L],
  or [S, L]; NaN for an lr no longer trained), and how many stack sizes ran (each
  compiles ``epoch_fn`` once). ``put`` places each epoch's small inputs (the lrs, the
  order, the epoch) beside the state (:func:`sharded_tables.replicate` on a mesh), and
  ``place`` lays the state out again after early stopping has touched it.
  """
  n_lrs = len(cfg.lrs)
  stack = _Stack(axis=0 if n_seeds is None else 1, cols=np.arange(n_lrs))
  state = state._replace(active=put(jax.device_put(np.ones(state.best_mse.shape, bool))))
  done, curve, sizes = {}, [], set()
  lrs_host = np.asarray(lrs)
  t0 = time.perf_counter()
  with progress.bar(cfg.epochs, f"pretrain {label}", unit="epoch") as bar:
    for epoch in range(cfg.epochs):
      order = _epoch_order(k_shuffle, epoch, n, cfg, n_seeds)
      sizes.add(len(stack.cols))
      was_active = np.asarray(state.active)
      state, mse = epoch_fn(state, put(jax.device_put(lrs_host[stack.cols])),
                            *data_args, put(order), put(jax.device_put(np.int32(epoch))))
      row = np.full(state.best_mse.shape[:-1] + (n_lrs,), np.nan, np.float32)
      row[..., stack.cols] = np.where(was_active, np.asarray(mse), np.nan)
      curve.append(row)
      if bar.enabled or log.isEnabledFor(logging.DEBUG):
        bar.set_postfix_str(f"best held-out MSE {float(np.nanmin(row)):.4f}, "
                            f"{len(stack.cols)} lrs")
        bar.update()
        log.debug("%s epoch %d/%d heldout mse %s (%.1fs)", label, epoch + 1, cfg.epochs,
                  np.round(row, 4).tolist(), time.perf_counter() - t0)
      stop, state, stack = _stop_check(state, stack, curve, cfg, done,
                                       n * (1 if n_seeds is None else n_seeds))
      state = place(state)
      if stop:
        log.debug("%s: early stop after epoch %d (%s, patience %d)", label, epoch + 1,
                  cfg.early_stop, cfg.patience)
        break
  return _full_best(state, stack, done, n_lrs), curve, len(sizes)


def _jit_counted(fn, out_shardings=None):
  """``jax.jit`` of ``fn`` (state donated) plus a trace counter (``counter[0]``).

  ``out_shardings``: where the outputs live (sharded tables: the state's own layout, so
  that the next epoch's input has the same shardings and nothing retraces)."""
  counter = [0]

  def counted(*args):
    counter[0] += 1  # runs at trace time only
    return fn(*args)

  if out_shardings is None:
    return jax.jit(counted, donate_argnums=(0,)), counter
  return jax.jit(counted, donate_argnums=(0,), out_shardings=out_shardings), counter


def train_scorer(scorer: Scorer, domain, cfg: TrainConfig = TrainConfig(),
                 key: jax.Array | None = None) -> TrainResult:
  """Trains ``scorer`` on ``domain`` over the lr grid and picks (lr, epoch).

  Eq. (7): minimise the mean squared rating error with Adam. When the selected lr is
  at an edge of the grid, ``cfg.grid_extend`` further lrs are tried beyond it
  (:func:`lr_grid.extend_grid`).

  Args:
    scorer: a ``Scorer``.
    domain: DomainData-like (``user``, ``item`` int arrays [R], ``rating`` [R],
      ``n_users``, ``n_items``).
    cfg: training configuration.
    key: PRNG key (init and per-epoch shuffles).

  Returns:
    TrainResult(params, lr, epoch, heldout_mse, curve [n_lrs, epochs_run], ...).
  """
  if key is None:
    raise ValueError("train_scorer needs an explicit PRNG key")
  train_one = lambda c: _train_grid(scorer, domain, c, key)
  return extend_grid(train_one, train_one(cfg), cfg)


def _train_grid(scorer: Scorer, domain, cfg: TrainConfig, key: jax.Array) -> TrainResult:
  """:func:`train_scorer` over ``cfg.lrs`` only (no grid extension)."""
  train_np, held_np = _split_domain(domain, cfg)
  mesh = sharded_tables.table_mesh() if cfg.shard_tables else None
  put = (lambda x: x) if mesh is None else (lambda x: sharded_tables.replicate(x, mesh))
  train = tuple(put(jnp.asarray(x)) for x in train_np)
  held = tuple(put(jnp.asarray(x)) for x in held_np)
  lrs = jnp.asarray(cfg.lrs, jnp.float32)
  k_init, k_shuffle = jax.random.split(key)
  state = _init_state(scorer, domain, cfg, k_init, float(np.mean(train_np[2])))
  out_shardings = None
  if mesh is not None:   # tables sharded by rows (models/sharded_tables.py)
    state = sharded_tables.place(
        state._replace(active=jnp.ones(state.best_mse.shape, bool)), mesh)
    out_shardings = (jax.tree_util.tree_map(lambda x: x.sharding, state),
                     sharded_tables.replicated(mesh))
  epoch_fn, n_traces = _jit_counted(make_epoch_fn(scorer, cfg, train_np[2].size),
                                    out_shardings)
  state, curve, n_shapes = _run_epochs(epoch_fn, state, lrs, (train, held), k_shuffle, cfg,
                                       scorer.name, train_np[2].size, put=put,
                                       place=((lambda st: st) if mesh is None else
                                              (lambda st: sharded_tables.place(st, mesh))))
  if mesh is not None:
    state = sharded_tables.unplace(state, {"user": domain.n_users, "item": domain.n_items})
  if n_traces[0] > n_shapes:
    raise RuntimeError(f"epoch function traced {n_traces[0]} times for {n_shapes} stack sizes")
  curve = np.stack(curve, axis=1) if curve else np.zeros((len(cfg.lrs), 0))
  return _result(state, curve, cfg, mean_predictor_mse(train_np[2], held_np[2]))


def domain_shape(domain) -> tuple[int, int, int]:
  """(ratings, n_users, n_items): what must match for seeds to train as one stack."""
  return int(np.asarray(domain.rating).size), int(domain.n_users), int(domain.n_items)


def train_scorer_seeds(scorer: Scorer, domains, cfgs, keys) -> list[TrainResult]:
  """``train_scorer`` for S seeds at once: the seed axis is vmapped over the lr stack.

  Seed ``s`` trains on ``domains[s]`` with ``cfgs[s]`` (its held-out split comes from
  ``cfgs[s].seed``) from ``keys[s]``, exactly as ``train_scorer(scorer, domains[s],
  cfgs[s], keys[s])`` would: same init, shuffles, held-out slice and selection; only
  the floating-point summation order may differ (the test checks agreement to 1e-5).
  One compiled epoch serves all seeds, so on an accelerator S seeds cost about one
  seed's launches. Shapes must allow it: every domain has the same
  :func:`domain_shape`, and the configurations differ only in ``seed``.

  Args:
    scorer: a ``Scorer``.
    domains: S DomainData-like domains of equal :func:`domain_shape`.
    cfgs: S ``TrainConfig`` equal up to ``seed``.
    keys: S PRNG keys.

  Returns:
    S ``TrainResult``s, in seed order.
  """
  domains, cfgs, keys = list(domains), list(cfgs), list(keys)
  if not (len(domains) == len(cfgs) == len(keys) >= 1):
    raise ValueError(f"need as many domains, configs and keys (>= 1), got "
                     f"{len(domains)}, {len(cfgs)}, {len(keys)}")
  shapes = {domain_shape(d) for d in domains}
  if len(shapes) != 1:
    raise ValueError(f"seeds can only be stacked over domains of one shape "
                     f"(ratings, users, items); got {sorted(shapes)}")
  if len({dataclasses.replace(c, seed=0) for c in cfgs}) != 1:
    raise ValueError("seed-stacked training needs configurations that differ only in seed")
  cfg = cfgs[0]
  splits = [_split_domain(d, c) for d, c in zip(domains, cfgs)]
  stack = lambda part, j: jnp.asarray(np.stack([sp[part][j] for sp in splits]))
  train = tuple(stack(0, j) for j in range(3))    # each [S, n_train]
  held = tuple(stack(1, j) for j in range(3))     # each [S, n_held]
  lrs = jnp.asarray(cfg.lrs, jnp.float32)
  k_init, k_shuffle = jax.vmap(jax.random.split, out_axes=1)(jnp.stack(keys))
  states = [_init_state(scorer, d, cfg, k, float(np.mean(sp[0][2])))
            for d, k, sp in zip(domains, k_init, splits)]
  state = jax.tree_util.tree_map(lambda *xs: stack_lrs(xs, 0), *states)
  del states
  per_seed = jax.vmap(make_epoch_fn(scorer, cfg, train[2].shape[1]),
                      in_axes=(0, None, 0, 0, 0, None))
  epoch_fn, n_traces = _jit_counted(per_seed)
  state, curve, n_shapes = _run_epochs(epoch_fn, state, lrs, (train, held), k_shuffle, cfg,
                                       f"{scorer.name} x{len(keys)} seeds", train[2].shape[1],
                                       len(keys))
  if n_traces[0] > n_shapes:
    raise RuntimeError(f"epoch function traced {n_traces[0]} times for {n_shapes} stack sizes")
  curve = (np.stack(curve, axis=2) if curve
           else np.zeros((len(keys), len(cfg.lrs), 0)))   # [S, L, epochs]
  results = [_result(_take_lrs(state, s, 0), curve[s], cfg,
                     mean_predictor_mse(splits[s][0][2], splits[s][1][2]))
             for s in range(len(keys))]
  return [extend_grid(lambda c, s=s: _train_grid(scorer, domains[s], c, keys[s]), r, cfgs[s])
          for s, r in enumerate(results)]
