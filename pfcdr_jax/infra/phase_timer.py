"""Wall time of the prediction step inside a method's one-call ``fit_predict``.

The registry's methods (``baselines/registry.py``) train, choose their settings on
validation and predict in one call, so the testing time of Table 3 cannot be read
from outside the call. Each method brackets the step that turns its trained state
into predictions of the requested (user, item) pairs::

  with phase_timer.predicting(n_pairs, params):   # the trained state it reads
    return np.asarray(...)          # device work finished inside the bracket

Outside :func:`recording` a bracket records nothing and costs one context-variable
read. Inside it, every bracket appends a :class:`Phase` to the recorder's list, in
call order; ``studies/cost.py`` keeps the one of the grid point that validation chose.
JAX dispatch is asynchronous, at both ends: the bracket first waits for the arrays it
is given (the trained state, whose last training steps may still be running, would
otherwise be charged to testing), and the bracketed code must return NumPy arrays (or
block on its results), or the time would stop before the work is done.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Any, Iterator, NamedTuple

import jax


class Phase(NamedTuple):
  """One timed prediction step: wall seconds and the number of pairs predicted."""
  seconds: float
  n_pairs: int


_RECORDER: contextvars.ContextVar[list[Phase] | None] = contextvars.ContextVar(
    "pfcdr_jax_phase_recorder", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[Phase]]:
  """Collects every :func:`predicting` bracket entered inside the ``with`` block."""
  phases: list[Phase] = []
  token = _RECORDER.set(phases)
  try:
    yield phases
  finally:
    _RECORDER.reset(token)


@contextlib.contextmanager
def predicting(n_pairs: int, *ready: Any) -> Iterator[None]:
  """Times the enclosed prediction of `n_pairs` pairs when a recorder is active.

  Args:
    n_pairs: pairs the enclosed code predicts.
    *ready: pytrees the prediction reads (trained parameters, embeddings); the clock
      starts once their device work is done. Ignored without a recorder.
  """
  phases = _RECORDER.get()
  if phases is None:
    yield
    return
  jax.block_until_ready(ready)
  t0 = time.perf_counter()
  yield
  phases.append(Phase(time.perf_counter() - t0, int(n_pairs)))
