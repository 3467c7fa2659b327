"""What the stand-alone bench scripts (``experiments/bench_*.py``) share.

Checks of their flags (each raises ``ValueError`` with the one line the script prints
after ``error:``), ids drawn by log-normal popularity (the synthetic sizes' row-access
pattern), timing of several calls interleaved so that each sees the same machine, the
growth exponent between two sizes, the summary of repeated main jobs, and JSON written
whole (a temporary file renamed).
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from pfcdr_jax.data import synthetic


def parse_scales(values: Sequence[str], flag: str = "--scales",
                 at_least: int = 1) -> list[float]:
  """The floats of a scales flag: each > 0, at least ``at_least`` distinct ones."""
  try:
    scales = [float(s) for s in values]
  except ValueError:
    raise ValueError(f"{flag} must be numbers, got {','.join(values)}") from None
  if any(not s > 0 for s in scales):
    raise ValueError(f"{flag} must be > 0, got {','.join(values)}")
  if len(set(scales)) < at_least:
    raise ValueError(f"{flag} needs at least {at_least} different scales, "
                     f"got {','.join(values)}")
  return scales


def check_like(like: str, flag: str = "--like") -> None:
  """``like`` is a synthetic template (``synthetic.TEMPLATES``)."""
  if like not in synthetic.TEMPLATES:
    raise ValueError(f"{flag}={like}: expected one of {sorted(synthetic.TEMPLATES)}")


def check_out(path: str | None, flag: str = "--out") -> None:
  """The directory of an output path exists (None: nothing is written)."""
  if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
    raise ValueError(f"{flag}={path}: its directory does not exist")


def popular_ids(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
  """``n`` ids in ``[0, k)`` drawn with log-normal popularity (sigma 1), int32."""
  w = rng.lognormal(0.0, 1.0, k)
  return rng.choice(k, size=n, p=w / w.sum()).astype(np.int32)


def growth_exponent(seconds_lo: float, seconds_hi: float, size_lo: float,
                    size_hi: float) -> float:
  """``b`` of ``seconds ~ size^b`` through two points."""
  return math.log(seconds_hi / seconds_lo) / math.log(size_hi / size_lo)


def interleaved_times(calls: Mapping[str, Callable[[], Any]], reps: int) -> dict[str, list]:
  """Seconds of each call, ``reps`` rounds of one call each in turn (a, b, a, b, ...),
  so that a machine that slows down or speeds up does so for all of them."""
  times: dict[str, list] = {name: [] for name in calls}
  for _ in range(reps):
    for name, fn in calls.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  return times


def spread(seconds: Sequence[float]) -> dict[str, float]:
  """Median, minimum and maximum of repeated timings (seconds, 6 decimals)."""
  s = np.asarray(seconds, float)
  return {"median_s": round(float(np.median(s)), 6), "min_s": round(float(s.min()), 6),
          "max_s": round(float(s.max()), 6)}


def job_summary(rows: Sequence[Mapping[str, Any]]) -> dict:
  """Runs and medians of repeated main jobs of one setting (``pipeline.run_job`` rows):
  wall seconds and their spread, peak memory, median stage seconds, PFCDR's MAEs."""
  return {"wall": spread([r["wall_s"] for r in rows]),
          "wall_s": [r["wall_s"] for r in rows],
          "peak_rss_gb": [r["peak_rss_gb"] for r in rows],
          "stages_median_s": {k: round(float(np.median([r["stages"][k] for r in rows])), 3)
                              for k in rows[0]["stages"]},
          "pfcdr_mae": sorted({r["pfcdr_mae"] for r in rows}),
          "command": rows[0]["command"]}


def write_json(path: str, obj: Any, indent: int = 1) -> None:
  """``obj`` as JSON at ``path``, written to a temporary file first: a killed bench
  leaves the old file or none, never half of one."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=indent)
  os.replace(tmp, path)
