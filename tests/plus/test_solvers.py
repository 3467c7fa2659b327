"""PFCDR+'s bilinear solvers: the IRLS refit reaches the least-absolute-deviation fit."""
import numpy as np
import pytest

from pfcdr_jax.plus.solvers import irls_l1
from pfcdr_jax.plus.solvers import normal_equations
from pfcdr_jax.plus.solvers import ridge_solve


def test_irls_l1_matches_a_linear_programme():
  """The IRLS fit reaches the least-absolute-deviation optimum (scipy's LP) and beats
  its own starting point, the ridge fit, on the absolute error."""
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(4)
  Z, X = rng.normal(size=(40, 2)), np.c_[rng.normal(size=(9, 1)), np.ones(9)]
  rows, items = rng.integers(0, 40, 300), rng.integers(0, 9, 300)
  y = rng.standard_t(1.5, 300)
  A, c = normal_equations(Z, X, rows, items, y)
  ridge = ridge_solve(A, c, 1e-9)
  theta = irls_l1(Z, X, rows, items, y, 1e-9, ridge, steps=60, delta=1e-6)
  D = (Z[rows][:, :, None] * X[items][:, None, :]).reshape(300, -1)
  p = D.shape[1]      # min 1'(e+ + e-) s.t. D theta + e+ - e- = y
  lp = optimize.linprog(np.r_[np.zeros(p), np.ones(600)],
                        A_eq=np.c_[D, np.eye(300), -np.eye(300)], b_eq=y,
                        bounds=[(None, None)] * p + [(0, None)] * 600)
  l1 = lambda t: np.abs(y - D @ t).sum()
  assert l1(theta) == pytest.approx(lp.fun, rel=1e-3)
  assert l1(theta) < 0.97 * l1(ridge)
