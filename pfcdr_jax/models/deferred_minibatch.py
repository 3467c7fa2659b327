"""Minibatch training of embedding tables with deferred Adam (:mod:`deferred_adam`).

:func:`minibatch.optimize_epochs` with ``optax.adam`` moves every row of every table at
every step, so an epoch of a model with ``n_rows`` table rows costs
``(examples / batch) x n_rows x d``: quadratic in the data's size. When a minibatch's
loss reads only the rows its examples index (matrix factorisation: CMF's user and item
factors), :func:`optimize_epochs` computes the same trajectory on those rows only
(``O(batch x d)`` a step): it gathers each example's rows caught up in closed form,
takes the loss's gradient with respect to the gathered rows, applies Adam's step to
them and writes them back; after the last epoch every row is caught up. The shuffles,
minibatches and key usage are :func:`minibatch.scan_epochs`'s, so the two optimisers
differ only by float rounding and the idle-step ``eps`` of :mod:`deferred_adam`.

Not for models whose gradient reaches rows the minibatch does not index (LightGCN's
propagation over the whole graph) or whose parameters are dense matrices.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from pfcdr_jax.models import deferred_adam
from pfcdr_jax.models import minibatch

LossRows = Callable[[dict, jax.Array, jax.Array], jax.Array]
RowsOf = Callable[[jax.Array, jax.Array], dict]


def optimize_epochs(loss_rows: LossRows, tables: dict, rows_of: RowsOf, lr: float, *,
                    n: int, batch_size: int, epochs: int,
                    key: jax.Array) -> tuple[dict, jax.Array]:
  """Adam (``optax.adam(lr)``'s defaults) over shuffled minibatches, on touched rows only.

  Args:
    loss_rows: ``(rows {name: [B, d]}, idx int[B], valid float32[B]) -> loss []``: the
      minibatch loss given each example's gathered row of every table (zeros where
      ``rows_of`` names no row); its gradient must reach the tables only through them.
    tables: ``{name: float32[n_rows, d]}`` initial tables.
    rows_of: ``(idx int[B], valid float32[B]) -> {name: int[B]}``: the row of each
      table each example reads; ``n_rows`` of that table (out of range) for none (it
      must be so for padding, ``valid == 0``).
    lr: the learning rate.
    n, batch_size, epochs, key: the loop, as in :func:`minibatch.scan_epochs`.

  Returns:
    ``(tables, curve float32[epochs])``: the trained tables and each epoch's mean step
    loss.
  """
  names = sorted(tables)
  n_rows = {k: tables[k].shape[0] for k in names}
  lrs = jnp.full((1,), lr, jnp.float32)
  gain = jnp.asarray(deferred_adam.idle_gain_table())
  zeros = lambda x: jnp.zeros_like(x)[None]
  tabs = {k: deferred_adam.to_rows(tables[k][None], zeros(tables[k]), zeros(tables[k]), 0)
          for k in names}
  grad_fn = jax.value_and_grad(loss_rows)

  def step(carry, idx, valid):
    tabs, count = carry
    rows = rows_of(idx, valid)
    got = {k: deferred_adam.gather(tabs[k], rows[k], count, lrs, gain) for k in names}
    loss, grads = grad_fn({k: got[k][0][:, 0] for k in names}, idx, valid)
    t = count + 1
    tabs = {k: deferred_adam.rows_step(tabs[k], rows[k], got[k], grads[k][:, None], t, lrs,
                                       deferred_adam.repeat_groups(rows[k], n_rows[k]))
            for k in names}
    return (tabs, t), loss

  (tabs, count), curve = minibatch.scan_epochs(step, (tabs, jnp.int32(0)), n=n,
                                               batch_size=batch_size, epochs=epochs, key=key)
  return {k: deferred_adam.catch_up_all(tabs[k], count, lrs, gain)[0][0]
          for k in names}, curve
