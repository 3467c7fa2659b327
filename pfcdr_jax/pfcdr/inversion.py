"""Conditional model inversion: user prototypes (Eq. 5, 9-11; Algorithm 1, lines 1-13).

For one user with frozen representation ``w`` [d] and the frozen item matrix ``V``
[N, d], a weight vector ``b`` over ALL items starts at ``softmax(z)``, ``z ~ N(0, 1)``
(Eq. 5), and is optimised so that ``pred = w . (b @ V)`` approaches the target
rating ``r`` (Eq. 10). The prototype is ``P = b* @ V`` (Eq. 11).

Optimiser (Section 5.1): Adam, lr 1e-4, weight decay 1e-4 COUPLED as in
``torch.optim.Adam`` (``grad += wd * b`` before the moments), i.e.
``optax.chain(optax.add_decayed_weights(wd), optax.adam(schedule))``, with a
linear warm-up of ``warmup_steps`` from 0 followed by cosine decay to 0 over
``steps`` steps in total. Each user keeps its own best iterate (lowest loss seen,
the final iterate included). With ``eps`` set, a user whose loss falls below
``eps`` is frozen at that iterate (Algorithm 1, line 5-10) and ``steps`` records
the number of updates it received.

Losses (``cfg.loss``):
  * ``"mse"``: ``(r - pred)^2`` (Eq. 10 up to the factor 1/2, as torch's MSELoss).
  * ``"bce"``: binary cross-entropy with logits of ``pred`` against the label
    ``y = r / rating_max``: ``y softplus(-pred) + (1 - y) softplus(pred)`` (the paper says BCE; its
    target 5 is mapped to [0, 1] this way; with ``y = 1`` the loss keeps falling as
    ``pred`` grows, so the best iterate is usually the last).

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

import dataclasses
import functools
import logging
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from pfcdr_jax.infra import chunking
from pfcdr_jax.infra import hash_random

from pfcdr_jax.infra import progress

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InversionConfig:
  """Inversion hyper-parameters (Section 5.1 defaults).

  Attributes:
    target_rating: the rating ``r`` every user is inverted towards.
    steps: optimisation steps per user.
    lr: peak learning rate of the warm-up + cosine schedule.
    weight_decay: coupled (torch-Adam-style) weight decay.
    warmup_steps: linear warm-up steps from lr 0 to ``lr``.
    loss: "mse" or "bce" (see module docstring).
    eps: early-stop threshold on the loss (Algorithm 1, line 5); None = never.
    chunk_size: users per vmapped chunk (memory is ``O(chunk_size * N)``; the
      iterative path holds ~5 such arrays, the closed form ~3). None: sized from
      N by ``chunk_size_for`` (the closed form is fastest when a chunk's [c, N]
      arrays stay in cache: 32 users at N = 64k on the 2-core bench machine).
    method: "auto" (closed form when the scorer is linear in b), "iterative",
      or "closed_form".
    optimizer: "adam" (paper) or "sgd" (Appendix A).
    rating_max: BCE label scale, ``y = target_rating / rating_max``.
    b1, b2, adam_eps: Adam constants (torch/optax defaults).
    first_order: closed form tracks the first-order wd/eps drift of ``pred``.
    b0_draw: how ``z`` of Eq. (5) is drawn from a user's key: "hash" (default;
      :mod:`hash_random`, a counter-based hash, 2.2x cheaper on CPU in bench.json)
      or "threefry" (``jax.random.normal``, the draw of the tables committed before
      issue 16's third part): the same distribution, other numbers (BUILD_NOTES).
  """
  target_rating: float = 5.0
  steps: int = 300
  lr: float = 1e-4
  weight_decay: float = 1e-4
  warmup_steps: int = 10
  loss: str = "mse"
  eps: float | None = None
  # How, not what: results do not depend on the chunking (config.EXECUTION_ONLY).
  chunk_size: int | None = dataclasses.field(default=None,
                                             metadata={"execution_only": True})
  method: str = "auto"
  optimizer: str = "adam"
  rating_max: float = 5.0
  b1: float = 0.9
  b2: float = 0.999
  adam_eps: float = 1e-8
  first_order: bool = True
  b0_draw: str = "hash"

  def __post_init__(self):
    if self.loss not in ("mse", "bce"):
      raise ValueError(f"loss must be 'mse' or 'bce', got {self.loss!r}")
    if self.method not in ("auto", "iterative", "closed_form"):
      raise ValueError(f"method must be auto/iterative/closed_form, got {self.method!r}")
    if self.optimizer not in ("adam", "sgd"):
      raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
    if self.b0_draw not in B0_DRAWS:
      raise ValueError(f"b0_draw must be one of {B0_DRAWS}, got {self.b0_draw!r}")
    if self.steps < 1 or (self.chunk_size is not None and self.chunk_size < 1):
      raise ValueError("steps and chunk_size must be >= 1")


B0_DRAWS = ("threefry", "hash")


class InversionResult(NamedTuple):
  """One user's inversion.

  Attributes:
    b: [N] best item-weight vector (None-free; zeros when not kept).
    loss: [] loss of the best iterate.
    steps: [] int32, updates applied (< cfg.steps only after an early stop).
    prototype: [d] ``b @ V`` of the best iterate (Eq. 11).
    pred: [] ``w . prototype``.
  """
  b: jax.Array
  loss: jax.Array
  steps: jax.Array
  prototype: jax.Array
  pred: jax.Array


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


def schedule(cfg: InversionConfig) -> optax.Schedule:
  """Linear warm-up from 0 to ``cfg.lr`` then cosine decay to 0 over ``cfg.steps``."""
  warm = min(cfg.warmup_steps, cfg.steps)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.lr, warmup_steps=warm,
      decay_steps=max(cfg.steps, warm + 1), end_value=0.0)


def make_optimizer(cfg: InversionConfig) -> optax.GradientTransformation:
  """Coupled weight decay (grad += wd * b) followed by Adam or SGD."""
  sched = schedule(cfg)
  if cfg.optimizer == "adam":
    base = optax.adam(sched, b1=cfg.b1, b2=cfg.b2, eps=cfg.adam_eps)
  else:
    base = optax.sgd(sched)
  return optax.chain(optax.add_decayed_weights(cfg.weight_decay), base)


def loss_of_pred(pred: jax.Array, cfg: InversionConfig) -> jax.Array:
  """Inversion loss of a predicted rating (Eq. 10). pred: [...] -> [...]."""
  r = cfg.target_rating
  if cfg.loss == "mse":
    return (r - pred) ** 2
  y = r / cfg.rating_max
  # BCE with logits in the cancellation-free form (also its gradient,
  # -y sigmoid(-pred) + (1-y) sigmoid(pred), has no 1 - sigmoid cancellation).
  return y * jax.nn.softplus(-pred) + (1.0 - y) * jax.nn.softplus(pred)


def draw_z(key: jax.Array, n_items: int,
           b0_draw: str = InversionConfig.b0_draw) -> jax.Array:
  """Eq. (5)'s ``z ~ N(0, 1)`` [N] from one user's key (``InversionConfig.b0_draw``)."""
  if b0_draw == "hash":
    return hash_random.normal(key, n_items)
  return jax.random.normal(key, (n_items,), jnp.float32)


def init_weights(key: jax.Array, n_items: int,
                 b0_draw: str = InversionConfig.b0_draw) -> jax.Array:
  """Eq. (5): ``b_0 = softmax(z)``, ``z ~ N(0, 1)`` of shape [N]."""
  return jax.nn.softmax(draw_z(key, n_items, b0_draw))


# ----------------------------------------------------------------------------
# Best iterate and early stop (Algorithm 1, lines 5-10), shared by every path.
# ----------------------------------------------------------------------------

class _Best(NamedTuple):
  """The best iterate of one user's run and its early-stop state."""
  loss: jax.Array    # [] float32, lowest loss seen (inf before the first step)
  value: Any         # pytree of [] / [d] / [N] arrays recorded at that iterate
  done: jax.Array    # [] bool, stopped early (the loss fell below cfg.eps)
  steps: jax.Array   # [] int32, updates applied


class _Run(NamedTuple):
  """Scan carry of one user's optimisation."""
  state: Any         # the optimiser's iterate (pytree)
  best: _Best


def _start(state: Any, value0: Any) -> _Run:
  """A run at ``state`` with nothing recorded yet (``value0``: zeros of the record)."""
  return _Run(state=state, best=_Best(loss=jnp.asarray(jnp.inf, jnp.float32), value=value0,
                                      done=jnp.asarray(False),
                                      steps=jnp.asarray(0, jnp.int32)))


def _record(best: _Best, loss: jax.Array, value: Any) -> _Best:
  """Keeps ``value`` (and ``loss``) if ``loss`` is the lowest so far."""
  better = loss < best.loss
  return best._replace(
      loss=jnp.where(better, loss, best.loss),
      value=jax.tree_util.tree_map(lambda v, o: jnp.where(better, v, o), value, best.value))


def _track(run: _Run, loss: jax.Array, value: Any, new_state: Any,
           cfg: InversionConfig) -> _Run:
  """One step of Algorithm 1, lines 5-10, given the current iterate's loss.

  Records ``value`` if ``loss`` is the best so far; the user stops for good once its
  loss falls below ``cfg.eps``: from then on ``new_state`` is dropped and ``steps``
  no longer counts.
  """
  best = _record(run.best, loss, value)
  stop = best.done
  if cfg.eps is not None:
    stop = stop | (loss < cfg.eps)
  state = jax.tree_util.tree_map(lambda old, new: jnp.where(stop, old, new),
                                 run.state, new_state)
  steps = best.steps + jnp.where(stop, 0, 1).astype(jnp.int32)
  return _Run(state=state, best=best._replace(steps=steps, done=stop))


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


# ----------------------------------------------------------------------------
# Closed form: a scalar recurrence per user.
# ----------------------------------------------------------------------------

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
  res = _invert_chunks(jnp.asarray(w, jnp.float32), jnp.asarray(V, jnp.float32), key,
                       jnp.asarray(user_index, jnp.int32), cfg=cfg, method=method,
                       chunk_size=cs, progress=progress)
  return UsersInversion(prototypes=res.prototype, loss=res.loss, pred=res.pred,
                        steps=res.steps, method=method)
