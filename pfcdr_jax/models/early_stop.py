"""Early stopping of the lr grid (``TrainConfig.patience`` and ``early_stop``).

How many epochs have passed without a gain that counts under a rule
(:func:`epochs_without_gain`), which lrs cannot reach the grid's best in the epochs
left (:func:`cannot_reach`, the ``"per_lr_reach"`` rule), and the bookkeeping that
moves stopped lrs out of the trained stack (their best is final) and puts the whole
grid back together at the end.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.models.train_epoch import _State
from pfcdr_jax.models.train_config import TrainConfig


def epochs_without_gain(best_mse, best_epoch, epochs_done: int, rule: str) -> int:
  """Epochs since the last held-out gain that counts under ``rule`` (see TrainConfig).

  ``best_mse`` / ``best_epoch`` are [L] (or [S, L] for a seed stack: then the count is
  the smallest over seeds, so the run stops once every seed has stalled).
  """
  best_mse, best_epoch = np.asarray(best_mse), np.asarray(best_epoch)
  if rule == "any_lr":
    return epochs_done - int(np.max(best_epoch))
  sel = np.take_along_axis(best_epoch, np.argmin(best_mse, axis=-1)[..., None], axis=-1)
  return epochs_done - int(np.max(sel))


# The slowest decay the geometric projection assumes (gains shrinking by at most 5 %
# an epoch); caps the ratio a noisy or restarting curve would otherwise push to 1.
MAX_GAIN_RATIO = 0.95


def cannot_reach(curve: np.ndarray, epochs: int, window: int,
                 geometric: bool = False) -> np.ndarray:
  """Which lrs cannot reach the grid's best held-out MSE in the epochs left.

  An lr's reach is its best MSE so far minus (epochs left) x (its largest per-epoch
  gain of the best MSE over the last ``window`` epochs): linear extrapolation at its
  steepest recent rate, optimistic on curves whose gains shrink. It cannot reach
  when that is still above the best MSE of any lr (of its seed). Nothing is decided
  before ``window + 1`` epochs have run.

  With ``geometric`` (the ``"per_lr_reach_geometric"`` rule) the projection is the
  smaller of that line and a geometric series: the larger of the last two gains,
  shrinking each epoch by the slowest ratio of consecutive gains seen in the window
  (at most ``MAX_GAIN_RATIO``). Gains that have been shrinking stop an lr whose line
  would still reach (on synthetic music2movie a diverged lr = 0.1 recovering from MSE
  9 towards 3.6 ran 4 epochs more under the line alone); an lr gaining as fast as
  before keeps the line's reach.

  Args:
    curve: [E, ..., L] held-out MSE after each of the E epochs run (NaN where an lr
      was not trained); ``...`` is a seed axis or nothing.
    epochs: the run's epoch budget.
    window: how many recent gains the rate is taken over (the patience).
    geometric: also bound the projection by the geometric series.

  Returns:
    bool[..., L].
  """
  curve = np.asarray(curve, np.float64)
  if curve.shape[0] <= window:
    return np.zeros(curve.shape[1:], bool)
  best = np.fmin.accumulate(curve, axis=0)          # NaN (untrained) epochs keep the best
  recent = best[-(window + 1):]
  gains = recent[:-1] - recent[1:]                  # [window, ..., L], >= 0 (or NaN)
  left = epochs - curve.shape[0]
  projected = np.max(gains, axis=0) * left
  if geometric:
    with np.errstate(divide="ignore", invalid="ignore"):
      ratios = np.where(gains[1:] > 0, gains[1:] / gains[:-1], 0.0)   # x/0 -> inf
    rho = np.minimum(np.nan_to_num(np.max(ratios, axis=0), nan=0.0), MAX_GAIN_RATIO)
    g = np.max(gains[-2:], axis=0)
    series = g * rho * (1.0 - rho ** left) / (1.0 - rho)
    projected = np.minimum(projected, series)
  reach = best[-1] - projected
  with np.errstate(invalid="ignore"):
    return reach > np.nanmin(best[-1], axis=-1, keepdims=True)


# "per_lr_reach_rise": an lr also stops once it is overfitting, its held-out MSE having
# risen in each of its last RISE_EPOCHS epochs (its best is then at least that old).
# (A "diverged" stop -- still above twice the grid's best two epochs in -- was tried and
# dropped: on a planted task it stopped slow lrs that went on to win.)
RISE_EPOCHS = 2


def rising(curve: np.ndarray, epochs: int = RISE_EPOCHS) -> np.ndarray:
  """Which lrs' held-out MSE rose in each of the last ``epochs`` epochs: bool[..., L].

  ``curve``: [E, ..., L] (NaN where an lr was not trained; a NaN never rises). False
  before ``epochs + 1`` epochs have run.
  """
  curve = np.asarray(curve, np.float64)
  if curve.shape[0] <= epochs:
    return np.zeros(curve.shape[1:], bool)
  last = curve[-(epochs + 1):]
  with np.errstate(invalid="ignore"):
    return np.all(last[1:] > last[:-1], axis=0)


def replay(curve: np.ndarray, rule: str, patience: int, epochs: int
           ) -> tuple[np.ndarray, int]:
  """What a stop rule would have trained, read off a fuller run's curves.

  Every lr's held-out curve is the same whichever others are still trained (the
  stacked lrs do not interact; masking others at other epochs may round the last
  float32 bit differently: tested), so a rule that stops each lr no later than the
  rule that made ``curve`` can be replayed on it. Whether it does is only known on
  the way: a rule that stops an lr that would have become the grid's best can keep
  another lr longer (its reach is measured against a worse best); then this raises.

  Args:
    curve: [E, L] held-out MSE per epoch (NaN after an lr stopped) of one grid run.
    rule: a per-lr rule of ``EARLY_STOPS`` ("per_lr", "per_lr_reach",
      "per_lr_reach_geometric", "per_lr_reach_rise").
    patience, epochs: the run's settings.

  Returns:
    (``curve`` with NaN where ``rule`` would not have trained, epochs it would run).

  Raises:
    ValueError: the rule would train an lr at an epoch ``curve`` did not (it stops
      later than the rule that made ``curve``): not replayable.
  """
  curve = np.asarray(curve, np.float64)
  out = np.full_like(curve, np.nan)
  active = np.ones(curve.shape[1], bool)
  best_epoch = np.zeros(curve.shape[1], int)
  best = np.full(curve.shape[1], np.inf)
  for e in range(curve.shape[0]):
    row = np.where(active, curve[e], np.nan)
    if np.any(active & np.isnan(curve[e])):
      raise ValueError(f"{rule} trains an lr at epoch {e + 1} that the recorded run did not")
    out[e] = row
    gain = active & (row < best)
    best = np.where(gain, row, best)
    best_epoch = np.where(gain, e + 1, best_epoch)
    active = active & (e + 1 - best_epoch < patience)
    done = out[:e + 1]
    if rule != "per_lr":
      active &= ~cannot_reach(done, epochs, patience,
                              geometric=rule in ("per_lr_reach_geometric", "per_lr_reach_rise"))
    if rule == "per_lr_reach_rise":
      active &= ~rising(done)
    if not active.any():
      return out[:e + 1], e + 1
  return out, curve.shape[0]


class _Stack(NamedTuple):
  """Where the lr axis is (0, or 1 behind a seed axis) and which lrs are still trained."""
  axis: int
  cols: np.ndarray     # int[L_now]: grid index of each lr still in the stack


def on_one_device(x) -> bool:
  """True for an array on one device: its lr bookkeeping runs in numpy.

  Each eager ``jnp`` op compiles once per shape, and the lr stack changes shape every
  time lrs stop (about a hundred small compiles per run, seconds on a CPU); a copy
  through the host placed with ``jax.device_put`` (``jnp.asarray`` of a numpy array
  compiles a copy too) compiles nothing and gives the same values. Arrays laid over
  several devices (models/sharded_tables.py) stay in jax.
  """
  return not isinstance(x, jax.Array) or len(x.sharding.device_set) == 1


def _take_lrs(tree, idx, axis: int):
  """``tree`` at lr index (or indices) ``idx`` of the lr axis ``axis``."""
  # A host index: a constant of the take, so it also applies to arrays sharded over
  # the devices of several processes (models/sharded_tables.py).
  idx = np.asarray(idx)

  def take(x):
    if on_one_device(x):
      return jax.device_put(np.take(np.asarray(x), idx, axis=axis))
    return jnp.take(x, idx, axis=axis)

  return jax.tree_util.tree_map(take, tree)


def stack_lrs(xs, axis: int):
  """``jnp.stack(xs, axis)``, through the host where every part is on one device."""
  if all(on_one_device(x) for x in xs):
    return jax.device_put(np.stack([np.asarray(x) for x in xs], axis=axis))
  return jnp.stack(xs, axis=axis)


def _shrink(state: _State, stack: _Stack, keep: np.ndarray, done: dict) -> tuple[_State, _Stack]:
  """Moves the lrs not in ``keep`` (bool[L_now]) out of the stack into ``done``
  (grid index -> (best_params, best_mse, best_epoch), lr axis removed)."""
  for j in np.flatnonzero(~keep):
    done[int(stack.cols[j])] = _take_lrs(
        (state.best_params, state.best_mse, state.best_epoch), j, stack.axis)
  idx = np.flatnonzero(keep)
  state = _State(*(_take_lrs(getattr(state, f), idx, stack.axis) for f in _State._fields))
  return state, _Stack(stack.axis, stack.cols[idx])


def _full_best(state: _State, stack: _Stack, done: dict, n_lrs: int) -> _State:
  """The best (params, mse, epoch) of every grid lr, stacked in grid order."""
  _shrink(state, stack, np.zeros(len(stack.cols), bool), done)   # the rest into ``done``
  best = jax.tree_util.tree_map(lambda *xs: stack_lrs(xs, stack.axis),
                                *(done[li] for li in range(n_lrs)))
  return _State(params=None, opt=None, best_params=best[0], best_mse=best[1],
                best_epoch=best[2])


# Inactive lrs leave the stack when, together, they would cost at least this many
# rating visits an epoch (ratings x seeds x lrs), or when at most one lr is left.
# Each new stack size compiles the epoch kernel once more (0.8 s on 2 CPU cores
# without the XLA cache); an inactive lr kept in the stack trains on unseen (its
# best is final: the kernel masks it), which on comedy2drama costs about 0.06 s per
# lr and epoch. Leaving the stack or not changes no number (tested).
SHRINK_MIN_WORK = 1_000_000


def worth_shrinking(keep: np.ndarray, work_per_lr: int | None) -> bool:
  """Whether the lrs not in ``keep`` (bool[L_now]) leave the stack now
  (``SHRINK_MIN_WORK``); ``work_per_lr`` None: always."""
  n_out = int(np.sum(~keep))
  return (n_out > 0 and (work_per_lr is None or int(np.sum(keep)) <= 1
                         or n_out * work_per_lr >= SHRINK_MIN_WORK))


PER_LR = ("per_lr", "per_lr_reach", "per_lr_reach_geometric", "per_lr_reach_rise")


def _stop_check(state: _State, stack: _Stack, curve: list, cfg: TrainConfig,
                done: dict, work_per_lr: int | None = None) -> tuple[bool, _State, _Stack]:
  """After an epoch (``curve``: one full-grid row per epoch run): (stop?, state, stack).
  With ``per_lr`` / ``per_lr_reach``, the lrs stalled for ``patience`` epochs (or that
  :func:`cannot_reach` the best) become inactive (their best is final) and leave the
  stack once no seed still trains them and :func:`worth_shrinking` says so
  (``work_per_lr``: rating visits an epoch of one lr, all seeds)."""
  epochs_done = len(curve)
  if cfg.patience is None:
    return False, state, stack
  if cfg.early_stop not in PER_LR:
    stalled = epochs_without_gain(state.best_mse, state.best_epoch, epochs_done, cfg.early_stop)
    return stalled >= cfg.patience, state, stack
  active = np.asarray(state.active) & (epochs_done - np.asarray(state.best_epoch) < cfg.patience)
  full = np.stack(curve)
  if cfg.early_stop != "per_lr":
    active &= ~cannot_reach(full, cfg.epochs, cfg.patience,
                            geometric=cfg.early_stop in ("per_lr_reach_geometric",
                                                         "per_lr_reach_rise")
                            )[..., stack.cols]
  if cfg.early_stop == "per_lr_reach_rise":
    active &= ~rising(full)[..., stack.cols]
  if not active.any():
    return True, state, stack
  state = state._replace(active=jax.device_put(active))
  keep = active.any(axis=0) if stack.axis == 1 else active
  if worth_shrinking(keep, work_per_lr):
    state, stack = _shrink(state, stack, keep, done)
  return False, state, stack
