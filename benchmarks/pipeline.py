"""The real main job, timed: ``bench.json["pipeline_full"]`` and ``["scaling"]``.

``benchmarks.run_pipeline`` re-implements the stages with the bench's own short
pretraining; these measurements instead run the command a user runs,
``experiments/pfcdr.py --task=synthetic --like=<like> --scale=<s> --no_cache`` (the
full protocol: the lr grid with held-out selection, every stage, the main job's
baselines), each in its own process, and read its stage seconds from the run's
``results.json["timings_s"]``. Its peak resident memory is the child's own ``VmHWM``
(``/proc/<pid>/status``, polled every 50 ms while it runs): ``os.wait4``'s
``ru_maxrss`` is not, because Linux folds the parent's high-water mark into the child's
at ``exec`` (a scale-0.1 job reported the bench process's 9.5 GB). Where ``/proc`` is
missing it falls back to ``ru_maxrss`` and says so (``peak_rss_source``).

Growth. For each stage the exponent ``b`` of ``seconds ~ a * size^b`` is the
least-squares slope of log seconds on log size over the scales run, with size =
ratings of both domains (the data, pretraining and baseline stages touch every
rating; inversion and top-k touch users x items and cold users x target users, which
grow with the square of the scale: their exponents are also reported against that
product). A stage that grows faster than its documented work is visible there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, Sequence

import numpy as np

# What each stage must touch (BUILD_NOTES §9, performance): the size its exponent
# is taken against.
STAGE_WORK = {
    "data": "ratings", "pretrain_source": "ratings", "pretrain_target": "ratings",
    "inversion_source": "users_x_items", "inversion_target": "users_x_items",
    "pfcdr": "users_x_users",
}


def main_job_command(like: str, scale: float, workdir: str,
                     extra: Sequence[str] = ()) -> list[str]:
  """The argv of the synthetic main job at ``scale`` of the ``like`` Table 2 counts."""
  return job_command(["--task=synthetic", f"--like={like}", f"--scale={scale}", *extra],
                     workdir)


def job_command(args: Sequence[str], workdir: str) -> list[str]:
  """The argv of ``experiments/pfcdr.py <args> --no_cache --workdir=<workdir>``."""
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "experiments", "pfcdr.py")
  return [sys.executable, script, *args, "--no_cache", f"--workdir={workdir}"]


def vm_hwm_gb(pid: int) -> float | None:
  """``VmHWM`` (peak resident memory of the process's own address space) of ``pid``, GB;
  None where ``/proc`` cannot tell (not Linux, or the process has exited)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024 / 1e9     # reported in kB
  except (OSError, ValueError, IndexError):
    return None
  return None


class _PeakPoller:
  """Polls a child's ``VmHWM`` from a thread until :meth:`stop` (never reaps it)."""

  def __init__(self, pid: int, every_s: float = 0.05):
    self.peak: float | None = None
    self._done = threading.Event()

    def loop():
      while not self._done.is_set():
        v = vm_hwm_gb(pid)
        if v is not None:
          self.peak = v if self.peak is None else max(self.peak, v)
        self._done.wait(every_s)

    self._thread = threading.Thread(target=loop, daemon=True)
    self._thread.start()

  def stop(self) -> float | None:
    self._done.set()
    self._thread.join()
    return self.peak


def run_main_job(like: str, scale: float, extra: Sequence[str] = (),
                 xla_cache: bool = False, env: Mapping[str, str | None] | None = None
                 ) -> dict:
  """One synthetic main job in a child process: wall seconds, its stages, peak memory,
  sizes (:func:`run_job`; ``xla_cache=False``, the default, times it cold)."""
  return dict(run_job(["--task=synthetic", f"--like={like}", f"--scale={scale}", *extra],
                      xla_cache=None if xla_cache else "0", env=env), scale=scale)


def run_job(args: Sequence[str], xla_cache: str | None = "0",
            env: Mapping[str, str | None] | None = None) -> dict:
  """``experiments/pfcdr.py <args>`` in a child process, timed.

  ``xla_cache``: the child's ``$PFCDR_XLA_CACHE`` ("0": JAX's persistent compilation
  cache off, so every compile counts; a directory: that cache, empty for a fresh
  machine's first run or filled by an earlier run; None: the environment's).
  ``env``: changes to the child's environment (a value of None removes the variable);
  ``xla_cache``, when not None, sets ``PFCDR_XLA_CACHE`` over it.

  Raises:
    RuntimeError: the job failed (its last output lines in the message).
  """
  with tempfile.TemporaryDirectory(prefix="pfcdr_bench_") as workdir:
    argv = job_command(args, os.path.join(workdir, "run"))
    t0 = time.perf_counter()
    child_env = {**os.environ, **(env or {})}
    child_env = {k: v for k, v in child_env.items() if v is not None}
    if xla_cache is not None:
      child_env["PFCDR_XLA_CACHE"] = xla_cache
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=child_env)
    poller = _PeakPoller(proc.pid)
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    hwm = poller.stop()
    if os.waitstatus_to_exitcode(status) != 0:
      tail = " | ".join(out.strip().splitlines()[-3:])
      raise RuntimeError(f"main job {' '.join(args)} failed: {tail}")
    with open(os.path.join(workdir, "run", "results.json")) as f:
      res = json.load(f)
  ds = res["dataset"]
  ratings = ds["source"]["ratings"] + ds["target"]["ratings"]
  users = ds["source"]["users"] + ds["target"]["users"]
  return {
      "command": " ".join(argv[1:]).replace(workdir, "<tmp>"),
      "xla_cache": xla_cache != "0",
      "wall_s": round(wall, 2), "total_s": res["timings_s"]["total"],
      "stages": {k: v for k, v in res["timings_s"].items() if k != "total"},
      "peak_rss_gb": round(hwm if hwm is not None else usage.ru_maxrss * 1024 / 1e9, 3),
      "peak_rss_source": "VmHWM" if hwm is not None else "ru_maxrss",
      "ratings": ratings, "users": users,
      "items": ds["source"]["items"] + ds["target"]["items"],
      "cold_users": ds["test_users"] + ds.get("val_users", 0),
      "pfcdr_mae": res["methods"]["PFCDR"]["mae"],
      "selected_pretrain": res["selected"].get("pretrain", {}),
  }


