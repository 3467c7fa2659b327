"""Downloads against a local http.server, checksums, atomicity, safe extraction."""

import functools
import gzip
import hashlib
import http.server
import json
import socket
import threading
import zipfile

import pytest

from pfcdr_jax.data import amazon
from pfcdr_jax.data import archives, checksums
from pfcdr_jax.data import download as dl
from pfcdr_jax.data.errors import DataError, DownloadError, MissingFile


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):  # keeps pytest output clean
    pass


@pytest.fixture
def server(tmp_path):
  """Serves tmp_path/www on 127.0.0.1; yields (root dir, base url)."""
  root = tmp_path / "www"
  root.mkdir()
  handler = functools.partial(_QuietHandler, directory=str(root))
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                            daemon=True)
  thread.start()
  try:
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
  finally:
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _leftovers(d):
  return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_error_format():
  assert str(DataError("a.csv", "bad", 3, "rating")) == "a.csv:3: field 'rating': bad"
  assert str(DataError("a.csv", "bad")) == "a.csv: bad"
  assert str(DataError("a.csv", "bad", line=7)) == "a.csv:7: bad"
  err = DownloadError.from_missing([MissingFile("x.gz", "http://h/x.gz", "/d/x.gz", "404")])
  assert isinstance(err, DataError)
  assert "x.gz" in str(err) and "http://h/x.gz" in str(err) and "/d/x.gz" in str(err)


def test_fetch_success_and_cache(server, tmp_path):
  root, url = server
  payload = b"hello world\n" * 1000
  (root / "f.bin").write_bytes(payload)
  sha = hashlib.sha256(payload).hexdigest()
  md5 = hashlib.md5(payload).hexdigest()
  dest = tmp_path / "cache" / "f.bin"
  out = dl.fetch(f"{url}/f.bin", dest, sha256=sha, md5=md5, size=len(payload), progress=False)
  assert out == dest and dest.read_bytes() == payload
  assert _leftovers(dest.parent) == ["f.bin"]
  # Cached: served file removed, fetch still succeeds without the network.
  (root / "f.bin").unlink()
  assert dl.fetch(f"{url}/f.bin", dest, sha256=sha, progress=False) == dest


def test_fetch_checksum_mismatch_leaves_nothing(server, tmp_path):
  root, url = server
  (root / "f.bin").write_bytes(b"payload")
  dest = tmp_path / "cache" / "f.bin"
  with pytest.raises(DataError, match="sha256") as info:
    dl.fetch(f"{url}/f.bin", dest, sha256="0" * 64, progress=False)
  assert "f.bin" in str(info.value)
  assert _leftovers(dest.parent) == []
  with pytest.raises(DataError, match="bytes"):
    dl.fetch(f"{url}/f.bin", dest, size=3, progress=False)
  assert _leftovers(dest.parent) == []


def test_fetch_cached_file_with_wrong_checksum_is_kept_and_reported(tmp_path):
  dest = tmp_path / "f.bin"
  dest.write_bytes(b"mine")
  with pytest.raises(DataError, match="cached file"):
    dl.fetch("http://127.0.0.1:1/f.bin", dest, sha256="0" * 64, progress=False)
  assert dest.read_bytes() == b"mine"


def test_fetch_404_and_unreachable(server, tmp_path):
  _, url = server
  dest = tmp_path / "cache" / "missing.gz"
  with pytest.raises(DownloadError) as info:
    dl.fetch(f"{url}/missing.gz", dest, progress=False)
  msg = str(info.value)
  assert "missing.gz" in msg and f"{url}/missing.gz" in msg and str(dest) in msg
  assert _leftovers(dest.parent) == []
  bad_url = f"http://127.0.0.1:{_closed_port()}/x.gz"
  with pytest.raises(DownloadError) as info:
    dl.fetch(bad_url, tmp_path / "x.gz", timeout=5, progress=False)
  assert bad_url in str(info.value) and str(tmp_path / "x.gz") in str(info.value)


