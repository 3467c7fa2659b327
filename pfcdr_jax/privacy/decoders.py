"""What attacker C fits on its auxiliary users: a decoder from transferred vector to U.

Decoders, chosen by the attacker on its own data (a held-out fifth of the auxiliary
users, never the attacked users), then refitted on every auxiliary user:

* ``ridge=<penalty>``: linear ridge regression (closed form), three penalties;
* ``poly2=<penalty>``: ridge on the vector and its pairwise products (vectors of at
  most :data:`POLY_MAX_DIM` coordinates), a nonlinear decoder. PFCDR's inversion
  step size depends on ``U_i`` (``U_i . P_i = r``), so a prototype could encode the
  embedding nonlinearly.

(A two-layer MLP was tried on comedy2drama's prototypes: its holdout R^2 was below
the ridge decoder's and it took ~50 s per fit on 2 cores, so it is not offered.)
"""

from __future__ import annotations

import numpy as np

RIDGE_GRID = (1e-3, 1e-1, 10.0)
POLY_MAX_DIM = 16


def fit_ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
  """``argmin ||x W + b - y||^2 + penalty ||W||^2`` -> ``(W [m, d], b [d])``."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  mx, my = x.mean(0), y.mean(0)
  xc = x - mx
  w = np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ (y - my))
  return w, my - mx @ w


def poly2(x: np.ndarray) -> np.ndarray:
  """float[n, m + m (m + 1) / 2]: ``x`` and every product ``x_a x_b`` (a <= b)."""
  x = np.asarray(x, np.float64)
  a, b = np.triu_indices(x.shape[1])
  return np.concatenate([x, x[:, a] * x[:, b]], axis=1)


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
  return 1.0 - float(np.sum((pred - y) ** 2) / max(np.sum((y - y.mean(0)) ** 2), 1e-12))


def _fit_kind(kind: str, x: np.ndarray, y: np.ndarray):
  """A fitted predictor ``x -> y`` of one decoder kind (features standardised)."""
  feats = poly2 if kind.startswith("poly2") else (lambda z: np.asarray(z, np.float64))
  fx = feats(x)
  mu, sd = fx.mean(0), fx.std(0) + 1e-12
  w, b = fit_ridge((fx - mu) / sd, y, float(kind.split("=")[1]))
  return lambda z: ((feats(z) - mu) / sd) @ w + b


def decode(x_aux: np.ndarray, y_aux: np.ndarray, x_eval: np.ndarray, *, seed: int = 0,
           nonlinear: bool = True) -> tuple[np.ndarray, dict]:
  """Fits the attacker's decoder on the auxiliary users and applies it.

  Args:
    x_aux: float[n_aux, m] transferred vectors of the auxiliary users.
    y_aux: float[n_aux, d] their true embeddings (or any target).
    x_eval: float[n, m] transferred vectors of the attacked users.
    seed: the attacker's holdout draw.
    nonlinear: also try the ``poly2`` decoders (when ``m <= POLY_MAX_DIM``).

  Returns:
    ``(estimates float[n, d], {"decoder": chosen kind, "holdout_r2": {kind: R^2}})``.
  """
  x_aux, y_aux = np.asarray(x_aux, np.float64), np.asarray(y_aux, np.float64)
  perm = np.random.default_rng(seed).permutation(len(x_aux))
  hold, fit = perm[: len(perm) // 5], perm[len(perm) // 5:]
  kinds = [f"ridge={p:g}" for p in RIDGE_GRID]
  if nonlinear and x_aux.shape[1] <= POLY_MAX_DIM:
    kinds += [f"poly2={p:g}" for p in RIDGE_GRID]
  scores = {k: _r2(_fit_kind(k, x_aux[fit], y_aux[fit])(x_aux[hold]), y_aux[hold])
            for k in kinds}
  best = max(scores, key=scores.get)
  est = _fit_kind(best, x_aux, y_aux)(np.asarray(x_eval, np.float64))
  return est, {"decoder": best, "holdout_r2": scores}
