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
  Cost per chunk of users: the draw of ``b_0`` (the dominant term on CPU),
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
import time
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

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
  """
  target_rating: float = 5.0
  steps: int = 300
  lr: float = 1e-4
  weight_decay: float = 1e-4
  warmup_steps: int = 10
  loss: str = "mse"
  eps: float | None = None
  chunk_size: int | None = None
  method: str = "auto"
  optimizer: str = "adam"
  rating_max: float = 5.0
  b1: float = 0.9
  b2: float = 0.999
  adam_eps: float = 1e-8
  first_order: bool = True

  def __post_init__(self):
    if self.loss not in ("mse", "bce"):
      raise ValueError(f"loss must be 'mse' or 'bce', got {self.loss!r}")
    if self.method not in ("auto", "iterative", "closed_form"):
      raise ValueError(f"method must be auto/iterative/closed_form, got {self.method!r}")
    if self.optimizer not in ("adam", "sgd"):
      raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
    if self.steps < 1 or (self.chunk_size is not None and self.chunk_size < 1):
      raise ValueError("steps and chunk_size must be >= 1")


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


def init_weights(key: jax.Array, n_items: int) -> jax.Array:
  """Eq. (5): ``b_0 = softmax(z)``, ``z ~ N(0, 1)`` of shape [N]."""
  return jax.nn.softmax(jax.random.normal(key, (n_items,), jnp.float32))


# ----------------------------------------------------------------------------
# Iterative path: Algorithm 1, lines 1-12, one user, a lax.scan over steps.
# ----------------------------------------------------------------------------

def _iterative_one(w: jax.Array, V: jax.Array, key: jax.Array, cfg: InversionConfig,
                   keep_b: bool) -> InversionResult:
  n = V.shape[0]
  opt = make_optimizer(cfg)
  b0 = init_weights(key, n)

  def loss_fn(b):
    proto = b @ V
    pred = proto @ w
    return loss_of_pred(pred, cfg), (proto, pred)

  value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)
  inf = jnp.asarray(jnp.inf, jnp.float32)
  carry0 = dict(
      b=b0, opt=opt.init(b0), done=jnp.asarray(False), steps=jnp.asarray(0, jnp.int32),
      best_loss=inf, best_proto=jnp.zeros((V.shape[1],), jnp.float32),
      best_pred=jnp.asarray(0.0, jnp.float32),
      best_b=jnp.zeros_like(b0) if keep_b else None)

  def record(c, loss, proto, pred):
    better = loss < c["best_loss"]
    c = dict(c)
    c["best_loss"] = jnp.where(better, loss, c["best_loss"])
    c["best_proto"] = jnp.where(better, proto, c["best_proto"])
    c["best_pred"] = jnp.where(better, pred, c["best_pred"])
    if keep_b:
      c["best_b"] = jnp.where(better, c["b"], c["best_b"])
    return c

  def step(c, _):
    (loss, (proto, pred)), grad = value_and_grad(c["b"])
    c = record(c, loss, proto, pred)
    stop = c["done"]
    if cfg.eps is not None:
      stop = stop | (loss < cfg.eps)
    updates, new_opt = opt.update(grad, c["opt"], c["b"])
    new_b = optax.apply_updates(c["b"], updates)
    c["b"] = jnp.where(stop, c["b"], new_b)
    c["opt"] = jax.tree_util.tree_map(lambda a, o: jnp.where(stop, o, a), new_opt, c["opt"])
    c["steps"] = c["steps"] + jnp.where(stop, 0, 1).astype(jnp.int32)
    c["done"] = stop
    return c, None

  c, _ = jax.lax.scan(step, carry0, None, length=cfg.steps)
  loss, (proto, pred) = loss_fn(c["b"])
  c = record(c, loss, proto, pred)
  b = c["best_b"] if keep_b else jnp.zeros((0,), jnp.float32)
  return InversionResult(b=b, loss=c["best_loss"], steps=c["steps"],
                         prototype=c["best_proto"], pred=c["best_pred"])


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
  zdraw = jax.vmap(lambda k: jax.random.normal(k, (n,), jnp.float32))(keys)
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
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  fo = 1.0 if cfg.first_order else 0.0
  carry0 = dict(a=f32(0.0), k0=f32(0.0), k1=f32(0.0), M=f32(0.0), Q=f32(0.0),
                EA=f32(0.0), E2g=f32(0.0), E2ga=f32(0.0), done=jnp.asarray(False),
                steps=jnp.asarray(0, jnp.int32), best_loss=f32(jnp.inf), best_a=f32(0.0),
                best_k0=f32(0.0), best_k1=f32(0.0), best_pred=f32(0.0))
  best_keys = ("best_loss", "best_a", "best_k0", "best_k1", "best_pred")

  def pred_of(c):
    return st.p0 - c["a"] * st.s_l1 - c["k0"] * st.z + c["k1"] * n

  def record(c, loss, pred):
    better = loss < c["best_loss"]
    c = dict(c)
    for k_, v in (("best_loss", loss), ("best_a", c["a"]), ("best_k0", c["k0"]),
                  ("best_k1", c["k1"]), ("best_pred", pred)):
      c[k_] = jnp.where(better, v, c[k_])
    return c

  def step(c, t):
    pred = pred_of(c)
    loss = loss_of_pred(pred, cfg)
    c = record(c, loss, pred)
    stop = c["done"]
    if cfg.eps is not None:
      stop = stop | (loss < cfg.eps)
    g = _dloss(pred, cfg)
    M = b1 * c["M"] + (1 - b1) * g
    Q = b2 * c["Q"] + (1 - b2) * g * g
    EA = b1 * c["EA"] + (1 - b1) * c["a"]
    E2g = b2 * c["E2g"] + (1 - b2) * g
    E2ga = b2 * c["E2ga"] + (1 - b2) * g * c["a"]
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
    new = dict(c, a=c["a"] + da, k0=c["k0"] + dk0, k1=c["k1"] + dk1, M=M, Q=Q, EA=EA,
               E2g=E2g, E2ga=E2ga)
    c = {k_: (c[k_] if k_ in best_keys else jnp.where(stop, c[k_], new[k_])) for k_ in c}
    c["steps"] = c["steps"] + jnp.where(stop, 0, 1).astype(jnp.int32)
    c["done"] = stop
    return c, None

  c, _ = jax.lax.scan(step, carry0, jnp.arange(cfg.steps))
  pred = pred_of(c)
  c = record(c, loss_of_pred(pred, cfg), pred)
  return _AdamBest(a=c["best_a"], k0=c["best_k0"], k1=c["best_k1"], loss=c["best_loss"],
                   pred=c["best_pred"], steps=c["steps"])


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
  """Exact rank-one SGD recurrence; returns (alpha, beta, loss, pred, steps)."""
  sched = schedule(cfg)
  wd = cfg.weight_decay
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  carry0 = dict(al=f32(1.0), be=f32(0.0), done=jnp.asarray(False),
                steps=jnp.asarray(0, jnp.int32), best_loss=f32(jnp.inf),
                best_al=f32(1.0), best_be=f32(0.0), best_pred=f32(0.0))

  def record(c, loss, pred):
    better = loss < c["best_loss"]
    c = dict(c)
    for k_, v in (("best_loss", loss), ("best_al", c["al"]), ("best_be", c["be"]),
                  ("best_pred", pred)):
      c[k_] = jnp.where(better, v, c[k_])
    return c

  def step(c, t):
    pred = c["al"] * st.p0 + c["be"] * st.s_l1
    loss = loss_of_pred(pred, cfg)
    c = record(c, loss, pred)
    stop = c["done"]
    if cfg.eps is not None:
      stop = stop | (loss < cfg.eps)
    g = _dloss(pred, cfg)
    lr = sched(t)
    al = (1 - lr * wd) * c["al"]
    be = (1 - lr * wd) * c["be"] - lr * g
    c["al"] = jnp.where(stop, c["al"], al)
    c["be"] = jnp.where(stop, c["be"], be)
    c["steps"] = c["steps"] + jnp.where(stop, 0, 1).astype(jnp.int32)
    c["done"] = stop
    return c, None

  c, _ = jax.lax.scan(step, carry0, jnp.arange(cfg.steps))
  pred = c["al"] * st.p0 + c["be"] * st.s_l1
  c = record(c, loss_of_pred(pred, cfg), pred)
  return c["best_al"], c["best_be"], c["best_loss"], c["best_pred"], c["steps"]


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


def closed_form_weights(w: jax.Array, V: jax.Array, key: jax.Array,
                        cfg: InversionConfig) -> jax.Array:
  """The closed form's best ``b`` [N] for one user (for tests and inspection)."""
  return _closed_chunk(w[None], V, key[None], cfg)[1][0]


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

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


