"""glibc's heap reuses the data stage's large arrays inside the context when asked to
(``$PFCDR_HEAP_REUSE=1``), and only there; the trim after the stage hands freed memory
back."""
import ctypes

import numpy as np
import pytest

from pfcdr_jax.infra import heap

_MB = 1 << 20


class _MallInfo2(ctypes.Structure):
  _fields_ = [(name, ctypes.c_size_t) for name in (
      "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
      "fordblks", "keepcost")]


@pytest.fixture
def mapped_bytes():
  """Bytes glibc holds in separate mmaps (``mallinfo2().hblkhd``)."""
  libc = heap._glibc()
  if libc is None or not hasattr(libc, "mallinfo2"):
    pytest.skip("not glibc >= 2.33")
  libc.mallinfo2.restype = _MallInfo2
  return lambda: libc.mallinfo2().hblkhd


def _mapped_by(mapped_bytes, nbytes: int) -> int:
  """How much more glibc holds in mmaps while an array of ``nbytes`` lives.

  The heap's free top is trimmed first, so that no earlier test's freed block serves it.
  """
  heap.release_free_memory()
  before = mapped_bytes()
  a = np.ones(nbytes // 8)
  grown = mapped_bytes() - before
  del a
  return grown


def test_large_arrays_come_from_the_heap_inside_and_from_mmap_after(monkeypatch,
                                                                   mapped_bytes):
  monkeypatch.setenv(heap.ENV, "1")
  with heap.reuse_freed_memory():
    assert _mapped_by(mapped_bytes, 48 * _MB) == 0
  # After the stage: glibc's adaptive threshold of a process that freed 32 MB arrays.
  assert _mapped_by(mapped_bytes, 96 * _MB) >= 96 * _MB
  assert _mapped_by(mapped_bytes, 16 * _MB) == 0


@pytest.mark.parametrize("value", [None, "0", "yes"])
def test_off_unless_the_switch_is_1(monkeypatch, mapped_bytes, value):
  if value is None:
    monkeypatch.delenv(heap.ENV, raising=False)
  else:
    monkeypatch.setenv(heap.ENV, value)
  assert not heap.enabled()
  with heap.reuse_freed_memory():
    assert _mapped_by(mapped_bytes, 96 * _MB) >= 96 * _MB


def test_settings_restored_when_the_body_raises(monkeypatch, mapped_bytes):
  monkeypatch.setenv(heap.ENV, "1")
  with pytest.raises(RuntimeError):
    with heap.reuse_freed_memory():
      raise RuntimeError("boom")
  assert _mapped_by(mapped_bytes, 96 * _MB) >= 96 * _MB


def test_nothing_changes_without_glibc(monkeypatch):
  monkeypatch.setattr(heap, "_glibc", lambda: None)
  monkeypatch.setenv(heap.ENV, "1")
  assert not heap.enabled()
  with heap.reuse_freed_memory():
    assert np.ones(1 << 20).sum() == 1 << 20
  heap.release_free_memory()


def _resident_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * 4096


def test_release_hands_back_arrays_freed_after_the_stage(monkeypatch, mapped_bytes):
  monkeypatch.setenv(heap.ENV, "1")
  with heap.reuse_freed_memory():
    frame = np.ones(48 * _MB // 8)          # a frame the stage made, from the heap
    kept = np.ones(1024)                    # ... below the heap's top
  del frame                                 # dropped after the stage: the heap keeps it
  before = _resident_bytes()
  heap.release_free_memory()
  assert before - _resident_bytes() >= 40 * _MB
  del kept
