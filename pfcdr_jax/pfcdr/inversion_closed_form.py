"""The closed form of the inversion: a scalar recurrence per user (Eq. 10-11).

Closed form (``method="closed_form"``, chosen by ``"auto"`` for linear scorers).
``pred`` is linear in ``b``, so ``dL/db = g_t s`` with ``s = V w`` [N] and the scalar
``g_t = dL/dpred``; with coupled decay the gradient is ``g_t s_j + wd b_j``.

* Adam: dropping ``wd`` and Adam's ``eps``, every coordinate has
  ``m_j = M_t s_j`` and ``v_j = Q_t s_j^2`` with the SCALAR moments ``M_t = EMA_b1(g)``
  and ``Q_t = EMA_b2(g^2)``, so its update is ``sign(s_j) * lr_t M^_t / sqrt(Q^_t)``,
  the same scalar for all coordinates. Hence ``b_t = b_0 - a_t sign(s)``,
  ``pred_t = b_0.s - a_t sum|s| - c_t`` and ``P_t = b_0 @ V - a_t sign(s) @ V``.
  The scalar recurrence over ``t`` (moments, ``a_t``, best iterate, early stop) costs
  nothing per item. ``wd`` and ``eps`` perturb each coordinate by a relative
  ``O(wd |b_j| / |g s_j|)`` and ``O(eps / (sqrt(Q) |s_j|))``; expanding the Adam
  ratio to first order in both, their effect on ``pred`` only involves the scalars
  ``N`` and ``Z = sum_j sign(s_j) b_0j`` (because ``s_j sign(s_j) / |s_j| = 1``), so
  ``c_t`` tracks them (``first_order=True``) through two scalars ``k0_t, k1_t``.
  Per coordinate they add ``-k0 b_0j/|s_j|`` and ``+k1 sign(s_j)/|s_j|``, which blow
  up for ``s_j -> 0`` where the expansion fails (there weight decay wins and drives
  ``b_j`` to 0), so ``b`` is rebuilt in the saturating form
  ``b_0j |s_j|/(|s_j| + k0) - a s_j/(|s_j| + k1/a)``, equal to first order
  (measured prototype relative error vs the iterative run ~1e-7 at the paper's
  settings, ~6e-5 at wd = 1e-2; see tests and bench.py).
  Cost per chunk of users: the draw of ``b_0`` (the dominant term on CPU, cut 2.2x by
  ``b0_draw="hash"``),
  ``S = W V^T``, one fused pass of reductions over ``e^z`` and ``S`` (the
  softmax normalisation is folded into them), the scalar recurrence, one
  elementwise pass building ``b`` and one product ``b @ V``.
* SGD (``optimizer="sgd"``): ``b_{t+1} = (1 - lr_t wd) b_t - lr_t g_t s``, so
  ``b_t = alpha_t b_0 + beta_t s`` EXACTLY, ``pred_t = alpha_t b_0.s + beta_t |s|^2``
  and ``P_t = alpha_t b_0 @ V + beta_t (V^T V) w``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pfcdr_jax.pfcdr.inversion_objective import (InversionConfig, InversionResult, _record,
                                                 _start, _track, draw_z, loss_of_pred,
                                                 schedule)


class _Stats(NamedTuple):
  """Per-user sufficient statistics of the closed form (scalars, or [c] batched)."""
  p0: jax.Array       # b0 . s  (= w . (b0 @ V))
  s_l1: jax.Array     # sum |s|   (Adam) or |s|^2 (SGD)
  z: jax.Array        # sum sign(s) b0 (Adam)


class _ChunkTerms(NamedTuple):
  """The [c, N] arrays of a chunk of users and their statistics."""
  e: jax.Array        # [c, N] exp(z_draw) (unnormalised b0)
  inv_sum: jax.Array  # [c] 1 / sum e
  s: jax.Array        # [c, N] s = V w per user
  st: _Stats          # [c] each


def _chunk_terms(W: jax.Array, V: jax.Array, keys: jax.Array,
                 cfg: InversionConfig) -> _ChunkTerms:
  """Draws b0 of each user of a chunk and reduces it against s = V w.

  Written for the whole chunk ([c, N] arrays, ``W @ V^T``) rather than vmapped per
  user: the same numbers, but XLA fuses the reductions into one pass over e and s.
  """
  n = V.shape[0]
  zdraw = jax.vmap(lambda k: draw_z(k, n, cfg.b0_draw))(keys)
  # Softmax without the max shift: |z| < 6 for float32 normal draws, so exp is safe;
  # the normalisation 1/sum(e) is applied to the reductions instead of the vector.
  e = jnp.exp(zdraw)
  inv_sum = 1.0 / jnp.sum(e, axis=1)
  s = W @ V.T
  p0 = jnp.sum(e * s, axis=1) * inv_sum
  if cfg.optimizer == "adam":
    st = _Stats(p0=p0, s_l1=jnp.sum(jnp.abs(s), axis=1),
                z=jnp.sum(jnp.sign(s) * e, axis=1) * inv_sum)
  else:
    st = _Stats(p0=p0, s_l1=jnp.sum(s * s, axis=1), z=jnp.zeros_like(p0))
  return _ChunkTerms(e=e, inv_sum=inv_sum, s=s, st=st)


def _dloss(pred, cfg):
  return jax.grad(lambda p: loss_of_pred(p, cfg))(pred)


class _AdamBest(NamedTuple):
  a: jax.Array      # [] shared sign(s) step of the best iterate
  k0: jax.Array     # [] coefficient of -b0_j / |s_j| (wd decay)
  k1: jax.Array     # [] coefficient of +sign(s_j) / |s_j| (wd decay + Adam eps)
  loss: jax.Array   # []
  pred: jax.Array   # []
  steps: jax.Array  # [] int32


class _AdamScalars(NamedTuple):
  """State of the scalar Adam recurrence of one user (all [] float32)."""
  a: jax.Array      # shared sign(s) step
  k0: jax.Array     # first-order weight-decay coefficient of -b0_j / |s_j|
  k1: jax.Array     # first-order coefficient of +sign(s_j) / |s_j|
  M: jax.Array      # EMA_b1(g)
  Q: jax.Array      # EMA_b2(g^2)
  EA: jax.Array     # EMA_b1(a)
  E2g: jax.Array    # EMA_b2(g)
  E2ga: jax.Array   # EMA_b2(g a)


def _closed_adam(st: _Stats, n_items: int, cfg: InversionConfig) -> _AdamBest:
  """Scalar Adam recurrence with best-iterate and early-stop logic.

  Model of one coordinate: ``b_j = b0_j - a sign(s_j) - k0 b0_j/|s_j| +
  k1 sign(s_j)/|s_j|`` where ``a`` is the zeroth-order (wd = eps = 0) Adam path
  and ``k0, k1`` its first-order weight-decay / eps corrections, so
  ``pred = p0 - a sum|s| - k0 Z + k1 N``.
  """
  sched = schedule(cfg)
  b1, b2, eps, wd = cfg.b1, cfg.b2, cfg.adam_eps, cfg.weight_decay
  n = jnp.asarray(n_items, jnp.float32)
  zero = jnp.asarray(0.0, jnp.float32)
  fo = 1.0 if cfg.first_order else 0.0

  def pred_of(c):
    return st.p0 - c.a * st.s_l1 - c.k0 * st.z + c.k1 * n

  def step(run, t):
    c = run.state
    pred = pred_of(c)
    g = _dloss(pred, cfg)
    M = b1 * c.M + (1 - b1) * g
    Q = b2 * c.Q + (1 - b2) * g * g
    EA = b1 * c.EA + (1 - b1) * c.a
    E2g = b2 * c.E2g + (1 - b2) * g
    E2ga = b2 * c.E2ga + (1 - b2) * g * c.a
    k = (t + 1).astype(jnp.float32)
    bc1, bc2 = 1 - b1 ** k, 1 - b2 ** k
    m_hat, q_hat = M / bc1, Q / bc2
    ok = q_hat > 0
    q_safe = jnp.where(ok, q_hat, 1.0)
    sq = jnp.sqrt(q_safe)
    lr = jnp.where(ok, sched(t), 0.0)
    # u_j = m_j / (sqrt(v_j) + eps) with m_j = s_j M + wd EMA(b_j),
    # v_j = s_j^2 Q + 2 wd s_j EMA2(g b_j), expanded to first order in wd and eps.
    da = lr * m_hat / sq
    dk0 = fo * lr * wd * (1.0 / sq - m_hat * (E2g / bc2) / (q_safe * sq))
    dk1 = fo * lr * (wd * ((EA / bc1) / sq - m_hat * (E2ga / bc2) / (q_safe * sq))
                     + m_hat * eps / q_safe)
    new = _AdamScalars(a=c.a + da, k0=c.k0 + dk0, k1=c.k1 + dk1, M=M, Q=Q, EA=EA,
                       E2g=E2g, E2ga=E2ga)
    return _track(run, loss_of_pred(pred, cfg), (c.a, c.k0, c.k1, pred), new, cfg), None

  run0 = _start(_AdamScalars(*([zero] * 8)), (zero, zero, zero, zero))
  run, _ = jax.lax.scan(step, run0, jnp.arange(cfg.steps))
  c = run.state
  pred = pred_of(c)
  best = _record(run.best, loss_of_pred(pred, cfg), (c.a, c.k0, c.k1, pred))
  a, k0, k1, pred = best.value
  return _AdamBest(a=a, k0=k0, k1=k1, loss=best.loss, pred=pred, steps=best.steps)


def _adam_weights(s: jax.Array, best: _AdamBest, cfg: InversionConfig):
  """Per-coordinate factors (f0, f1 [c, N]) with b = f0 * b0 - a * f1.

  The first-order terms ``-k0 b0_j/|s_j|`` and ``k1 sign(s_j)/|s_j|`` blow up where
  ``s_j -> 0``; there weight decay dominates Adam's normalised step and drives
  ``b_j`` to 0, so they are applied in the saturating form
  ``b0_j |s_j|/(|s_j| + k0) - a s_j/(|s_j| + k1/a)`` (equal to first order; two
  divisions rather than two exponentials, which cost ~10 % of the closed form).
  """
  if not cfg.first_order:
    return jnp.ones_like(s), jnp.sign(s)
  abs_s = jnp.abs(s)
  a = best.a[:, None]
  k0 = jnp.maximum(best.k0, 0.0)[:, None]
  k1a = jnp.maximum(jnp.where(a != 0, best.k1[:, None] / jnp.where(a != 0, a, 1.0), 0.0), 0.0)
  f0 = abs_s / jnp.maximum(abs_s + k0, 1e-30)
  f1 = s / jnp.maximum(abs_s + k1a, 1e-30)
  return f0, f1


def _closed_sgd(st: _Stats, cfg: InversionConfig):
  """Exact rank-one SGD recurrence; returns (alpha, beta, loss, pred, steps).

  The state is ``(alpha, beta)`` ([] float32 each) of ``b_t = alpha b_0 + beta s``.
  """
  sched = schedule(cfg)
  wd = cfg.weight_decay
  f32 = lambda x: jnp.asarray(x, jnp.float32)

  def pred_of(ab):
    return ab[0] * st.p0 + ab[1] * st.s_l1

  def step(run, t):
    al, be = run.state
    pred = pred_of(run.state)
    g = _dloss(pred, cfg)
    lr = sched(t)
    new = ((1 - lr * wd) * al, (1 - lr * wd) * be - lr * g)
    return _track(run, loss_of_pred(pred, cfg), (al, be, pred), new, cfg), None

  run0 = _start((f32(1.0), f32(0.0)), (f32(1.0), f32(0.0), f32(0.0)))
  run, _ = jax.lax.scan(step, run0, jnp.arange(cfg.steps))
  pred = pred_of(run.state)
  best = _record(run.best, loss_of_pred(pred, cfg), (*run.state, pred))
  al, be, pred = best.value
  return al, be, best.loss, pred, best.steps


def _closed_chunk(W: jax.Array, V: jax.Array, keys: jax.Array,
                  cfg: InversionConfig) -> tuple[InversionResult, jax.Array]:
  """Closed form for a chunk of users: (results with a leading [c] axis, b [c, N]).

  ``b`` is only materialised as the operand of the one product ``b @ V`` (Eq. 11);
  callers that want prototypes only let XLA fuse it away.
  """
  t = _chunk_terms(W, V, keys, cfg)
  if cfg.optimizer == "adam":
    best = jax.vmap(lambda x: _closed_adam(x, V.shape[0], cfg))(t.st)
    f0, f1 = _adam_weights(t.s, best, cfg)
    b = t.e * (f0 * t.inv_sum[:, None]) - best.a[:, None] * f1
    loss, pred, steps = best.loss, best.pred, best.steps
  else:
    al, be, loss, pred, steps = jax.vmap(lambda x: _closed_sgd(x, cfg))(t.st)
    b = al[:, None] * t.e * t.inv_sum[:, None] + be[:, None] * t.s
  c = W.shape[0]
  res = InversionResult(b=jnp.zeros((c, 0), jnp.float32), loss=loss, steps=steps,
                        prototype=b @ V, pred=pred)
  return res, b


def _closed_batch(W, V, keys, cfg: InversionConfig) -> InversionResult:
  return _closed_chunk(W, V, keys, cfg)[0]
