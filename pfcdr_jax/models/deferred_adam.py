"""Dense Adam's trajectory at row-sparse cost: idle rows are caught up in closed form.

Dense Adam (``optax.scale_by_adam``, then ``-lr``) moves every row of an embedding
table at every step, even a row whose gradient is zero: its moments decay and it keeps
drifting on momentum. That drift is a closed-form function of the row's moments when
it was last touched and of how long it has been idle, so it need not be computed step
by step. A row last updated at step ``a`` (moments ``m``, ``v``) that then gets zero
gradients for ``k`` steps has, after them,

* ``m_k = b1^k m`` and ``v_k = b2^k v``;
* moved by ``lr * sum_{j=1..k} m_hat_{a+j} / (sqrt(v_hat_{a+j}) + eps)``. Without
  ``eps`` that is ``lr * m / sqrt(v) * (G(a) - r^k G(a + k))``, where
  ``r = b1 / sqrt(b2)``,
  ``c(s) = sqrt(1 - b2^s) / (1 - b1^s)`` (the bias corrections at step ``s``) and
  ``G(s) = sum_{j>=1} r^j c(s + j)`` (so the k-step sum is ``G(a) - r^k G(a + k)``).

``G`` is tabulated once on the host in float64 (:func:`idle_gain_table`); past
``S_FLAT`` steps the bias corrections are 1 to float32 precision and ``G`` is the
constant ``r / (1 - r)``.

:func:`rows_step` is one minibatch step on the rows it touches: catch each touched row
up to the step before, take its gradient at the caught-up value, apply the ordinary
Adam step, and record the step in ``last``. :func:`catch_up_all` brings every row to the
current step (once per epoch, before held-out scoring), after which params and moments
are dense Adam's: the optimizer state between epochs is ``optax.scale_by_adam``'s. The
per-step cost is O(batch x d), not O(table x d).

The one approximation is ``eps`` during idle steps. Dense Adam's idle step ``j``
divides ``m b1^j`` by ``sqrt(v b2^j) + eps sqrt(1 - b2^(a+j))`` (in the scale of the
uncorrected moments); the closed form uses ``b2^(j/2) (sqrt(v) + eps sqrt(1 -
b2^(a+1)))``, exact at ``j = 1``, and the weights ``r^j`` make the first dozen idle steps
most of the drift. The error relative to dense Adam grows as the gradients shrink
towards ``eps``. The tests
check this optimizer against ``optax.scale_by_adam`` over many sparse steps.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.models.lazy_adam import B1, B2, EPS, gather_rows

R = B1 / math.sqrt(B2)   # per-step decay of an idle row's step m_hat / sqrt(v_hat)
S_FLAT = 40_000          # beyond this step, 1 - b2^s == 1 in float32 (b2^s < 5e-18)


@functools.lru_cache(maxsize=None)
def idle_gain_table(s_flat: int = S_FLAT) -> np.ndarray:
  """float32[s_flat + 1]: ``G(s)`` for s = 0..s_flat (module docstring)."""
  s = np.arange(1, s_flat + 2, dtype=np.float64)
  c = np.sqrt(1.0 - B2 ** s) / (1.0 - B1 ** s)   # c[j] = c(j + 1)
  g = np.empty(s_flat + 1, np.float64)
  g[s_flat] = R / (1.0 - R)
  for i in range(s_flat - 1, -1, -1):             # G(i) = r (c(i + 1) + G(i + 1))
    g[i] = R * (c[i] + g[i + 1])
  return g.astype(np.float32)


def idle_gain(table: jax.Array, s: jax.Array) -> jax.Array:
  """``G(s)`` for int steps ``s`` (any shape)."""
  return table[jnp.minimum(s, table.shape[0] - 1)]


def catch_up(p, m, v, a, k, lrs, table):
  """Rows last updated at step ``a`` after ``k`` idle steps.

  Args:
    p, m, v: [B, L, d] rows, their first and second moments as of step ``a``.
    a: int32[B] the step each row was last updated at (0: never).
    k: int32[B] idle steps since.
    lrs: [L] learning rates.
    table: :func:`idle_gain_table` on device.

  Returns:
    (p, m, v) after the idle steps, as dense Adam would leave them.
  """
  kf = k.astype(jnp.float32)[:, None, None]
  gain = idle_gain(table, a) - R ** kf[:, 0, 0] * idle_gain(table, a + k)
  # eps as dense Adam sees it at the first idle step, in the un-corrected scale of v.
  eps = EPS * jnp.sqrt(1.0 - B2 ** (a.astype(jnp.float32) + 1.0))[:, None, None]
  step = m / (jnp.sqrt(v) + eps) * gain[:, None, None]
  return (p - lrs[None, :, None] * step, m * B1 ** kf, v * B2 ** kf)


class RowState(NamedTuple):
  """One row table of an lr stack in row-major layout, with its Adam moments.

  Attributes:
    p: [n, L, d] the table under each learning rate.
    m: [n, L, d] first moments as of ``last``.
    v: [n, L, d] second moments as of ``last``.
    last: int32[n] the step each row was last brought up to date at.
  """
  p: jax.Array
  m: jax.Array
  v: jax.Array
  last: jax.Array


def to_rows(p_stack, m_stack, v_stack, count) -> RowState:
  """[L, n, d] table and moments, up to date at step ``count`` -> :class:`RowState`."""
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return RowState(p=swap(p_stack), m=swap(m_stack), v=swap(v_stack),
                  last=jnp.full((p_stack.shape[1],), count, jnp.int32))


def gather(tab: RowState, idx: jax.Array, now: jax.Array, lrs, table):
  """The rows ``idx`` brought up to step ``now``: ``(p, m, v, last)``, each [B, L, d]
  (zeros for the pad index ``n``) and the int32[B] steps they were last updated at."""
  a = tab.last.at[idx].get(mode="fill", fill_value=0)
  return catch_up(gather_rows(tab.p, idx), gather_rows(tab.m, idx),
                  gather_rows(tab.v, idx), a, jnp.maximum(now - a, 0), lrs,
                  table) + (a,)


def repeat_groups(idx: jax.Array, n_rows: int | None = None
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """How :func:`sum_repeats` groups the B examples of ``idx`` by row.

  Returns ``(order, seg, pos)``: the stable sort of ``idx``, each sorted example's
  group (0, 1, ... in sorted order) and each example's group. Leaves indexed by the
  same rows (a table and its bias vector) share one sort.

  With ``n_rows`` (static; every index in ``[0, n_rows]``) and ``(n_rows + 1) B <
  2^32``, the sort is of one uint32 key per example, ``row * B + position``, which
  orders as the stable argsort does (ties by position) and on CPU is ~4x faster than
  sorting (index, position) pairs; otherwise ``jnp.argsort``.
  """
  b = idx.shape[0]
  if n_rows is not None and (n_rows + 1) * b < 2 ** 32:
    key = jnp.sort(idx.astype(jnp.uint32) * jnp.uint32(b) + jnp.arange(b, dtype=jnp.uint32))
    order = (key % jnp.uint32(b)).astype(jnp.int32)
    s = key // jnp.uint32(b)
  else:
    order = jnp.argsort(idx)
    s = idx[order]
  seg = jnp.cumsum(jnp.concatenate([jnp.zeros((1,), jnp.int32),
                                    (s[1:] != s[:-1]).astype(jnp.int32)]))
  return order, seg, jnp.zeros((b,), jnp.int32).at[order].set(seg)


def sum_repeats(idx: jax.Array, grads: jax.Array, groups=None) -> jax.Array:
  """Per example, the sum of ``grads`` over the examples with the same row.

  By a sort of the B indices and a segment sum, O(B log B): no buffer the size of the
  table (a table-sized accumulator, scattered into and read back within one step, is
  copied whole at every step by XLA on CPU). ``groups``: :func:`repeat_groups` of
  ``idx`` when the caller already has it.
  """
  order, seg, pos = repeat_groups(idx) if groups is None else groups
  sums = jax.ops.segment_sum(grads[order], seg, num_segments=idx.shape[0],
                             indices_are_sorted=True)
  return sums[pos]


def rows_step(tab: RowState, idx: jax.Array, rows, grads: jax.Array, t: jax.Array,
              lrs: jax.Array, groups=None) -> RowState:
  """The Adam step ``t`` on the rows one minibatch touches.

  Args:
    tab: the table and its moments.
    idx: int[B] row of each example; ``n`` (out of range) touches no row. Rows may
      repeat.
    rows: ``(p, m, v, last)`` of those rows caught up to step ``t - 1``
      (:func:`gather`).
    grads: [B, L, d] each example's gradient with respect to its row.
    t: int32[] the step count after this step.
    lrs: [L] learning rates.
    groups: :func:`repeat_groups` of ``idx``, when the caller already has it.

  Returns:
    The table after the step. A repeated row gets the sum of its examples' gradients
    (:func:`sum_repeats`); every occurrence computes the same new row, so the writes
    agree.
  """
  p, m, v, a = rows
  g = sum_repeats(idx, grads, groups)
  tf = t.astype(jnp.float32)
  m = B1 * m + (1.0 - B1) * g
  v = B2 * v + (1.0 - B2) * g * g
  d = (m / (1.0 - B1 ** tf)) / (jnp.sqrt(v / (1.0 - B2 ** tf)) + EPS)
  p = p - lrs[None, :, None] * d
  put = lambda x, y: x.at[idx].set(y, mode="drop")
  return RowState(p=put(tab.p, p), m=put(tab.m, m), v=put(tab.v, v),
                  # max(a, t) is t (a < t); written so, the write waits for the
                  # read of ``last`` and XLA updates it in place, not a copy a step.
                  last=tab.last.at[idx].set(jnp.maximum(a, t), mode="drop"))


def catch_up_all(tab: RowState, now: jax.Array, lrs, table):
  """Every row brought up to step ``now``: ([L, n, d] table, first, second moments),
  dense Adam's state after ``now`` steps."""
  p, m, v = catch_up(tab.p, tab.m, tab.v, tab.last, now - tab.last, lrs, table)
  swap = lambda x: jnp.swapaxes(x, 0, 1)
  return swap(p), swap(m), swap(v)