def test_fetch_check_callback_rejects_truncated_gzip(server, tmp_path):
  root, url = server
  data = gzip.compress(b"line\n" * 10000)
  (root / "t.json.gz").write_bytes(data[: len(data) // 2])
  dest = tmp_path / "t.json.gz"
  with pytest.raises(DataError, match="truncated") as info:
    dl.fetch(f"{url}/t.json.gz", dest, check=checksums.check_gzip, progress=False)
  assert "t.json.gz" in str(info.value)
  assert not dest.exists() and not (tmp_path / "t.json.gz.part").exists()


def test_safe_extract(tmp_path):
  good = tmp_path / "good.zip"
  with zipfile.ZipFile(good, "w") as z:
    z.writestr("d/a.txt", "a")
    z.writestr("d/b.txt", "b")
  out = archives.safe_extract(good, tmp_path / "out", ["d/b.txt"])
  assert out == [(tmp_path / "out" / "d" / "b.txt").resolve()]
  assert out[0].read_text() == "b"
  with pytest.raises(DataError, match="lacks"):
    archives.safe_extract(good, tmp_path / "out", ["d/c.txt"])
  for name in ("../evil", "d/../../evil", "/abs/evil"):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
      z.writestr("ok.txt", "ok")
      z.writestr(name, "x")
    with pytest.raises(DataError, match="unsafe|outside") as info:
      archives.safe_extract(bad, tmp_path / "out2")
    assert "bad.zip" in str(info.value)
    # Nothing at all is written from a bad archive.
    assert not (tmp_path / "out2" / "ok.txt").exists()
    assert not (tmp_path / "evil").exists()


def test_recorded_checksum(tmp_path):
  f = tmp_path / "reviews_X_5.json.gz"
  f.write_bytes(b"abc")
  digest = checksums.verify_recorded_checksum(f)
  table = json.loads((tmp_path / "checksums.json").read_text())
  assert table == {"reviews_X_5.json.gz": digest}
  assert checksums.verify_recorded_checksum(f) == digest
  f.write_bytes(b"abd")
  with pytest.raises(DataError, match="recorded"):
    checksums.verify_recorded_checksum(f)
  with pytest.raises(DataError, match="pinned"):
    checksums.verify_recorded_checksum(f, pinned="0" * 64)


def _review_lines(rows):
  return "".join(json.dumps({"reviewerID": u, "asin": i, "reviewerName": "n",
                             "helpful": [0, 0], "reviewText": "t", "overall": r,
                             "summary": "s", "unixReviewTime": ts, "reviewTime": "x"}) + "\n"
                 for u, i, r, ts in rows)


def test_amazon_download_from_local_mirror(server, tmp_path, monkeypatch):
  root, url = server
  monkeypatch.setattr(amazon, "AMAZON_URL", url + "/reviews_{category}_5.json.gz")
  for cat in ("CDs_and_Vinyl", "Movies_and_TV"):
    rows = [("u1", f"{cat}1", 5.0, 100), ("u2", f"{cat}2", 3.0, 200)]
    (root / f"reviews_{cat}_5.json.gz").write_bytes(gzip.compress(_review_lines(rows).encode()))
  data_dir = tmp_path / "data"
  df = amazon.load_amazon_domain("CDs_and_Vinyl", data_dir)
  assert list(df["item"]) == ["CDs_and_Vinyl1", "CDs_and_Vinyl2"]
  table = json.loads((data_dir / "amazon" / "checksums.json").read_text())
  assert set(table) == {"reviews_CDs_and_Vinyl_5.json.gz"}
  # A cached file that changed afterwards is detected on the next use.
  cached = data_dir / "amazon" / "reviews_CDs_and_Vinyl_5.json.gz"
  cached.write_bytes(gzip.compress(_review_lines([("u9", "i9", 1.0, 1)]).encode()))
  with pytest.raises(DataError, match="recorded"):
    amazon.load_amazon_domain("CDs_and_Vinyl", data_dir)


def test_amazon_download_failure_names_every_file(server, tmp_path, monkeypatch):
  _, url = server
  monkeypatch.setattr(amazon, "AMAZON_URL", url + "/reviews_{category}_5.json.gz")
  data_dir = tmp_path / "data"
  with pytest.raises(DownloadError) as info:
    amazon.locate_amazon_files(["Books", "Movies_and_TV"], data_dir)
  msg = str(info.value)
  for cat in ("Books", "Movies_and_TV"):
    name = f"reviews_{cat}_5.json.gz"
    assert f"{url}/{name}" in msg
    assert str(data_dir / "amazon" / name) in msg
  assert len(info.value.missing) == 2
  assert _leftovers(data_dir / "amazon") == []
