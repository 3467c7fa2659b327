"""Test-wide JAX settings: strict rank promotion, CPU, deterministic.

XLA compilations are kept in a persistent cache shared by the pytest-xdist workers
and the scripts the tests start as subprocesses (they inherit these variables): many
tests compile the same functions at the same shapes. The cache holds compiled code
only (keyed by the program), so tracing, and the tests that count traces, are
unaffected. On 2 cores it took the suite from 272 s to 219 s, starting cold.
"""
import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "pfcdr_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
