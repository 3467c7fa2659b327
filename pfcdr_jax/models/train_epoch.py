"""One pretraining epoch of the lr-stacked scorer, as a function to jit.

:func:`make_epoch_fn` builds ``epoch_fn``: Adam steps on the masked MSE (Eq. 7) over
shuffled, padded minibatches (a ``lax.scan``), dense (``optax.scale_by_adam``: every
table row moves), deferred (:mod:`deferred_adam`: dense Adam's result, computed on the
rows a minibatch touches) or lazy (:mod:`lazy_adam`: only the rows a minibatch touches
move), then the held-out MSE of every lr and the best params per lr. ``_State`` is what it
carries from epoch to epoch; :func:`host_order` is the host-drawn visiting order.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.models import deferred_adam
from pfcdr_jax.models import lazy_adam
from pfcdr_jax.models import minibatch
from pfcdr_jax.models.heldout import _heldout_mse
from pfcdr_jax.models.scorers import Scorer
from pfcdr_jax.models.train_config import TrainConfig
from pfcdr_jax.models.train_config import resolve_optimizer


class _State(NamedTuple):
  params: Any         # stacked over lrs: leaves [L, ...]
  opt: Any            # scale_by_adam state, stacked over lrs
  best_params: Any    # stacked over lrs
  best_mse: jax.Array  # [L]
  best_epoch: jax.Array  # [L] int32
  active: jax.Array | None = None   # bool[L]: False = early-stopped, its best is final


def _masked_mse(scorer: Scorer, params, users, items, ratings, mask):
  err = scorer.predict(params, users, items) - ratings
  return jnp.sum(mask * err * err) / jnp.maximum(jnp.sum(mask), 1.0)


def _dense_update_fn(scorer: Scorer):
  """``update(params, opt, lr, u, i, r, m) -> (params, opt)``: one dense Adam step."""
  adam = optax.scale_by_adam()

  def update(params, opt, lr, u, i, r, m):
    grads = jax.grad(lambda p: _masked_mse(scorer, p, u, i, r, m))(params)
    updates, opt = adam.update(grads, opt, params)
    return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, updates), opt

  return update


_TABLES = ("user", "item")


def _lazy_epoch_fn(scorer: Scorer):
  """``run(params, opt, lrs, train, idx, valid) -> (params, opt)``: one lazy-Adam epoch.

  The lr stack's two embedding tables travel row-major (``lazy_adam.RowTables``,
  [n, L, d]) through the epoch's ``lax.scan``, so a minibatch touches ``B`` contiguous
  rows of every table instead of one scattered row per lr; the gradient is taken with
  respect to the gathered rows only ([B, L, d], per lr by ``vmap``), never as a dense
  table. Padded examples (``valid = 0``) touch no row. The small dense leaves (GMF's
  ``h``, the DNN tower) get ordinary Adam every step.
  """

  def loss_one(pu, pi, dense, r, m):   # one lr: pu, pi [B, d] gathered rows
    ar = jnp.arange(pu.shape[0])
    return _masked_mse(scorer, dict(dense, user=pu, item=pi), ar, ar, r, m)

  grad_stack = jax.vmap(jax.grad(loss_one, argnums=(0, 1, 2)),
                        in_axes=(1, 1, 0, None, None), out_axes=(1, 1, 0))
  dense_stack = jax.vmap(lazy_adam.dense_step, in_axes=(0, 0, 0, 0, None, 0))

  def run(params, opt: lazy_adam.LazyAdamState, lrs, train, idx, valid):
    users, items, ratings = train
    n_rows = {k: params[k].shape[1] for k in _TABLES}
    tabs = {k: lazy_adam.to_rows(params[k], opt.mu[k], opt.nu[k]) for k in _TABLES}
    rest = lambda tree: {k: v for k, v in tree.items() if k not in _TABLES}

    def step(carry, xs):
      tabs, dense, dmu, dnu, count = carry
      b, m = xs
      rows = {"user": jnp.where(m > 0, users[b], n_rows["user"]),
              "item": jnp.where(m > 0, items[b], n_rows["item"])}
      gu, gi, gd = grad_stack(lazy_adam.gather_rows(tabs["user"].p, rows["user"]),
                              lazy_adam.gather_rows(tabs["item"].p, rows["item"]),
                              dense, ratings[b], m)
      t = (count + 1).astype(jnp.float32)
      tabs = {k: lazy_adam.rows_step(tabs[k], rows[k], g, t, lrs)
              for k, g in (("user", gu), ("item", gi))}
      dense, dmu, dnu = dense_stack(dense, gd, dmu, dnu, t, lrs)
      return (tabs, dense, dmu, dnu, count + 1), None

    carry = (tabs, rest(params), rest(opt.mu), rest(opt.nu), opt.count[0])
    (tabs, dense, dmu, dnu, count), _ = jax.lax.scan(step, carry, (idx, valid))
    params, mu, nu = dict(dense), dict(dmu), dict(dnu)
    for k in _TABLES:
      params[k], mu[k], nu[k] = lazy_adam.from_rows(tabs[k])
    return params, lazy_adam.LazyAdamState(count=jnp.full_like(opt.count, count), mu=mu, nu=nu)

  return run


# Per-row leaves of a scorer's params and the index array (0: users, 1: items) that
# picks their rows: the embedding tables and the offsets scorers' bias vectors.
_ROW_LEAVES = {"user": 0, "item": 1, "user_bias": 0, "item_bias": 1}


def _deferred_epoch_fn(scorer: Scorer):
  """``run(params, opt, lrs, train, idx, valid) -> (params, opt)``: one epoch of dense
  Adam computed on the touched rows only (:mod:`deferred_adam`).

  ``opt`` is ``optax.scale_by_adam``'s state, stacked over lrs, exactly as the dense
  path carries it: at the end of the epoch every row is caught up, so the two paths
  hand the same state to the next epoch (up to float rounding and the idle-step
  ``eps`` of :mod:`deferred_adam`). The per-row leaves (``_ROW_LEAVES``) travel
  row-major ([n, L, k]); the small dense leaves (GMF's ``h``, the DNN tower, ``mu``)
  get ordinary Adam every step.
  """

  def split(rows, layout):   # {group: [..., W]} -> {leaf: [..., k]} (a bias: [...])
    out = {}
    for j, parts in layout.items():
      at = 0
      for k, w in parts:
        out[k] = rows[j][..., at] if k.endswith("_bias") else rows[j][..., at:at + w]
        at += w
    return out

  def loss_one(rows, dense, r, m, *, layout):   # one lr: rows {group: [B, W]} gathered
    ar = jnp.arange(r.shape[0])
    return _masked_mse(scorer, dict(dense, **split(rows, layout)), ar, ar, r, m)

  def grad_stack(layout):   # the layout is static: bound, not traced
    return jax.vmap(jax.grad(functools.partial(loss_one, layout=layout), argnums=(0, 1)),
                    in_axes=(1, 0, None, None), out_axes=(1, 0))

  dense_stack = jax.vmap(lazy_adam.dense_step, in_axes=(0, 0, 0, 0, None, 0))
  table = jnp.asarray(deferred_adam.idle_gain_table())

  def run(params, opt, lrs, train, idx, valid):
    users, items, ratings = train
    leaves = [k for k in _ROW_LEAVES if k in params]
    as3 = lambda x: x[..., None] if x.ndim == 2 else x     # bias [L, n] -> [L, n, 1]
    # The leaves a row index picks (a table and its bias) travel as one [n, L, d + 1]
    # table: one gather, sort, step and write a minibatch for both (Adam is
    # elementwise, so the values are the same as leaf by leaf).
    layout = {}
    for k in leaves:
      layout.setdefault(_ROW_LEAVES[k], []).append((k, as3(params[k]).shape[-1]))
    join = lambda tree, j: jnp.concatenate([as3(tree[k]) for k, _ in layout[j]], axis=-1)
    count = opt.count[0]
    tabs = {j: deferred_adam.to_rows(join(params, j), join(opt.mu, j), join(opt.nu, j),
                                     count) for j in layout}
    n_rows = {j: params[layout[j][0][0]].shape[1] for j in layout}
    rest = lambda tree: {k: v for k, v in tree.items() if k not in leaves}
    grads_of = grad_stack(layout)

    def step(carry, xs):
      tabs, dense, dmu, dnu, count = carry
      b, m = xs
      ids = (users[b], items[b])
      rows = {j: jnp.where(m > 0, ids[j], n_rows[j]) for j in layout}
      got = {j: deferred_adam.gather(tabs[j], rows[j], count, lrs, table) for j in layout}
      grads, gd = grads_of({j: got[j][0] for j in layout}, dense, ratings[b], m)
      t = count + 1
      tabs = {j: deferred_adam.rows_step(tabs[j], rows[j], got[j], grads[j], t, lrs,
                                         deferred_adam.repeat_groups(rows[j], n_rows[j]))
              for j in layout}
      dense, dmu, dnu = dense_stack(dense, gd, dmu, dnu, t.astype(jnp.float32), lrs)
      return (tabs, dense, dmu, dnu, t), None

    carry = (tabs, rest(params), rest(opt.mu), rest(opt.nu), count)
    (tabs, dense, dmu, dnu, count), _ = jax.lax.scan(step, carry, (idx, valid))
    params, mu, nu = dict(dense), dict(dmu), dict(dnu)
    for j in layout:
      caught = deferred_adam.catch_up_all(tabs[j], count, lrs, table)
      for out, x in zip((params, mu, nu), caught):
        for k, v in split({j: x}, {j: layout[j]}).items():
          out[k] = v.reshape(opt.mu[k].shape)
    return params, opt._replace(count=jnp.full_like(opt.count, count), mu=mu, nu=nu)

  return run


def make_epoch_fn(scorer: Scorer, cfg: TrainConfig, n_train: int):
  """Builds the (un-jitted) epoch function for a training set of ``n_train`` ratings.

  Returns:
    ``epoch_fn(state, lrs [L], train (u, i, r), held (u, i, r), order, epoch [])
    -> (state, heldout_mse [L])``. ``order`` is the epoch's PRNG key with
    ``cfg.shuffle == "device"`` (permuted as ``fold_in(key, epoch)``) and the visiting
    order int32[n_train] itself with ``"host"`` (:func:`host_order`).
  """
  stacked_update = jax.vmap(_dense_update_fn(scorer), in_axes=(0, 0, 0, None, None, None, None))
  lazy_epoch = _lazy_epoch_fn(scorer)
  deferred_epoch = _deferred_epoch_fn(scorer)
  bs = min(cfg.batch_size, n_train)

  def epoch_fn(state: _State, lrs, train, held, order, epoch):
    users, items, ratings = train

    def step(carry, idx, m):
      params, opt = carry
      params, opt = stacked_update(params, opt, lrs, users[idx], items[idx], ratings[idx], m)
      return (params, opt), None

    perm = (order if cfg.shuffle == "host"
            else jax.random.permutation(jax.random.fold_in(order, epoch), n_train))
    # Pad slots gather row n-1 with weight 0: the params are unchanged.
    idx, valid = minibatch.padded_batches(perm, bs)
    n_rows = sum(state.params[k].shape[-2] for k in ("user", "item") if k in state.params)
    optimizer = resolve_optimizer(cfg.optimizer, n_rows, bs)   # static: from shapes
    if optimizer == "lazy_adam":
      params, opt = lazy_epoch(state.params, state.opt, lrs, train, idx, valid)
    elif optimizer == "deferred_adam":
      params, opt = deferred_epoch(state.params, state.opt, lrs, train, idx, valid)
    else:   # the lr stack shares each minibatch
      (params, opt), _ = minibatch.scan_batches(step, (state.params, state.opt), idx, valid)
    mse = jax.vmap(lambda p: _heldout_mse(scorer, p, held, cfg.heldout_batch))(params)
    better = mse < state.best_mse
    if state.active is not None:
      better = better & state.active

    def pick(new, old):
      b = better.reshape((-1,) + (1,) * (new.ndim - 1))
      return jnp.where(b, new, old)

    best_params = jax.tree_util.tree_map(pick, params, state.best_params)
    state = _State(params=params, opt=opt, best_params=best_params,
                   best_mse=jnp.where(better, mse, state.best_mse),
                   best_epoch=jnp.where(better, epoch + 1, state.best_epoch),
                   active=state.active)
    return state, mse

  return epoch_fn


def host_order(key: jax.Array, epoch: int, n: int) -> np.ndarray:
  """The host-drawn visiting order int32[n] of ``epoch``: a numpy permutation seeded by
  the two words of ``fold_in(key, epoch)`` (same key and epoch, same order)."""
  words = np.asarray(jax.random.key_data(jax.random.fold_in(key, epoch)), np.uint32)
  return np.random.default_rng(words.ravel().tolist()).permutation(n).astype(np.int32)
