"""A corpus of bad inputs: each is one DataError naming the file (and line), none a traceback.

Every case goes through ``tasks.load_task("custom", ...)`` as
``experiments/pfcdr.py --task=custom`` does; ``cli.run`` prints such an error as one
``error: ...`` line (tests/harness/test_pipeline.py checks that path). The bad settings go
through ``config.validate``, which the scripts and ``run_pfcdr`` call before any work.
"""

import gzip
import json
import logging
import math
import os
import re

import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import stages
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.data.tasks import load_task

HEADER = "user_id\titem_id\trating\n"
ROWS = "".join(f"u{u}\ti{(7 * u + k) % 20}\t{1 + (u + k) % 5}\n" for u in range(30)
               for k in range(6))
TARGET = HEADER + "".join(f"u{u}\tj{(3 * u + k) % 20}\t{1 + (u * k) % 5}\n" for u in range(30)
                          for k in range(6))
N_ROWS = ROWS.count("\n")
LAST = N_ROWS + 2   # the line number of a row appended after ROWS


def _source(tmp_path, name, data: bytes):
  path = tmp_path / name
  path.write_bytes(data)
  return path


def _load(tmp_path, source):
  (tmp_path / "tgt.tsv").write_text(TARGET)
  return load_task("custom", source_file=source, target_file=tmp_path / "tgt.tsv")


BAD = {
    # name: (file name, bytes, regex the message must match after the path)
    "binary": ("bin.tsv", b"\x00\x01\xff\xfe" * 40, r":1: byte 0xff at offset 2 is not UTF-8"),
    "invalid-utf8": ("u8.tsv", (HEADER + ROWS).encode() + b"u1\t\xe9t\xe9\t3\n",
                     rf":{LAST}: byte 0xe9 at offset \d+ is not UTF-8"),
    "latin1": ("latin.tsv", (HEADER + "caf\xe9\ti1\t3\n").encode("latin-1"),
               r":2: byte 0xe9 at offset 26 is not UTF-8"),
    "truncated-gzip": ("t.tsv.gz", gzip.compress((HEADER + ROWS).encode())[:12],
                       r": gzip data \(found by its magic bytes\) is corrupt or truncated"),
    "gzip-cut-mid": ("m.csv", gzip.compress((HEADER + ROWS).encode())[:-20],
                     r": gzip data .* is corrupt or truncated"),
    "empty": ("e.tsv", b"", r":1: file is empty"),
    "blank-lines-only": ("b.tsv", b"\n\n  \n", r":1: file is empty"),
    "header-only": ("h.tsv", HEADER.encode(), r":2: no ratings after the header"),
    "no-rating-column": ("n.tsv", b"user_id\titem_id\n", r":1: field 'rating': header"),
    "blank-id": ("bl.tsv", (HEADER + ROWS + " \ti1\t3\n").encode(),
                 rf":{LAST}: field 'user': user id blank"),
    "nul-in-id": ("nul.tsv", (HEADER + ROWS + "u\x001\ti1\t3\n").encode(),
                  rf":{LAST}: field 'user': user id .* control character"),
    "control-in-item": ("c.tsv", (HEADER + ROWS + "u1\ti\x071\t3\n").encode(),
                        rf":{LAST}: field 'item': item id .* control character"),
    "nan-rating": ("nan.tsv", (HEADER + ROWS + "u1\ti1\tnan\n").encode(),
                   rf":{LAST}: field 'rating': expected a finite rating"),
    "text-rating": ("txt.tsv", (HEADER + ROWS + "u1\ti1\tfive\n").encode(),
                    rf":{LAST}: field 'rating'"),
    "missing-field": ("f.tsv", (HEADER + ROWS + "u1\ti1\n").encode(),
                      rf":{LAST}: expected 3 fields"),
    "duplicate-column": ("d.tsv", b"user\tuser_id\titem\trating\n", r":1: field 'user_id'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_is_one_data_error_naming_the_path(tmp_path, case):
  name, data, says = BAD[case]
  path = _source(tmp_path, name, data)
  with pytest.raises(DataError) as info:
    _load(tmp_path, path)
  text = str(info.value)
  assert text.startswith(str(path)), text
  assert "\n" not in text
  assert re.search(says, text[len(str(path)):]), text


def test_missing_file_directory_and_unreadable(tmp_path):
  with pytest.raises(DataError, match="file not found"):
    _load(tmp_path, tmp_path / "nope.tsv")
  (tmp_path / "adir.tsv").mkdir()
  with pytest.raises(DataError, match=r"adir\.tsv: is a directory"):
    _load(tmp_path, tmp_path / "adir.tsv")
  locked = _source(tmp_path, "locked.tsv", (HEADER + ROWS).encode())
  os.chmod(locked, 0)
  try:
    if os.access(locked, os.R_OK):   # root reads anything: nothing to test there
      pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(DataError, match=r"locked\.tsv: cannot read the file"):
      _load(tmp_path, locked)
  finally:
    os.chmod(locked, 0o644)


def test_accepted_variants_read_like_the_plain_file(tmp_path, caplog):
  """A UTF-8 BOM, gzip under a .csv name and ids with stray spaces are read, not refused."""
  plain, _, _ = _load(tmp_path, _source(tmp_path, "p.tsv", (HEADER + ROWS).encode()))
  bom, _, _ = _load(tmp_path, _source(tmp_path, "bom.tsv", b"\xef\xbb\xbf" + (HEADER + ROWS).encode()))
  gz, _, _ = _load(tmp_path, _source(tmp_path, "gz.csv", gzip.compress((HEADER + ROWS).encode())))
  for other in (bom, gz):
    assert other.equals(plain)
  spaced = ROWS.replace("u0\t", "u0 \t", 1)
  with caplog.at_level(logging.WARNING):
    sp, _, _ = _load(tmp_path, _source(tmp_path, "sp.tsv", (HEADER + spaced).encode()))
  assert sp["user"].nunique() == plain["user"].nunique(), '"u0 " and "u0" are one user'
  assert any("stripped surrounding whitespace from 1 user id" in r.getMessage()
             for r in caplog.records)


def test_ratings_off_the_star_scale_warn_or_fail(tmp_path, caplog):
  path = _source(tmp_path, "big.tsv", (HEADER + ROWS + "u1\ti19\t1e9\n").encode())
  with caplog.at_level(logging.WARNING):
    _load(tmp_path, path)
  assert any("1 rating(s) outside the paper's 1-5 stars" in r.getMessage()
             for r in caplog.records)
  (tmp_path / "tgt.tsv").write_text(TARGET)
  with pytest.raises(DataError, match=rf"big\.tsv:{LAST}: field 'rating'"):
    load_task("custom", source_file=path, target_file=tmp_path / "tgt.tsv",
              rating_range=(1, 5))
  with pytest.raises(ValueError, match="lo < hi"):
    load_task("custom", source_file=path, target_file=tmp_path / "tgt.tsv",
              rating_range=(5, 1))


def test_too_few_overlapping_users_fail_before_training(tmp_path, monkeypatch):
  src = _source(tmp_path, "s.tsv", (HEADER + "u1\ti1\t3\nu2\ti1\t4\nu3\ti2\t5\n").encode())
  (tmp_path / "t.tsv").write_text(HEADER + "u1\tj1\t3\nu2\tj1\t4\nu3\tj2\t5\n")
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "custom", "data.source_file": str(src),
      "data.target_file": str(tmp_path / "t.tsv"), "cache.enabled": False})

  def no_training(*a, **k):
    raise AssertionError("trained before the split was checked")

  monkeypatch.setattr(stages, "pretrain", no_training)
  with pytest.raises(DataError, match="task custom: no validation ratings .* --topk=auto"):
    pipeline.run_pfcdr(cfg, tmp_path / "w")
  fixed = config_lib.override(cfg, {"split.beta": 0.1})
  with pytest.raises(DataError, match="of 3 overlapping users gives no (cold-start )?test user"):
    pipeline.run_pfcdr(fixed, tmp_path / "w")