def growth_exponents(rows: list[dict]) -> dict:
  """Per stage, the log-log slope of seconds on its work size (see the docstring)."""
  if len(rows) < 2:
    return {}
  sizes = {
      "ratings": np.array([r["ratings"] for r in rows], float),
      "users_x_items": np.array([r["users"] * r["items"] for r in rows], float),
      "users_x_users": np.array([r["cold_users"] * r["users"] for r in rows], float),
  }
  out = {}
  for stage in rows[0]["stages"]:
    secs = np.array([max(r["stages"].get(stage, 0.0), 1e-3) for r in rows], float)
    work = STAGE_WORK.get(stage, "ratings")
    slope_ratings = float(np.polyfit(np.log(sizes["ratings"]), np.log(secs), 1)[0])
    slope_work = float(np.polyfit(np.log(sizes[work]), np.log(secs), 1)[0])
    out[stage] = {"vs_ratings": round(slope_ratings, 3), "work": work,
                  "vs_work": round(slope_work, 3)}
  return out


def median_run(rows: list[dict]) -> dict:
  """One row standing for repeated runs of one job: the median wall, total and stage
  seconds, the highest peak, and every run's wall seconds (``wall_s_runs``)."""
  out = dict(rows[0])
  med = lambda xs: round(float(np.median(xs)), 3)
  out["wall_s"] = med([r["wall_s"] for r in rows])
  out["total_s"] = med([r["total_s"] for r in rows])
  out["stages"] = {k: med([r["stages"][k] for r in rows]) for k in rows[0]["stages"]}
  out["peak_rss_gb"] = max(r["peak_rss_gb"] for r in rows)
  out["repeats"] = len(rows)
  out["wall_s_runs"] = [r["wall_s"] for r in rows]
  return out


def parse_also(items: Sequence[str], flag: str = "--also") -> list[tuple[str, float]]:
  """``["book2movie:1", ...]`` as ``[("book2movie", 1.0), ...]``; ValueError naming
  ``flag`` for a malformed item, a scale <= 0 or an unknown template."""
  from pfcdr_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  out = []
  for item in items:
    like, _, scale = item.partition(":")
    try:
      value = float(scale)
    except ValueError:
      raise ValueError(f"{flag}={item}: expected <like>:<scale>") from None
    if not value > 0:
      raise ValueError(f"{flag}={item}: the scale must be > 0")
    if like not in synthetic.TEMPLATES:
      raise ValueError(f"{flag}={item}: unknown template {like!r}; expected one of "
                       f"{sorted(synthetic.TEMPLATES)}")
    out.append((like, value))
  return out


