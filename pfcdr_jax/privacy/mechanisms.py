"""Noise calibration of every private method in the project, in one place.

Gaussian mechanism (``x + N(0, sigma^2 I)`` on an L2-bounded release of sensitivity
``Delta``): ``classic`` (Dwork & Roth 2014, Thm. A.1, ``0 < epsilon < 1`` only) and
``analytic`` (Balle & Wang 2018, Thm. 8 / Alg. 1, every ``epsilon > 0``, tighter);
clipping and the add/remove vs replace sensitivity of one clipped vector; the Laplace
scale of a bounded sum. Used by DP-EMCDR, PF2CDR, PriCDR-S, FedCDR, PFCDR-DP and PFCDR+.
"""
from __future__ import annotations

import math
import struct
import zlib

import chex
import jax
import jax.numpy as jnp
from scipy import optimize, special


def classic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
  """Classic Gaussian-mechanism noise (Dwork & Roth 2014, Theorem A.1).

  ``sigma = Delta * sqrt(2 ln(1.25 / delta)) / epsilon``, valid for ``0 < epsilon < 1``.

  Args:
    epsilon: privacy budget in (0, 1).
    delta: failure probability in (0, 1).
    sensitivity: L2 sensitivity ``Delta > 0``.

  Returns:
    The noise standard deviation.

  Raises:
    ValueError: outside the proven range.
  """
  if not 0.0 < epsilon < 1.0:
    raise ValueError(
        f"classic Gaussian mechanism is only proven for 0 < epsilon < 1, got {epsilon}; "
        "use mechanism='analytic' (Balle & Wang 2018) for larger epsilon")
  _check_delta_sens(delta, sensitivity)
  return float(sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon)


def analytic_gaussian_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
  """Exact delta of the Gaussian mechanism (Balle & Wang 2018, Theorem 8).

  Args:
    sigma: noise standard deviation.
    epsilon: privacy budget (> 0).
    sensitivity: L2 sensitivity.

  Returns:
    ``Phi(D/(2s) - e s/D) - exp(e) Phi(-D/(2s) - e s/D)``.
  """
  a = sensitivity / (2.0 * sigma)
  b = epsilon * sigma / sensitivity
  # exp(eps) * Phi(.) in log space: it overflows for large eps otherwise.
  return float(special.ndtr(a - b) - math.exp(epsilon + special.log_ndtr(-a - b)))


def analytic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
  """Smallest sigma giving (epsilon, delta)-DP (Balle & Wang 2018, Algorithm 1).

  Solves ``analytic_gaussian_delta(sigma) = delta`` by Brent's method; the delta is
  decreasing in sigma.

  Args:
    epsilon: privacy budget (> 0, any size).
    delta: failure probability in (0, 1).
    sensitivity: L2 sensitivity.

  Returns:
    The calibrated noise standard deviation.
  """
  if not epsilon > 0.0:
    raise ValueError(f"epsilon must be > 0, got {epsilon}")
  _check_delta_sens(delta, sensitivity)
  f = lambda log_s: analytic_gaussian_delta(math.exp(log_s), epsilon, sensitivity) - delta
  lo, hi = math.log(sensitivity) - 30.0, math.log(sensitivity) + 30.0
  log_s = optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=500)
  return float(math.exp(log_s))


def gaussian_epsilon(sigma: float, delta: float, sensitivity: float) -> float:
  """The smallest epsilon at which ``N(0, sigma^2)`` noise on an L2-`sensitivity`
  release is (epsilon, delta)-DP (analytic Gaussian, the inverse of
  :func:`analytic_gaussian_sigma` in epsilon); inf for sigma = 0."""
  _check_delta_sens(delta, sensitivity)
  if not sigma > 0:
    return math.inf
  f = lambda log_e: analytic_gaussian_delta(sigma, math.exp(log_e), sensitivity) - delta
  lo, hi = math.log(1e-8), math.log(1e8)
  if f(lo) <= 0:
    return 0.0
  if f(hi) > 0:
    return math.inf
  return float(math.exp(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-10, maxiter=500)))


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float,
                   mechanism: str = "classic") -> float:
  """Dispatches to :func:`classic_gaussian_sigma` or :func:`analytic_gaussian_sigma`."""
  if mechanism == "classic":
    return classic_gaussian_sigma(epsilon, delta, sensitivity)
  if mechanism == "analytic":
    return analytic_gaussian_sigma(epsilon, delta, sensitivity)
  raise ValueError(f"unknown mechanism {mechanism!r}; use 'classic' or 'analytic'")


def sensitivity_of(clip_norm: float, neighboring: str) -> float:
  """L2 sensitivity of releasing one clipped vector (see module docstring)."""
  if clip_norm <= 0:
    raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
  if neighboring == "add_remove":
    return float(clip_norm)
  if neighboring == "replace":
    return 2.0 * float(clip_norm)
  raise ValueError(f"unknown neighboring {neighboring!r}; use 'add_remove' or 'replace'")


def clip_rows(x: jax.Array, clip_norm: float) -> jax.Array:
  """Scales each row to L2 norm at most ``clip_norm``.

  Args:
    x: ``[n, d]`` vectors.
    clip_norm: ``C > 0``.

  Returns:
    ``[n, d]`` rows ``x_u * min(1, C / ||x_u||)``.
  """
  chex.assert_rank(x, 2)
  norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x * jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12))


def privatize(x: jax.Array, key: jax.Array, sigma: float, clip_norm: float) -> jax.Array:
  """Gaussian mechanism on each row: ``clip(x_u, C) + N(0, sigma^2 I)``.

  Args:
    x: ``[n, d]`` embeddings to release.
    key: PRNG key.
    sigma: noise standard deviation (from :func:`gaussian_sigma`); 0 for none.
    clip_norm: ``C``.

  Returns:
    ``[n, d]`` privatised embeddings.
  """
  clipped = clip_rows(x, clip_norm)
  return clipped + sigma * jax.random.normal(key, clipped.shape, clipped.dtype)


def epsilon_word(epsilon: float) -> int:
  """A 31-bit word that differs for every budget (crc32 of ``float64(epsilon)``), for
  ``jax.random.fold_in``: a method's releases at two budgets then draw independent
  noise. One draw scaled by sigma(eps) would let anyone holding two releases solve for
  the noise-free vectors: ``(s2 x1 - s1 x2) / (s2 - s1)``."""
  if not epsilon > 0:   # also refuses nan
    raise ValueError(f"epsilon must be > 0, got {epsilon}")
  return zlib.crc32(struct.pack("<d", float(epsilon))) & 0x7FFFFFFF


def _check_delta_sens(delta: float, sensitivity: float) -> None:
  if not 0.0 < delta < 1.0:
    raise ValueError(f"delta must be in (0, 1), got {delta}")
  if not sensitivity > 0.0:
    raise ValueError(f"sensitivity must be > 0, got {sensitivity}")


def laplace_scale(epsilon: float, rating_scale: tuple[float, float]) -> float:
  """Laplace scale of a per-rating epsilon-DP rating sum: sensitivity (hi - lo) / eps."""
  lo, hi = rating_scale
  return (hi - lo) / epsilon