BAD_SETTINGS = {
    "seed": (-1, r"seed \(--seed\) = -1"),
    "split.beta": [(0.0, "0 < beta < 1"), (1.0, "0 < beta < 1"), (1.5, "0 < beta < 1"),
                   (math.nan, "0 < beta < 1")],
    "inversion.target_rating": (math.nan, "a finite rating"),
    "pretrain.epochs": (0, "an integer >= 1"),
    "pretrain.batch_size": (0, "an integer >= 1"),
    "pretrain.lrs": [((), "one or more"), ((0.01, -1.0), "one or more"),
                     ((math.inf,), "one or more")],
    "bridge.epochs": (0, "an integer >= 1"),
}


@pytest.mark.parametrize("path,value,says", [
    (p, v, s) for p, cases in BAD_SETTINGS.items()
    for v, s in (cases if isinstance(cases, list) else [cases])])
def test_bad_settings_fail_before_any_work(tmp_path, path, value, says):
  cfg = config_lib.override(config_lib.PFCDRConfig(), {path: value})
  with pytest.raises(ValueError, match=says):
    config_lib.validate(cfg)
  # run_pfcdr checks first: the finished workdir is left as it was.
  work = tmp_path / "w"
  work.mkdir()
  (work / "results.json").write_text(json.dumps({"old": True}))
  with pytest.raises(ValueError, match=says):
    pipeline.run_pfcdr(cfg, work)
  assert [p.name for p in work.iterdir()] == ["results.json"]


def test_bad_input_file_leaves_a_finished_workdir_unchanged(tmp_path):
  work = tmp_path / "w"
  work.mkdir()
  old = {"results.json": b'{"old": true}', "config.json": b"{}", "metrics.jsonl": b""}
  for name, data in old.items():
    (work / name).write_bytes(data)
  bad = _source(tmp_path, "bin.tsv", b"\x00\xff" * 10)
  (tmp_path / "tgt.tsv").write_text(TARGET)
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "custom", "data.source_file": str(bad),
      "data.target_file": str(tmp_path / "tgt.tsv")})
  with pytest.raises(DataError, match=r"bin\.tsv:1: byte 0xff"):
    pipeline.run_pfcdr(cfg, work)
  assert {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()
          and p.name != ".lock"} == old
  assert not (work / ".staging").exists()


def test_script_exits_1_with_one_error_line_and_keeps_the_old_outputs(tmp_path):
  """The real script (``experiments/pfcdr.py --task=custom``) on a finished workdir."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel
  work = tmp_path / "w"
  work.mkdir()
  (work / "results.json").write_text('{"old": true}')
  bad = _source(tmp_path, "cut.csv", gzip.compress((HEADER + ROWS).encode())[:30])
  (tmp_path / "tgt.tsv").write_text(TARGET)
  script = Path(__file__).resolve().parents[2] / "experiments" / "pfcdr.py"
  out = subprocess.run([sys.executable, str(script), "--task=custom", f"--source_file={bad}",
                        f"--target_file={tmp_path / 'tgt.tsv'}", f"--workdir={work}"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 1
  errors = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert errors == [l for l in out.stderr.splitlines() if "Traceback" in l or
                    l.startswith("error:")], out.stderr[-2000:]
  assert len(errors) == 1 and str(bad) in errors[0] and "corrupt or truncated" in errors[0]
  assert (work / "results.json").read_text() == '{"old": true}'
  assert not (work / ".staging").exists()
