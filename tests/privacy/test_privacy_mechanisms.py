"""privacy.mechanisms: Gaussian calibration (classic, analytic), sensitivity, clipping, noise."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.privacy import mechanisms


def test_classic_sigma_formula_and_validity_range():
  got = mechanisms.classic_gaussian_sigma(0.5, 1e-5, 2.0)
  assert got == pytest.approx(2.0 * math.sqrt(2.0 * math.log(1.25e5)) / 0.5, rel=1e-12)
  for eps in (0.0, 1.0, 3.0):
    with pytest.raises(ValueError, match="analytic"):
      mechanisms.classic_gaussian_sigma(eps, 1e-5, 1.0)
  with pytest.raises(ValueError, match="delta"):
    mechanisms.classic_gaussian_sigma(0.5, 1.5, 1.0)
  with pytest.raises(ValueError, match="mechanism"):
    mechanisms.gaussian_sigma(0.5, 1e-5, 1.0, mechanism="laplace")


def test_analytic_sigma_is_exact_tighter_and_monotone():
  sig = mechanisms.analytic_gaussian_sigma(0.5, 1e-5, 1.0)
  assert mechanisms.analytic_gaussian_delta(sig, 0.5, 1.0) == pytest.approx(1e-5, rel=1e-6)
  assert sig < mechanisms.classic_gaussian_sigma(0.5, 1e-5, 1.0)
  sigmas = [mechanisms.analytic_gaussian_sigma(e, 1e-5, 1.0) for e in (0.1, 1.0, 10.0, 100.0)]
  assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
  # Scales linearly with the sensitivity.
  assert mechanisms.analytic_gaussian_sigma(2.0, 1e-5, 3.0) == pytest.approx(
      3.0 * mechanisms.analytic_gaussian_sigma(2.0, 1e-5, 1.0), rel=1e-6)


def test_sensitivity_conventions():
  assert mechanisms.sensitivity_of(1.5, "add_remove") == 1.5
  assert mechanisms.sensitivity_of(1.5, "replace") == 3.0
  with pytest.raises(ValueError):
    mechanisms.sensitivity_of(1.5, "swap")


def test_clip_rows():
  x = jnp.asarray([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
  got = np.asarray(mechanisms.clip_rows(x, 1.0))
  np.testing.assert_allclose(got, [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]], rtol=1e-6)


def test_empirical_noise_std_matches_formula():
  eps, delta, c = 0.5, 1e-5, 2.0
  sigma = mechanisms.gaussian_sigma(eps, delta, mechanisms.sensitivity_of(c, "add_remove"))
  x = jnp.zeros((20000, 5))
  noisy = np.asarray(mechanisms.privatize(x, jax.random.PRNGKey(0), sigma, c))
  assert np.std(noisy) == pytest.approx(sigma, rel=0.02)
  assert abs(np.mean(noisy)) < 0.05 * sigma
