r"""Probe: where a script's XLA compiles go, by call site.

  PFCDR_XLA_CACHE=0 python experiments/compile_probe.py --out=compiles.txt \
      experiments/pfcdr.py --no_cache --workdir=/tmp/probe

Runs the script (everything after ``--out``) in this process with JAX's
``compile_or_get_cached`` wrapped, and writes, per call site (the innermost three
frames of this repository), the seconds spent compiling or loading from the persistent
cache and the count; the first line is the total. ``PFCDR_XLA_CACHE=0`` gives the cold
figures, the cache on (warm) the seconds a run still spends. It relies on a private JAX
function (``jax._src.compiler.compile_or_get_cached``), so it is a probe for
BUILD_NOTES' compile figures, not a benchmark: it may need mending on a new JAX.
"""
from __future__ import annotations

import atexit
import collections
import os
import runpy
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
OURS = tuple(ROOT + d + os.sep for d in ("pfcdr_jax", "experiments", "benchmarks"))


def main() -> None:
  args = sys.argv[1:]
  if not args or not args[0].startswith("--out=") or len(args) < 2:
    sys.exit("error: usage: compile_probe.py --out=FILE SCRIPT [ARGS...]")
  out, script = args[0][len("--out="):], args[1]
  if not os.path.isfile(script):
    sys.exit(f"error: {script}: no such script")
  from jax._src import compiler  # pylint: disable=g-import-not-at-top
  from jax._src.interpreters import pxla  # pylint: disable=g-import-not-at-top
  stats = collections.defaultdict(lambda: [0.0, 0])
  original = compiler.compile_or_get_cached

  def timed(*a, **k):
    t0 = time.perf_counter()
    try:
      return original(*a, **k)
    finally:
      ours = [f for f in traceback.extract_stack() if f.filename.startswith(OURS)
              and not f.filename.endswith("compile_probe.py")]
      site = " <- ".join(f"{f.filename[len(ROOT):]}:{f.lineno}:{f.name}"
                         for f in reversed(ours[-3:]))
      stats[site][0] += time.perf_counter() - t0
      stats[site][1] += 1

  compiler.compile_or_get_cached = timed
  pxla.compiler.compile_or_get_cached = timed

  def report():
    total = sum(v[0] for v in stats.values())
    with open(out, "w") as f:
      f.write(f"total {total:.2f} s, {sum(v[1] for v in stats.values())} compiles\n")
      for site, (secs, n) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        f.write(f"{secs:7.2f} {n:4d} {site}\n")

  atexit.register(report)
  sys.argv = args[1:]
  sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
  runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
  main()
