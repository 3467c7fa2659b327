"""File locks: concurrent runs on one workdir or cache entry are serialized."""

import subprocess
import sys
import threading
import time

import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.infra import locks

# The subprocesses load locks.py alone (it imports nothing of the package), not the
# package with JAX: the test then takes a fraction of a second per process.
_LOAD_LOCKS = ("import importlib.util as u\n"
               f"s = u.spec_from_file_location('locks', {locks.__file__!r})\n"
               "locks = u.module_from_spec(s); s.loader.exec_module(locks)\n")


def test_second_holder_waits_for_the_first(tmp_path):
  path, order = tmp_path / ".lock", []
  inside = threading.Event()

  def first():
    with locks.file_lock(path):
      inside.set()
      order.append("first in")
      time.sleep(0.5)
      order.append("first out")

  t = threading.Thread(target=first)
  t.start()
  inside.wait()
  with locks.file_lock(path, poll_s=0.02):
    order.append("second in")
  t.join()
  assert order == ["first in", "first out", "second in"]


def test_waiting_message_names_the_holding_process(tmp_path):
  path = tmp_path / ".lock"
  holder = subprocess.Popen(   # holds the lock until its stdin closes
      [sys.executable, "-c", "import sys\n" + _LOAD_LOCKS +
       f"with locks.file_lock({str(path)!r}):\n print('held', flush=True); sys.stdin.read()"],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == "held"
  waiter = subprocess.Popen(
      [sys.executable, "-c", "import logging\n" + _LOAD_LOCKS +
       "logging.basicConfig(level=logging.WARNING)\n"
       f"with locks.file_lock({str(path)!r}, what='workdir w', poll_s=0.02): print('got it')"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  said = waiter.stderr.readline()     # blocks until the waiter reports whom it waits for
  holder.stdin.close()
  holder.wait(timeout=60)
  out, _ = waiter.communicate(timeout=60)
  assert f"waiting for workdir w: held by pid {holder.pid}" in said
  assert out.strip() == "got it"


def test_two_runs_needing_one_cache_entry_compute_it_once(tmp_path):
  cache, calls = cache_lib.StageCache(tmp_path), []

  def compute():
    calls.append(threading.get_ident())
    time.sleep(0.3)
    return {"x": np.ones(3, np.float32)}, {"n": 3}

  results = []
  threads = [threading.Thread(target=lambda: results.append(
      cache_lib.cached_stage(cache, "stage", "k", compute)[0]["x"])) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(calls) == 1, "the second run must wait and then be served from the cache"
  assert len(results) == 2 and all(np.array_equal(r, np.ones(3)) for r in results)
