"""Conditional model inversion: user prototypes (Eq. 5, 9-11; Algorithm 1, lines 1-13).

For one user with frozen representation ``w`` [d] and the frozen item matrix ``V``
[N, d], a weight vector ``b`` over ALL items starts at ``softmax(z)``, ``z ~ N(0, 1)``
(Eq. 5), and is optimised so that ``pred = w . (b @ V)`` approaches the target
rating ``r`` (Eq. 10). The prototype is ``P = b* @ V`` (Eq. 11).

This module runs it: :func:`invert_user` for one user and :func:`invert_users` for a
batch in chunks, by the iterative path (Algorithm 1 as a ``lax.scan``, below) or the
closed form (:mod:`inversion_closed_form`, for scorers linear in ``b``). What both
paths optimise (configuration, start, losses, optimiser, best iterate) is in
:mod:`inversion_objective`.
"""
from __future__ import annotations

import functools
import logging
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from pfcdr_jax.infra import chunking
from pfcdr_jax.infra import progress
from pfcdr_jax.pfcdr.inversion_closed_form import _closed_batch, _closed_chunk
from pfcdr_jax.pfcdr.inversion_objective import (InversionConfig, InversionResult, _record,
                                                 _start, _track, init_weights, loss_of_pred,
                                                 make_optimizer)

log = logging.getLogger(__name__)


class UsersInversion(NamedTuple):
  """A batch of inversions (``invert_users``).

  Attributes:
    prototypes: [B, d] prototypes (Eq. 11).
    loss: [B] best loss per user.
    pred: [B] predicted rating of the prototype.
    steps: [B] updates applied per user.
    method: "iterative" or "closed_form".
  """
  prototypes: jax.Array
  loss: jax.Array
  pred: jax.Array
  steps: jax.Array
  method: str


# ----------------------------------------------------------------------------
# Iterative path: Algorithm 1, lines 1-12, one user, a lax.scan over steps.
# ----------------------------------------------------------------------------

def _iterative_one(w: jax.Array, V: jax.Array, key: jax.Array, cfg: InversionConfig,
                   keep_b: bool) -> InversionResult:
  n = V.shape[0]
  opt = make_optimizer(cfg)
  b0 = init_weights(key, n, cfg.b0_draw)

  def loss_fn(b):
    proto = b @ V
    pred = proto @ w
    return loss_of_pred(pred, cfg), (proto, pred)

  value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
  # Recorded per iterate: (prototype [d], pred [], b [N] or None).
  value0 = (jnp.zeros((V.shape[1],), jnp.float32), jnp.asarray(0.0, jnp.float32),
            jnp.zeros_like(b0) if keep_b else None)

  def step(run, _):
    b, opt_state = run.state
    (loss, (proto, pred)), grad = value_and_grad(b)
    updates, new_opt = opt.update(grad, opt_state, b)
    new_state = (optax.apply_updates(b, updates), new_opt)
    return _track(run, loss, (proto, pred, b if keep_b else None), new_state, cfg), None

  run, _ = jax.lax.scan(step, _start((b0, opt.init(b0)), value0), None, length=cfg.steps)
  b = run.state[0]
  loss, (proto, pred) = loss_fn(b)
  best = _record(run.best, loss, (proto, pred, b if keep_b else None))
  proto, pred, best_b = best.value
  return InversionResult(b=best_b if keep_b else jnp.zeros((0,), jnp.float32),
                         loss=best.loss, steps=best.steps, prototype=proto, pred=pred)


def resolve_method(cfg: InversionConfig, linear_in_b: bool) -> str:
  """``cfg.method`` with ``"auto"`` resolved: the closed form iff ``linear_in_b``."""
  if cfg.method == "auto":
    return "closed_form" if linear_in_b else "iterative"
  if cfg.method == "closed_form" and not linear_in_b:
    raise ValueError("closed_form inversion needs a scorer that is linear in b")
  return cfg.method


@functools.partial(jax.jit, static_argnames=("cfg", "linear_in_b"))
def invert_user(w: jax.Array, V: jax.Array, key: jax.Array,
                cfg: InversionConfig = InversionConfig(), *,
                linear_in_b: bool = True) -> InversionResult:
  """Inverts one user (Eq. 10): best ``b`` [N] with its loss, steps and prototype.

  The iterative path runs Algorithm 1 as a ``lax.scan`` over ``cfg.steps`` and
  returns the best ``b``. The closed form returns ``b`` reconstructed as
  ``b_0 - a sign(s)`` (Adam) or ``alpha b_0 + beta s`` (SGD).

  Args:
    w: [d] frozen user representation ``user_repr(u)``.
    V: [N, d] frozen item matrix.
    key: PRNG key of this user's draw of ``b_0`` (Eq. 5).
    cfg: inversion configuration.
    linear_in_b: the scorer is ``w . (b @ V)`` (all scorers here).

  Returns:
    InversionResult(b [N], loss [], steps [], prototype [d], pred []).
  """
  chex.assert_rank([w, V], [1, 2])
  chex.assert_equal_shape_suffix([w, V], 1)
  method = resolve_method(cfg, linear_in_b)
  if method == "iterative":
    return _iterative_one(w, V, key, cfg, keep_b=True)
  res, b = _closed_chunk(w[None], V, key[None], cfg)
  return jax.tree.map(lambda x: x[0], res)._replace(b=b[0])


