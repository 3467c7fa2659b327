"""The learning-rate grid's edges and its extension beyond them.

:func:`lr_edge` says whether the selected lr is the smallest or the largest lr tried;
while it is, :func:`extend_grid` trains the lr one grid step (the ratio of the last
two) beyond that edge, at most ``TrainConfig.grid_extend`` times, and keeps the best
result.
"""
from __future__ import annotations

import dataclasses
import logging

from pfcdr_jax.models.train_config import TrainConfig
from pfcdr_jax.models.train_config import TrainResult


log = logging.getLogger(__name__)


def lr_edge(lrs, lr: float) -> str:
  """"low" / "high" when ``lr`` is the smallest / largest of several ``lrs``, else ""."""
  if len(set(lrs)) < 2:
    return ""
  return "low" if lr == min(lrs) else "high" if lr == max(lrs) else ""


def _next_lr(lrs_tried, edge: str) -> float:
  """The lr one grid step beyond ``edge`` of ``lrs_tried`` (ratio of the last two)."""
  lrs = sorted(set(lrs_tried))
  lr = lrs[0] ** 2 / lrs[1] if edge == "low" else lrs[-1] ** 2 / lrs[-2]
  return float(f"{lr:.6g}")


def extend_grid(train_one, result: TrainResult, cfg: TrainConfig) -> TrainResult:
  """Trains lrs beyond the edge of the grid while the selected lr sits on it.

  Args:
    train_one: ``train_one(cfg) -> TrainResult`` trains one configuration (same
      domain, key and held-out split).
    result: the grid's result; cfg: the grid's configuration.

  Returns:
    The best result over the grid and at most ``cfg.grid_extend`` extensions, with
    ``lrs_tried`` and ``lr_at_edge`` describing the extended grid.
  """
  tried, best = list(result.lrs_tried), result
  for _ in range(cfg.grid_extend):
    edge = lr_edge(tried, best.lr)
    if not edge:
      break
    lr = _next_lr(tried, edge)
    tried.append(lr)
    new = train_one(dataclasses.replace(cfg, lrs=(lr,), grid_extend=0))
    log.info("lr %g at the %s edge of the grid: trained lr %g too (held-out MSE %.4f vs "
             "%.4f)", best.lr, edge, lr, new.heldout_mse, best.heldout_mse)
    if new.heldout_mse < best.heldout_mse:
      best = new
  return best._replace(lrs_tried=tuple(tried), lr_at_edge=lr_edge(tried, best.lr))
