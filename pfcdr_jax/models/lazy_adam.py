"""Row-sparse ("lazy") Adam for embedding tables: a step costs O(batch), not O(table).

Dense Adam (``optax.scale_by_adam``) rewrites every row of both embedding tables and
both moment tables at every minibatch step, although a step's gradient is non-zero
only on the rows its ratings touch. At the paper's music->movie size (124k + 50k rows,
5 learning rates trained as one stack) that dense rewrite is most of pretraining.

Lazy Adam (as TensorFlow Addons' ``LazyAdam`` and PyTorch's ``SparseAdam``) applies the
Adam update only to the rows a step touches:

* a row that occurs several times in one step gets the sum of its examples'
  gradients (:func:`rows_step` adds them into a zero accumulator);
* a touched row's first and second moments and its value get the usual Adam update,
  with the bias corrections of the *global* step count ``t``;
* an untouched row is left as it is: its moments do not decay and it does not keep
  moving on momentum (dense Adam would move it by ``lr * b1^k m / sqrt(b2^k v)``
  for ``k`` steps after its last gradient).

Small dense leaves (GMF's ``h``, the DNN tower) get ordinary Adam at every step. With
one row per example the two agree exactly on a step where every row is touched (the
test checks it against ``optax.adam``); otherwise they are different optimisers, and
what matters is whether the selected models are as good. On MovieLens they were not
(more epochs, cold-start MAE +0.0051 over 10 seeds), so dense Adam stays the default
(BUILD_NOTES §2, pretraining, "Not adopted").
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

B1, B2, EPS = 0.9, 0.999, 1e-8   # optax.scale_by_adam's defaults


class LazyAdamState(NamedTuple):
  """Adam moments of a params pytree plus the global step count.

  Attributes:
    count: int32[] steps taken so far.
    mu: first moments, the params' structure and shapes.
    nu: second moments, the params' structure and shapes.
  """
  count: jax.Array
  mu: Any
  nu: Any


def init(params) -> LazyAdamState:
  """Zero moments shaped like ``params``."""
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  return LazyAdamState(count=jnp.zeros((), jnp.int32), mu=zeros,
                       nu=jax.tree_util.tree_map(jnp.zeros_like, params))


class RowTables(NamedTuple):
  """One embedding table of an lr stack in row-major layout, with its Adam moments.

  Rows first, so a minibatch reads and writes ``B`` contiguous ``[L, d]`` blocks (one
  row for all L learning rates) instead of L scattered ones.

  Attributes:
    p: [n, L, d] the table under each learning rate.
    m: [n, L, d] first moments.
    v: [n, L, d] second moments.
    g: [n, L, d] gradient accumulator, zero between steps (it sums the gradients of
      a row that occurs several times in one minibatch).
  """
  p: jax.Array
  m: jax.Array
  v: jax.Array
  g: jax.Array


def to_rows(p_stack: jax.Array, m_stack: jax.Array, v_stack: jax.Array) -> RowTables:
  """[L, n, d] table, moments -> :class:`RowTables` ([n, L, d], zero accumulator)."""
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return RowTables(p=swap(p_stack), m=swap(m_stack), v=swap(v_stack),
                   g=jnp.zeros_like(swap(p_stack)))


def from_rows(t: RowTables) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:class:`RowTables` -> ([L, n, d] table, first, second moments)."""
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return swap(t.p), swap(t.m), swap(t.v)


def gather_rows(table: jax.Array, rows: jax.Array) -> jax.Array:
  """``table[rows]``, with 0 for an out-of-range row (the pad index ``n``)."""
  return table.at[rows].get(mode="fill", fill_value=0.0)


def _adam_moments(g, m, v, t):
  """One Adam step on arrays of any shape: ``(update, m, v)`` with ``t`` the new count."""
  m = B1 * m + (1.0 - B1) * g
  v = B2 * v + (1.0 - B2) * g * g
  m_hat = m / (1.0 - B1 ** t)
  v_hat = v / (1.0 - B2 ** t)
  return m_hat / (jnp.sqrt(v_hat) + EPS), m, v


def rows_step(tab: RowTables, idx: jax.Array, grads: jax.Array, t: jax.Array,
              lrs: jax.Array) -> RowTables:
  """Lazy Adam on the rows one minibatch touches.

  Args:
    tab: the table and its moments.
    idx: int[B] row of each example; ``n`` (out of range) for an example that touches
      no row. Rows may repeat.
    grads: [B, L, d] each example's gradient with respect to its gathered row.
    t: [] float, the step count after this step (bias corrections).
    lrs: [L] learning rates.

  Returns:
    The table after the step. A repeated row gets the sum of its examples' gradients:
    they are added into ``g``, every occurrence reads the same sum and computes the same
    new row, so the writes agree; ``g`` is zeroed again on those rows.
  """
  g_acc = tab.g.at[idx].add(grads, mode="drop")
  g = gather_rows(g_acc, idx)
  d, m, v = _adam_moments(g, gather_rows(tab.m, idx), gather_rows(tab.v, idx), t)
  p = gather_rows(tab.p, idx) - lrs[None, :, None] * d
  put = lambda x, y: x.at[idx].set(y, mode="drop")
  return RowTables(p=put(tab.p, p), m=put(tab.m, m), v=put(tab.v, v),
                   g=put(g_acc, jnp.zeros_like(g)))


def dense_step(params, grads, mu, nu, t: jax.Array, lr: jax.Array):
  """Ordinary Adam on a (small) pytree: ``(params, mu, nu)`` after one step."""
  leaves, tdef = jax.tree_util.tree_flatten(params)
  g, m, v = (tdef.flatten_up_to(x) for x in (grads, mu, nu))
  steps = [_adam_moments(*a, t) for a in zip(g, m, v)]
  return (tdef.unflatten([x - lr * s[0] for x, s in zip(leaves, steps)]),
          tdef.unflatten([s[1] for s in steps]), tdef.unflatten([s[2] for s in steps]))
