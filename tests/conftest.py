"""Test-wide JAX settings: strict rank promotion, CPU, deterministic.

XLA compilations are kept in a persistent cache shared by the pytest-xdist workers
and the scripts the tests start as subprocesses (they inherit these variables): many
tests compile the same functions at the same shapes. The cache holds compiled code
only (keyed by the program), so tracing, and the tests that count traces, are
unaffected. On 2 cores it took the suite from 272 s to 219 s, starting cold.
"""
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "pfcdr_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

# The experiment scripts' own modules (``cli``, ``configs``), importable as the scripts
# import them (they run with experiments/ first on the path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_untrained_run():
  """(data, scorer, params_s, params_t): a tiny synthetic split and two untrained MFs
  (d = 4), for tests of the method's plumbing against numpy references."""
  # pylint: disable=import-outside-toplevel
  from pfcdr_jax.data import splits
  from pfcdr_jax.data.synthetic import make_synthetic_cdr
  from pfcdr_jax.models import scorers
  src, tgt, _ = make_synthetic_cdr(0, scale=0.003)
  data = splits.make_cdr_split(src, tgt, beta=0.2, seed=0, val_fraction=0.2, name="tiny")
  scorer = scorers.get_scorer("mf")
  ks, kt = jax.random.split(jax.random.PRNGKey(3))
  params_s = scorer.init(ks, data.source.n_users, data.source.n_items, 4)
  params_t = scorer.init(kt, data.target_train.n_users, data.target_train.n_items, 4)
  return data, scorer, params_s, params_t



@pytest.fixture(scope="module")
def fast_compile():
  """The using module compiles with XLA's cheapest settings (restored after it):
  ``jax_disable_most_optimizations`` gives the same computation, less optimised code,
  and about halves compile time (the CopyAttack modules' main cost)."""
  old = jax.config.values["jax_disable_most_optimizations"]
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", old)