def chunk_size_for(cfg: InversionConfig, method: str, n_items: int) -> int:
  """``cfg.chunk_size``, or when None: 2^21 / N users (closed form) or 2^23 / N
  (iterative), clipped to [8, 256]."""
  if cfg.chunk_size is not None:
    return int(cfg.chunk_size)
  budget = 2 ** 21 if method == "closed_form" else 2 ** 23
  return int(max(8, min(256, budget // max(int(n_items), 1))))


def user_keys(key: jax.Array, user_index: jax.Array) -> jax.Array:
  """Per-user keys ``fold_in(key, global index)``; independent of chunking."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(user_index)


INVERT_STATIC = ("cfg", "method", "chunk_size", "progress")


def _invert_chunks_impl(W, V, key, index, *, cfg: InversionConfig, method: str,
                        chunk_size: int, progress: str | None) -> InversionResult:
  """The jitted body of ``invert_users``: W [B, d], index int32[B] -> results [B, ...]."""
  n_chunks = -(-W.shape[0] // chunk_size)
  if method == "iterative":
    batched = jax.vmap(functools.partial(_iterative_one, cfg=cfg, keep_b=False),
                       in_axes=(0, None, 0))
  else:
    batched = functools.partial(_closed_batch, cfg=cfg)

  def body(ci, chunk):
    w_chunk, idx_chunk = chunk
    res = batched(w_chunk, V, user_keys(key, idx_chunk))
    if progress is not None:
      jax.debug.callback(functools.partial(_log_progress, progress, n_chunks), ci,
                         res.loss)
    return res

  return chunking.chunked_map(body, (W, index), chunk_size, with_index=True)


# Module level, so that a test can jit ``_invert_chunks_impl`` under
# ``chex.assert_max_traces``.
_invert_chunks = jax.jit(_invert_chunks_impl, static_argnames=INVERT_STATIC)


_PROGRESS_BARS: dict[str, tuple] = {}


def _log_progress(label, n_chunks, ci, _):
  """Host callback per chunk: a progress bar (rate, ETA) and a DEBUG line."""
  ci, done = int(ci), int(ci) + 1
  if ci == 0:
    ctx = progress.bar(n_chunks, f"inversion {label}", unit="chunk")
    _PROGRESS_BARS[label] = (ctx, ctx.__enter__())
  entry = _PROGRESS_BARS.get(label)
  if entry is not None:
    entry[1].update()
  log.debug("inversion %s: chunk %d/%d", label, done, n_chunks)
  if done == n_chunks and entry is not None:
    entry[0].__exit__(None, None, None)
    _PROGRESS_BARS.pop(label, None)


# A kernel with a host callback is never stored in JAX's persistent compilation cache
# (infra/xla_cache.py), so the per-chunk progress callback costs a full compile on
# every run: it is attached only where someone watches (a terminal, or DEBUG logs)
# a run long enough to need it.
PROGRESS_MIN_CHUNKS = 16


def _wants_progress(n_chunks: int) -> bool:
  return n_chunks >= PROGRESS_MIN_CHUNKS and (progress.interactive()
                                              or log.isEnabledFor(logging.DEBUG))


def invert_users(w: jax.Array, V: jax.Array, key: jax.Array,
                 cfg: InversionConfig = InversionConfig(), *, linear_in_b: bool = True,
                 user_index: jax.Array | None = None,
                 progress: str | None = None) -> UsersInversion:
  """Prototypes of a batch of users (Eq. 10-11), vmapped over users in chunks.

  Users are padded to a multiple of ``cfg.chunk_size`` and processed chunk by
  chunk (``lax.map``), so memory is ``O(chunk_size * N)``. User ``i`` draws its
  ``b_0`` with ``fold_in(key, user_index[i])`` (default ``i``), so results do not
  depend on the chunk size and equal ``invert_user(w[i], V, fold_in(key, i))``.

  Args:
    w: [B, d] frozen user representations.
    V: [N, d] frozen item matrix.
    key: PRNG key.
    cfg: inversion configuration.
    linear_in_b: the scorer is linear in ``b`` (enables ``method="auto"``).
    user_index: optional int[B] global indices used to fold the key.
    progress: optional label; logs chunk progress with rate and ETA.

  Returns:
    UsersInversion(prototypes [B, d], loss [B], pred [B], steps [B], method).
  """
  chex.assert_rank([w, V], [2, 2])
  chex.assert_equal_shape_suffix([w, V], 1)
  method = resolve_method(cfg, linear_in_b)
  B = w.shape[0]
  if user_index is None:
    user_index = jnp.arange(B, dtype=jnp.int32)
  cs = chunk_size_for(cfg, method, V.shape[0])
  cs = int(min(cs, max(B, 1)))
  if progress is not None and not _wants_progress(-(-B // cs)):
    progress = None
  res = _invert_chunks(jnp.asarray(w, jnp.float32), jnp.asarray(V, jnp.float32), key,
                       jnp.asarray(user_index, jnp.int32), cfg=cfg, method=method,
                       chunk_size=cs, progress=progress)
  return UsersInversion(prototypes=res.prototype, loss=res.loss, pred=res.pred,
                        steps=res.steps, method=method)
