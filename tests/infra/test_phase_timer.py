"""Tests of phase_timer: brackets record only inside `recording`, in call order."""

import time

import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.infra import phase_timer
from pfcdr_jax.studies import cost


def test_brackets_record_only_inside_recording():
  with phase_timer.predicting(3):
    pass                               # no recorder: nothing to record, no error
  with phase_timer.recording() as phases:
    with phase_timer.predicting(5):
      time.sleep(0.02)
    with phase_timer.predicting(7):
      pass
  assert [p.n_pairs for p in phases] == [5, 7]
  assert phases[0].seconds >= 0.02 > phases[1].seconds
  with phase_timer.predicting(9):
    pass
  assert len(phases) == 2              # the recorder is gone after its block


def test_a_failed_step_is_not_recorded():
  with phase_timer.recording() as phases:
    with pytest.raises(ValueError):
      with phase_timer.predicting(4):
        raise ValueError("boom")
  assert phases == []


def test_chosen_phase_is_the_step_of_the_kept_grid_point():
  steps = [phase_timer.Phase(float(s), 10) for s in (1, 2, 3)]
  kept = lambda i, n=3: {"grid": [{"val_mae": 0.5}] * n, "grid_index": i}  # noqa: E731
  assert cost.chosen_phase(steps, kept(1)) is steps[1]
  assert cost.chosen_phase(steps, kept(0)) is steps[0]
  assert cost.chosen_phase(steps[:2], kept(0)) is None               # steps != grid
  assert cost.chosen_phase(steps, {"grid": [{}] * 3}) is None         # no index recorded
  assert cost.chosen_phase([], {}) is None


def test_a_bracket_accepts_any_pytree_to_wait_for():
  state = {"params": jnp.ones((2, 3)) * 2, "table": np.zeros(4), "lr": 0.01, "n": None}
  with phase_timer.recording() as phases:
    with phase_timer.predicting(6, state, jnp.arange(3)):
      out = np.asarray(state["params"]).sum()
  assert out == 12 and [p.n_pairs for p in phases] == [6]
