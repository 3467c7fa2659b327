"""What every inversion path optimises: config, start, loss, optimiser, best iterate.

The start ``b_0 = softmax(z)`` (Eq. 5, :func:`init_weights`), the loss of a
predicted rating (Eq. 10, :func:`loss_of_pred`), the optimiser with its schedule,
and the best-iterate and early-stop rule of Algorithm 1, lines 5-10, shared by the
iterative path (:mod:`inversion`) and the closed form (:mod:`inversion_closed_form`).

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
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pfcdr_jax.infra import hash_random


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
      or "threefry" (``jax.random.normal``, which some older committed tables need to
      be reproduced): the same distribution, other numbers (BUILD_NOTES §3, PFCDR
      kernels, "b0 draw").
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