@functools.partial(jax.jit, static_argnames=("cfg", "method", "progress"))
def _invert_chunks(W, V, key, index, *, cfg: InversionConfig, method: str,
                   progress: str | None):
  n_chunks = W.shape[0]
  if method == "iterative":
    batched = jax.vmap(functools.partial(_iterative_one, cfg=cfg, keep_b=False),
                       in_axes=(0, None, 0))
  else:
    batched = functools.partial(_closed_batch, cfg=cfg)

  def body(args):
    ci, w_chunk, idx_chunk = args
    res = batched(w_chunk, V, user_keys(key, idx_chunk))
    if progress is not None:
      jax.debug.callback(functools.partial(_log_progress, progress, n_chunks), ci,
                         res.loss)
    return res

  return jax.lax.map(body, (jnp.arange(n_chunks), W, index))


_PROGRESS_T0: dict[str, float] = {}


def _log_progress(label, n_chunks, ci, _):
  ci = int(ci)
  now = time.perf_counter()
  if ci == 0:
    _PROGRESS_T0[label] = now
  t0 = _PROGRESS_T0.get(label, now)
  done = ci + 1
  rate = done / max(now - t0, 1e-9)
  if ci == 0 or done == n_chunks or done % max(1, n_chunks // 10) == 0:
    log.info("inversion %s: chunk %d/%d (%.2f chunks/s, ETA %.0fs)", label, done,
             n_chunks, rate if ci else float("nan"),
             (n_chunks - done) / rate if ci else float("nan"))


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
  B, d = w.shape
  if user_index is None:
    user_index = jnp.arange(B, dtype=jnp.int32)
  cs = chunk_size_for(cfg, method, V.shape[0])
  cs = int(min(cs, max(B, 1)))
  n_chunks = max(1, -(-B // cs))
  pad = n_chunks * cs - B
  Wp = jnp.pad(jnp.asarray(w, jnp.float32), ((0, pad), (0, 0))).reshape(n_chunks, cs, d)
  idx = jnp.pad(jnp.asarray(user_index, jnp.int32), (0, pad)).reshape(n_chunks, cs)
  res = _invert_chunks(Wp, jnp.asarray(V, jnp.float32), key, idx, cfg=cfg,
                       method=method, progress=progress)
  flat = lambda x: x.reshape((n_chunks * cs,) + x.shape[2:])[:B]
  return UsersInversion(prototypes=flat(res.prototype), loss=flat(res.loss),
                        pred=flat(res.pred), steps=flat(res.steps), method=method)


def prototypes_from_weights(b: jax.Array, V: jax.Array) -> jax.Array:
  """Eq. (11): ``P = b @ V``. b: [..., N], V: [N, d] -> [..., d]."""
  return b @ V
