"""The bilinear bridge's M (``z_u^T M x_j``, linear in M): the design rows
``z_u (x) x_j``, ridge in closed form, the least-absolute-deviation refit (IRLS) and
its predictions."""

from __future__ import annotations

import numpy as np


def _design(Z: np.ndarray, X: np.ndarray, rows: np.ndarray, items: np.ndarray
            ) -> np.ndarray:
  """float64[R, f*g]: rows of ``z_u (x) x_j`` (Z [n, f] indexed by `rows`)."""
  return (Z[rows][:, :, None] * X[items][:, None, :]).reshape(len(rows), -1)


def normal_equations(Z, X, rows, items, y, chunk: int = 65536, weights=None):
  """(D^T W D [p, p], D^T W y [p]) of the bilinear design D, accumulated in chunks.

  ``weights``: float[R] per-rating weights W (None: all 1).
  """
  p = Z.shape[1] * X.shape[1]
  A, c = np.zeros((p, p)), np.zeros(p)
  for s in range(0, len(rows), chunk):
    D = _design(Z, X, rows[s:s + chunk], items[s:s + chunk])
    Dw = D if weights is None else D * weights[s:s + chunk, None]
    A += Dw.T @ D
    c += Dw.T @ y[s:s + chunk]
  return A, c


def irls_l1(Z, X, rows, items, y, strength: float, theta: np.ndarray, *, steps: int,
            delta: float, chunk: int = 65536, max_cached: float = 5e7) -> np.ndarray:
  """theta [p] of ``min sum |y - D theta| + (strength / 2) mean(diag(D^T W D)) |theta|^2``.

  Iteratively reweighted least squares from `theta` (the ridge fit): each step solves
  the ridge problem with weights ``1 / max(|residual|, delta)``, whose fixed point is
  the least-absolute-deviation fit (``delta`` bounds the weights of exact fits). The
  design is kept in float32 chunks when it has at most `max_cached` entries.
  """
  p = Z.shape[1] * X.shape[1]
  spans = [slice(s, s + chunk) for s in range(0, len(rows), chunk)]
  cached = len(rows) * p <= max_cached
  design = lambda sl: _design(Z, X, rows[sl], items[sl]).astype(np.float32)
  chunks = [design(sl) for sl in spans] if cached else None
  for _ in range(steps):
    A, c = np.zeros((p, p)), np.zeros(p)
    for i, sl in enumerate(spans):
      D = chunks[i] if cached else design(sl)
      w = 1.0 / np.maximum(np.abs(y[sl] - D.astype(np.float64) @ theta), delta)
      Dw = D * w[:, None].astype(np.float32)
      A += (Dw.T @ D).astype(np.float64)
      c += Dw.T.astype(np.float64) @ y[sl]
    theta = ridge_solve(A, c, strength)
  return theta


def ridge_solve(A: np.ndarray, c: np.ndarray, strength: float) -> np.ndarray:
  """theta [p] of ``(A + strength * mean(diag A) * I) theta = c``."""
  scale = float(np.mean(np.diag(A))) or 1.0
  return np.linalg.solve(A + strength * scale * np.eye(len(c)), c)


def bilinear_predict(theta: np.ndarray, Z: np.ndarray, X: np.ndarray, rows: np.ndarray,
                     items: np.ndarray) -> np.ndarray:
  """float64[P]: ``z_u^T M x_j`` with ``M = theta.reshape(f, g)``."""
  M = theta.reshape(Z.shape[1], X.shape[1])
  return np.einsum("pf,fg,pg->p", Z[rows], M, X[items])
