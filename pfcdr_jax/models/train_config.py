"""Pretraining's configuration (:class:`TrainConfig`) and outcome (:class:`TrainResult`).

Their own module so that the training loop (:mod:`train`) and its parts (:mod:`train_epoch`,
:mod:`heldout`, :mod:`early_stop`, :mod:`lr_grid`) all import them without a cycle; both
are re-exported by :mod:`train`, their documented home.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Pretraining configuration.

  Attributes:
    lrs: Adam learning-rate grid, trained in parallel under vmap.
    epochs: passes over the training ratings.
    batch_size: minibatch size (the last batch is padded and masked).
    heldout_fraction: share of the training ratings held out for model selection.
    seed: seed of the held-out split (numpy, host side).
    dim: embedding dimension (paper: 10).
    heldout_batch: held-out ratings scored per scan step (bounds memory).
    optimizer: "auto" (default: "deferred_adam" when the embedding tables hold more
      rows than ``AUTO_DEFERRED_BATCHES`` minibatches hold ratings, else "adam"; the
      two follow one trajectory, so the choice changes the speed, not the model),
      "adam" (dense ``optax.scale_by_adam``: every row of every table moves
      at every step, the faithful choice), "deferred_adam" (:mod:`deferred_adam`: the
      same trajectory, with each idle row's decay and drift applied in closed form
      when a minibatch next touches it; a step costs O(batch) instead of O(table)) or
      "lazy_adam" (:mod:`lazy_adam`: only the rows a minibatch touches move, a
      different optimiser).
    shuffle: "device" (``jax.random.permutation`` inside the jitted epoch) or "host"
      (numpy's permutation, seeded from ``fold_in(key, epoch)``; the same orders
      for the same key, ~50x cheaper on CPU than the device sort).
    patience: stop after this many epochs without a held-out gain (None: always run
      ``epochs``); what counts as a gain is ``early_stop``'s.
    early_stop: "per_lr" (each learning rate stops on its own after ``patience``
      epochs without a gain of its held-out MSE, and leaves the stack: later epochs
      train only the lrs still improving; the run ends when none is), "any_lr" (the
      whole stack trains until no lr has improved for ``patience`` epochs; per_lr
      differs from it only where a stalled lr would have improved again) or
      "selected" (only a gain of the best held-out MSE over all lrs counts: stops
      while a slow lr is still improving below the best, which on MovieLens is the lr
      that wins later -- an option, not the default) or "per_lr_reach" (per_lr,
      and an lr also stops once it cannot reach the best held-out MSE of the grid
      even if it kept its largest per-epoch gain of the last ``patience`` epochs for
      every epoch left: :func:`early_stop.cannot_reach`) or
      "per_lr_reach_geometric" (per_lr_reach with the gain projected as a geometric
      series where the gains have been shrinking, never beyond per_lr_reach's line) or
      "per_lr_reach_rise" (per_lr_reach_geometric, and an lr also stops once its
      held-out MSE rose in each of its last 2 epochs: :func:`early_stop.rising`).
    shard_tables: shard the user and item tables (and their Adam moments) by rows over
      every device (:mod:`sharded_tables`; with ``jax.distributed``, of every process);
      the same trajectory up to float reassociation.
  """
  lrs: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.1)
  epochs: int = 20
  batch_size: int = 4096
  heldout_fraction: float = 0.05
  seed: int = 0
  dim: int = 10
  heldout_batch: int = 65536
  optimizer: str = "auto"
  shuffle: str = "device"
  patience: int | None = None
  early_stop: str = "per_lr"
  grid_extend: int = 0
  shard_tables: bool = False

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
    if self.shuffle not in SHUFFLES:
      raise ValueError(f"shuffle must be one of {SHUFFLES}, got {self.shuffle!r}")
    if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
      raise ValueError(f"patience must be None or an integer >= 1, got {self.patience!r}")
    if self.early_stop not in EARLY_STOPS:
      raise ValueError(f"early_stop must be one of {EARLY_STOPS}, got {self.early_stop!r}")
    if not isinstance(self.grid_extend, int) or self.grid_extend < 0:
      raise ValueError(f"grid_extend must be an integer >= 0, got {self.grid_extend!r}")


OPTIMIZERS = ("auto", "adam", "deferred_adam", "lazy_adam")
# "auto" picks deferred Adam above this many minibatches' worth of table rows: on 2 CPU
# cores the two break even between 42k and 70k rows, 10-17 x 4096
# (docs/results/bench_pretrain_breakeven.json: music2movie sizes at scales 0.3 / 0.5 /
# 0.7, dense 0.30 / 1.23 / 2.39 s an epoch, deferred 0.38 / 0.99 / 1.51).
AUTO_DEFERRED_BATCHES = 16


def resolve_optimizer(optimizer: str, n_rows: int, batch_size: int) -> str:
  """The optimizer "auto" stands for with ``n_rows`` user + item rows (others as given)."""
  if optimizer != "auto":
    return optimizer
  return "deferred_adam" if n_rows > AUTO_DEFERRED_BATCHES * batch_size else "adam"
SHUFFLES = ("device", "host")
EARLY_STOPS = ("per_lr", "any_lr", "selected", "per_lr_reach", "per_lr_reach_geometric",
               "per_lr_reach_rise")


class TrainResult(NamedTuple):
  """Outcome of ``train_scorer``.

  Attributes:
    params: best params pytree (single model, not stacked).
    lr: the selected learning rate.
    epoch: the selected epoch (1-based: params after that many epochs).
    heldout_mse: held-out MSE of ``params``.
    curve: [n_lrs, epochs_run] held-out MSE after each epoch (epochs_run < epochs
      when early stopping ended the run) of the grid run that holds the selected lr
      (one row when it is a grid extension).
    mean_mse: held-out MSE of the mean predictor (the training ratings' mean): the
      floor a trained model must beat.
    epochs_run: epochs the grid ran (the last extension's, if any).
    cap_reached: the run ended at the epoch cap while the selected lr was still
      improving (within ``patience`` epochs of its best; any cap stop without early
      stopping), i.e. training length was set by the cap, not by convergence.
    lrs_tried: every lr trained (the grid plus the extensions), in order tried.
    lr_at_edge: "low" / "high" when the selected lr is the smallest / largest lr
      tried (the grid, extended or not, may be too narrow), else "".
  """
  params: Any
  lr: float
  epoch: int
  heldout_mse: float
  curve: np.ndarray
  mean_mse: float = float("nan")
  epochs_run: int = 0
  cap_reached: bool = False
  lrs_tried: tuple = ()
  lr_at_edge: str = ""