def scaling(like: str, scales: Sequence[float], extra: Sequence[str] = (),
            log: Callable[[str], None] | None = None, repeats: int = 1,
            also: Sequence[tuple[str, float]] = ()) -> dict:
  """``bench.json["scaling"]``: the main job at each scale, and the growth exponents.

  With ``repeats`` > 1 every scale runs that many times, the rounds interleaved over
  the scales (0.3, 1, 3, 0.3, 1, 3, ...), and each row holds the medians
  (:func:`median_run`): a stage of a tenth of a second moves by tens of percent from
  one run to the next, and so would its exponent from a single run.
  ``pairwise_exponents``: the exponents between each two consecutive scales (between
  1 and 3 start-up no longer dominates). ``also``: single runs of other templates
  (``(like, scale)``, e.g. the paper's largest task), under the key ``also``.
  """
  runs: dict[float, list[dict]] = {s: [] for s in scales}
  for _ in range(repeats):
    for s in scales:
      runs[s].append(run_main_job(like, s, extra))
      if log is not None:
        log(f"scaling: scale {s}: {runs[s][-1]['total_s']:.1f}s, "
            f"peak {runs[s][-1]['peak_rss_gb']} GB")
  rows = [median_run(runs[s]) if repeats > 1 else runs[s][0] for s in scales]
  out = {"like": like, "repeats": repeats, "runs": rows,
         "growth_exponents": growth_exponents(rows),
         "pairwise_exponents": {f"{a['scale']:g}->{b['scale']:g}": growth_exponents([a, b])
                                for a, b in zip(rows, rows[1:])}}
  if also:
    out["also"] = []
    for other, s in also:
      out["also"].append(dict(run_main_job(other, s, extra), like=other))
      if log is not None:
        log(f"scaling: {other} scale {s}: {out['also'][-1]['total_s']:.1f}s, "
            f"peak {out['also'][-1]['peak_rss_gb']} GB")
  return out


def compare_cell_dirs(dir_a: str, dir_b: str, method: str = "PFCDR") -> dict:
  """Paired over seeds: two ``table1.py`` workdirs run with different pretraining settings.

  Reads ``<dir>/cells/<cell>/results.json`` of the cells both hold and reports, per
  quantity, each arm's mean, the mean difference b - a and a paired t-test over the
  cells (``scipy.stats.ttest_rel``): the method's test MAE and RMSE, each domain's
  selected held-out MSE and epoch, and the pretraining seconds.
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top

  def load(d):
    cells = os.path.join(d, "cells")
    if not os.path.isdir(cells):
      raise ValueError(f"{d}: no cells/ directory (expected a table1.py --workdir)")
    out = {}
    for name in sorted(os.listdir(cells)):
      path = os.path.join(cells, name, "results.json")
      if os.path.exists(path):
        with open(path) as f:
          out[name] = json.load(f)
    return out

  a, b = load(dir_a), load(dir_b)
  common = sorted(set(a) & set(b))
  if len(common) < 2:
    raise ValueError(f"need >= 2 cells in both {dir_a} and {dir_b}, found {len(common)}")
  getters = {
      f"{method}_mae": lambda r: r["methods"][method]["mae"],
      f"{method}_rmse": lambda r: r["methods"][method]["rmse"],
      **{f"{d}_{q}": (lambda r, d=d, q=q: r["selected"]["pretrain"][f"pretrain_{d}"][q])
         for d in ("source", "target") for q in ("heldout_mse", "epoch")},
      "pretrain_s": lambda r: r["timings_s"]["pretrain_source"] + r["timings_s"]["pretrain_target"],
  }
  rows = {}
  for key, get in getters.items():
    xa = np.array([get(a[c]) for c in common], float)
    xb = np.array([get(b[c]) for c in common], float)
    p = float(stats.ttest_rel(xb, xa).pvalue) if np.any(xb != xa) else 1.0
    rows[key] = {"a_mean": round(float(xa.mean()), 4), "b_mean": round(float(xb.mean()), 4),
                 "diff_mean": round(float((xb - xa).mean()), 4),
                 "diff_std": round(float((xb - xa).std(ddof=1)), 4), "t_test_p": round(p, 4)}
  return {"a": dir_a, "b": dir_b, "cells": common, "n": len(common), "rows": rows}
