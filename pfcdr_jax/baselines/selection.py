"""Choosing a registry method's settings on validation, and its test predictions.

Computes each method's selection grid (its entry's defaults and options over its
grid), runs every grid point once and keeps the one with the lowest validation MAE.

Selection protocol (never on test). Each grid point is trained once; the model predicts
the validation pairs (``ctx.data.target_val``: pseudo-cold overlap users whose target
ratings were removed from training, so they are cold exactly like test users) and the
test pairs in the same call, the point with the lowest validation MAE is kept and its
test predictions returned. Test ratings are never read here (only test (user, item)
pairs), so corrupting them leaves every prediction unchanged (tested). Grids are small
on purpose: a Table-1 cell must stay at a few minutes on 2 CPU cores.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.baselines.registry import ENTRIES, method_key, parse_name


def _key_for(ctx: BaselineContext, base: str, options: dict) -> jax.Array:
  if ENTRIES[base].key == "emcdr":
    return ctx.emcdr_key
  return method_key(ctx.key, base, options)   # crc32 of the name, and of eps if any


def selection_grid(name: str) -> tuple[dict[str, Any], ...]:
  """The settings tried for `name` (defaults + options, grid over the free fields)."""
  base, options = parse_name(name)
  fixed = {**ENTRIES[base].defaults, **options}
  points = []
  for point in ENTRIES[base].grid:
    merged = {**fixed, **{k: v for k, v in point.items() if k not in options}}
    if merged not in points:
      points.append(merged)
  return tuple(points)


def fit_predict(name: str, ctx: BaselineContext) -> tuple[np.ndarray, dict[str, Any]]:
  """Runs baseline `name`, choosing its settings on the validation users.

  Returns ``(test predictions, chosen)``; :func:`fit_predict_val` also returns the
  kept setting's validation predictions.
  """
  test_pred, _, chosen = fit_predict_val(name, ctx)
  return test_pred, chosen


def fit_predict_val(name: str, ctx: BaselineContext
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """:func:`fit_predict` plus the validation predictions of the kept setting.

  Args:
    name: one of :data:`registry.NAMES`, optionally with ``(key=value,...)`` options.
    ctx: the run's split and shared pretrained base models.

  Returns:
    ``(pred float32[T], val_pred float32[V], chosen)``: predictions for
    ``ctx.data.target_test`` and ``ctx.data.target_val`` in their rating order, and the
    chosen settings with the validation MAE of every grid point
    (``grid``, in grid order) and the position of the kept one (``grid_index``).

  Raises:
    ValueError: unknown name, or a grid of several points without validation ratings.
  """
  base, options = parse_name(name)
  grid = selection_grid(name)
  val, test = ctx.data.target_val, ctx.data.target_test
  if len(grid) > 1 and val.rating.size == 0:
    raise ValueError(f"{name}: choosing among {len(grid)} settings needs validation users "
                     "with target ratings (raise val_fraction or fix the options)")
  n_val = val.rating.size
  pairs = (np.concatenate([val.user, test.user]).astype(np.int32),
           np.concatenate([val.item, test.item]).astype(np.int32))
  key = _key_for(ctx, base, options)
  runner = ENTRIES[base].runner
  best = None
  tried = []
  for index, point in enumerate(grid):
    pred = np.asarray(runner(ctx, point, pairs, key), np.float32)
    if pred.shape != pairs[0].shape:
      raise ValueError(f"{name}: expected {pairs[0].shape} predictions, got {pred.shape}")
    val_mae = float(np.mean(np.abs(pred[:n_val] - val.rating))) if n_val else float("nan")
    tried.append({**point, "val_mae": val_mae})
    if best is None or val_mae < best[0]:
      best = (val_mae, index, pred[n_val:], pred[:n_val])
  val_mae, index, test_pred, val_pred = best
  point = grid[index]
  if not np.all(np.isfinite(test_pred)):
    raise FloatingPointError(f"{name}: non-finite test predictions with settings {point}")
  chosen = {**point, "val_mae": val_mae, "grid": tried, "grid_index": index}
  return test_pred.astype(np.float32), val_pred.astype(np.float32), chosen
