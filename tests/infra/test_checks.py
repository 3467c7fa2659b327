"""check_index: accepts in-range 1-D indices, raises the documented ValueError otherwise."""
import numpy as np
import pytest

from pfcdr_jax.infra.checks import check_index


def test_accepts_valid_and_empty_indices():
  check_index(np.array([0, 4, 2]), 5, "user")
  check_index(np.zeros((0,), np.int32), 0, "user")


@pytest.mark.parametrize("idx,msg", [
    (np.array([0, 5]), r"user: indices must lie in \[0, 5\), got \[0, 5\]"),
    (np.array([-1, 2]), r"user: indices must lie in \[0, 5\), got \[-1, 2\]"),
    (np.zeros((2, 2), int), r"user: expected a 1-D index array, got shape \(2, 2\)"),
])
def test_bad_indices_raise(idx, msg):
  with pytest.raises(ValueError, match=msg):
    check_index(idx, 5, "user")
