"""Rating-prediction metrics (Section 5.1): MAE and RMSE.

Both accept numpy or jax arrays and return a value of the same kind (a numpy
float64 scalar for numpy inputs, a jax scalar for jax inputs).
"""
from __future__ import annotations

import numpy as np
import jax.numpy as jnp


def _xp(*arrays):
  return np if all(isinstance(a, (np.ndarray, list, tuple, float, int)) for a in arrays) else jnp


def mae(pred, y):
  """Mean absolute error ``mean |pred - y|``. pred, y: [R]."""
  xp = _xp(pred, y)
  pred, y = xp.asarray(pred), xp.asarray(y)
  if pred.shape != y.shape:
    raise ValueError(f"shape mismatch: pred {pred.shape} vs y {y.shape}")
  return xp.mean(xp.abs(pred - y))


def rmse(pred, y):
  """Root mean squared error ``sqrt(mean (pred - y)^2)``. pred, y: [R]."""
  xp = _xp(pred, y)
  pred, y = xp.asarray(pred), xp.asarray(y)
  if pred.shape != y.shape:
    raise ValueError(f"shape mismatch: pred {pred.shape} vs y {y.shape}")
  return xp.sqrt(xp.mean((pred - y) ** 2))
