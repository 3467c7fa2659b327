"""What a person sees while a run works: one progress bar per long stage, quiet logs.

Long loops (pretraining epochs, inversion chunks, table cells, CopyAttack episodes)
report through :func:`bar`, a ``tqdm`` bar with rate and ETA written to stderr (or
nothing when ``set_enabled(False)``: tests and non-interactive sweeps). Per-epoch
detail goes to ``metrics.jsonl`` and to DEBUG log lines, shown with
``--verbosity=1`` (absl's flag). :func:`configure_output` is what every experiment
script calls first: it sets the log level, formats lines without thread ids, and
silences JAX's accelerator probe ("Unable to initialize backend 'tpu'") on machines
that have no accelerator.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

import tqdm

_STATE = {"enabled": True}


def set_enabled(enabled: bool) -> None:
  """Turns every progress bar of this process on or off."""
  _STATE["enabled"] = bool(enabled)


def enabled() -> bool:
  return _STATE["enabled"] and sys.stderr is not None


def interactive() -> bool:
  """Bars are on and stderr is a terminal (someone is watching the run)."""
  return enabled() and bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "it") -> Iterator[tqdm.tqdm]:
  """A ``tqdm`` bar over ``total`` steps (``update(n)``, ``set_postfix_str``); silent,
  with the same methods, when bars are off. ``bar.enabled`` says which."""
  on = enabled()
  b = tqdm.tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                file=sys.stderr, mininterval=0.5, disable=not on)
  b.enabled = on
  try:
    yield b
  finally:
    b.close()


class _Formatter(logging.Formatter):

  def format(self, record: logging.LogRecord) -> str:
    text = super().format(record)
    return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_output(verbosity: int = 0, *, progress_bars: bool | None = None) -> None:
  """Log level and format of an experiment script; call it first in ``main``.

  Args:
    verbosity: absl's ``--verbosity``: 0 = INFO lines of the stages (no per-epoch
      lines), >= 1 = DEBUG (per-epoch detail), < 0 = warnings only.
    progress_bars: show tqdm bars; None = only when stderr is a terminal.
  """
  level = logging.DEBUG if verbosity >= 1 else (logging.INFO if verbosity == 0
                                                else logging.WARNING)
  root = logging.getLogger()
  root.setLevel(logging.WARNING)
  for h in list(root.handlers):
    if type(h).__name__ in ("ABSLHandler", "StreamHandler", "PythonHandler"):
      root.removeHandler(h)
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(_Formatter("%(message)s"))
  root.addHandler(handler)
  # Our own modules at the requested level; everyone else (JAX's backend probe
  # included) at WARNING, so a CPU machine does not print the TPU-probe line.
  logging.getLogger("pfcdr_jax").setLevel(level)
  logging.getLogger("__main__").setLevel(level)
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
  if progress_bars is None:
    progress_bars = bool(getattr(sys.stderr, "isatty", lambda: False)())
  set_enabled(progress_bars)
