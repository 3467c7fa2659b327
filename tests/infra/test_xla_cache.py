"""The experiment scripts' persistent compilation cache (pfcdr_jax.infra.xla_cache)."""
import jax
import pytest

from pfcdr_jax.infra import xla_cache


@pytest.fixture
def restore_jax_cache_dir():
  before = jax.config.jax_compilation_cache_dir
  yield
  jax.config.update("jax_compilation_cache_dir", before)


def test_env_names_the_directory_and_zero_turns_it_off(tmp_path, monkeypatch,
                                                       restore_jax_cache_dir):
  monkeypatch.setenv("PFCDR_XLA_CACHE", str(tmp_path / "xla"))
  assert xla_cache.enable() == tmp_path / "xla"
  assert (tmp_path / "xla").is_dir()
  assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
  for off in ("0", "off", "False"):
    monkeypatch.setenv("PFCDR_XLA_CACHE", off)
    assert xla_cache.cache_dir() is None and xla_cache.enable() is None


def test_default_lives_under_the_data_dir(tmp_path, monkeypatch):
  monkeypatch.delenv("PFCDR_XLA_CACHE", raising=False)
  monkeypatch.setenv("PFCDR_DATA_DIR", str(tmp_path))
  assert xla_cache.cache_dir() == tmp_path / "xla"


def test_unwritable_location_is_not_an_error(tmp_path, monkeypatch, restore_jax_cache_dir):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  monkeypatch.setenv("PFCDR_XLA_CACHE", str(blocker / "xla"))
  assert xla_cache.enable() is None


def test_every_program_is_stored():
  assert xla_cache.MIN_COMPILE_S == 0.0


def test_prune_removes_the_oldest_entries_down_to_the_trim_size(tmp_path):
  import os
  for i in range(10):   # ten 100-byte entries, entry 0 the oldest
    f = tmp_path / f"entry{i}-cache"
    f.write_bytes(b"x" * 100)
    os.utime(f, (1000 + i, 1000 + i))
  assert xla_cache.prune(tmp_path, max_bytes=1000) == 0       # at the limit: kept
  assert xla_cache.prune(tmp_path, max_bytes=900, trim_to=0.5) == 6
  assert sorted(p.name for p in tmp_path.iterdir()) == [f"entry{i}-cache" for i in range(6, 10)]


def test_enable_prunes_an_oversized_directory(tmp_path, monkeypatch, restore_jax_cache_dir):
  d = tmp_path / "xla"
  d.mkdir()
  (d / "old-cache").write_bytes(b"x" * 64)
  monkeypatch.setattr(xla_cache, "MAX_BYTES", 10)
  monkeypatch.setenv("PFCDR_XLA_CACHE", str(d))
  assert xla_cache.enable() == d
  assert not (d / "old-cache").exists()
