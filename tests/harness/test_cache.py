"""The stage cache: a damaged or forged entry is moved aside and recomputed, never used."""

import logging
import os
import time

import numpy as np
import pytest

from pfcdr_jax.harness import cache as cache_lib


def _compute(value=1.0):
  calls = []

  def compute():
    calls.append(1)
    return {"x": np.full((3, 2), value, np.float32)}, {"n": 3}
  return compute, calls


def _shape_ok(arrays, meta):
  return arrays["x"].shape == (3, 2) and meta["n"] == 3


def _fill(tmp_path):
  cache = cache_lib.StageCache(tmp_path)
  compute, calls = _compute()
  cache_lib.cached_stage(cache, "stage", "k", compute, _shape_ok)
  assert calls == [1]
  return cache, cache.path("stage", "k")


def _truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])


def _flip_byte(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 3] ^= 0xFF
  path.write_bytes(bytes(data))


def _not_a_zip(path):
  path.write_bytes(b"\x1f\x8b\x08garbage")


def _forge(**arrays_meta):
  def forge(path):
    meta = arrays_meta.pop("meta", {"n": 3})
    cache_lib.StageCache(path.parent).save("stage", "k", arrays_meta, meta)
  return forge


@pytest.mark.parametrize("damage", [
    _truncate, _flip_byte, _not_a_zip,
    _forge(x=np.full((3, 2), np.nan, np.float32)),          # NaN contents
    _forge(x=np.ones((4, 2), np.float32)),                    # wrong shape
    _forge(y=np.ones((3, 2), np.float32)),                    # missing array (KeyError)
    _forge(x=np.ones((3, 2), np.float32), meta={"m": 1}),     # forged metadata
], ids=["truncated", "bit-flip", "not-a-zip", "nan", "shape", "missing-array", "meta"])
def test_damaged_entry_is_moved_aside_and_recomputed(tmp_path, caplog, damage):
  cache, path = _fill(tmp_path)
  damage(path)
  compute, calls = _compute(value=2.0)
  with caplog.at_level(logging.WARNING, logger="pfcdr_jax.harness.cache"):
    arrays, meta = cache_lib.cached_stage(cache, "stage", "k", compute, _shape_ok)
  assert calls == [1], "a damaged entry must be recomputed"
  np.testing.assert_array_equal(arrays["x"], np.full((3, 2), 2.0, np.float32))
  assert meta == {"n": 3}
  assert (tmp_path / (path.name + ".bad")).exists(), "the bad entry is kept aside"
  assert any("moved to" in r.getMessage() for r in caplog.records)
  # The recomputed entry is whole: the next run is served from it.
  compute3, calls3 = _compute(value=3.0)
  arrays, _ = cache_lib.cached_stage(cache, "stage", "k", compute3, _shape_ok)
  assert calls3 == [] and float(arrays["x"][0, 0]) == 2.0


def test_valid_entry_is_served(tmp_path):
  cache, _ = _fill(tmp_path)
  compute, calls = _compute(value=5.0)
  record = {}
  arrays, _ = cache_lib.cached_stage(cache, "stage", "k", compute, _shape_ok, record)
  assert calls == [] and record["cached"] is True
  assert float(arrays["x"][0, 0]) == 1.0


def test_stale_temporaries_are_swept_fresh_ones_kept(tmp_path):
  old = tmp_path / ".stage-k.npz.abc.tmp"
  new = tmp_path / ".stage-j.npz.def.tmp"
  old.write_bytes(b"half")
  new.write_bytes(b"half")
  hour_ago = time.time() - 7200
  os.utime(old, (hour_ago, hour_ago))
  cache_lib.StageCache(tmp_path)
  assert not old.exists() and new.exists()
