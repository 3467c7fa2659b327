"""Download and extraction safety: no https downgrade, no '.', symlink or oversized members."""

import http.server
import threading
import urllib.error
import urllib.request
import zipfile

import pytest

from pfcdr_jax.data import amazon
from pfcdr_jax.data import archives, checksums
from pfcdr_jax.data import download as dl
from pfcdr_jax.data.errors import DataError, DownloadError


class _Redirector(http.server.BaseHTTPRequestHandler):
  target = ""

  def do_GET(self):  # pylint: disable=invalid-name
    self.send_response(302)
    self.send_header("Location", self.target)
    self.end_headers()

  def log_message(self, *args):
    pass


def _serve(target):
  handler = type("H", (_Redirector,), {"target": target})
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                   daemon=True).start()
  return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/f"


def test_redirect_to_another_scheme_is_refused(tmp_path):
  (tmp_path / "secret").write_text("local file")
  httpd, url = _serve((tmp_path / "secret").as_uri())
  try:
    with pytest.raises(DownloadError, match="refusing redirect|is not allowed") as info:
      dl.fetch(url, tmp_path / "out.bin", progress=False)
    assert "out.bin" in str(info.value)
    assert not (tmp_path / "out.bin").exists()
  finally:
    httpd.shutdown()
    httpd.server_close()


def test_https_to_http_redirect_is_refused_and_http_to_https_allowed():
  handler = dl._NoDowngradeRedirects()  # pylint: disable=protected-access
  req = urllib.request.Request("https://example.org/a.gz")
  with pytest.raises(urllib.error.URLError, match="leaves https"):
    handler.redirect_request(req, None, 302, "Found", {}, "http://example.org/a.gz")
  up = handler.redirect_request(urllib.request.Request("http://example.org/a"), None, 301,
                                "Moved", {}, "https://example.org/a")
  assert up.full_url == "https://example.org/a"


def test_the_amazon_source_is_https():
  assert amazon.AMAZON_URL.startswith("https://")


def _zip(path, members):
  with zipfile.ZipFile(path, "w") as z:
    for info, data in members:
      z.writestr(info, data)
  return path


def test_dot_and_symlink_members_are_refused_by_name(tmp_path):
  for name in (".", "./"):
    bad = _zip(tmp_path / "dot.zip", [("ok.txt", "ok"), (zipfile.ZipInfo(name), "x")])
    with pytest.raises(DataError, match="names the target directory itself"):
      archives.safe_extract(bad, tmp_path / "out")
  link = zipfile.ZipInfo("d/link")
  link.external_attr = (0o120777 << 16)   # S_IFLNK
  bad = _zip(tmp_path / "link.zip", [("ok.txt", "ok"), (link, "/etc"),
                                     ("d/link/passwd", "x")])
  with pytest.raises(DataError, match=r"link\.zip: field 'member': member 'd/link' is a "
                     "symbolic link"):
    archives.safe_extract(bad, tmp_path / "out")
  assert not (tmp_path / "out" / "ok.txt").exists(), "nothing written from a bad archive"


def test_total_extracted_size_is_capped(tmp_path):
  big = _zip(tmp_path / "big.zip", [("a.txt", "x" * 1000), ("b.txt", "y" * 1000)])
  with pytest.raises(DataError, match="2000 bytes uncompressed, more than the cap of 1500"):
    archives.safe_extract(big, tmp_path / "out", max_bytes=1500)
  assert [p.name for p in archives.safe_extract(big, tmp_path / "out", ["a.txt"],
                                                max_bytes=1500)] == ["a.txt"]


def test_extracted_movielens_files_are_rechecked_against_their_record(tmp_path):
  from pfcdr_jax.data import movielens_sources  # pylint: disable=import-outside-toplevel
  members = ("ml-1m/ratings.dat", "ml-1m/movies.dat")
  (tmp_path / "ml-1m").mkdir()
  for m in members:
    (tmp_path / m).write_text(f"{m}\n")
  prov = {}
  # No record, no archive: put there by hand -> used, unverified, recorded now.
  files = movielens_sources._checked_local(tmp_path, members, tmp_path / "gone.zip", prov)  # pylint: disable=protected-access
  assert [f.name for f in files] == ["ratings.dat", "movies.dat"]
  assert prov["verification"] == "unverified"
  assert (set(checksums.load_checksums(tmp_path / movielens_sources.EXTRACTED_MANIFEST))
          == set(members))
  # Unchanged: accepted.
  assert movielens_sources._checked_local(tmp_path, members, tmp_path / "gone.zip", {})  # pylint: disable=protected-access
  # Changed after it was recorded: re-extracted when the archive is there, else refused.
  (tmp_path / members[0]).write_text("edited\n")
  (tmp_path / "here.zip").write_bytes(b"")
  assert movielens_sources._checked_local(tmp_path, members, tmp_path / "here.zip", {}) is None  # pylint: disable=protected-access
  with pytest.raises(DataError, match=r"ratings\.dat: sha256 \w+ != \w+ recorded when it "
                     "was extracted"):
    movielens_sources._checked_local(tmp_path, members, tmp_path / "gone.zip", {})  # pylint: disable=protected-access
