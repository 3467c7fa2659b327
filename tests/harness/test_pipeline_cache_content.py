"""The stage cache is keyed on the data's content: editing ratings in place recomputes."""

import json
from pathlib import Path

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline

from test_pipeline import _write_custom_tsv  # pylint: disable=import-error


def _cfg(tmp_path):
  return config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "custom", "data.source_file": str(tmp_path / "src.tsv"),
      "data.target_file": str(tmp_path / "tgt.tsv"), "pretrain.epochs": 3,
      "pretrain.batch_size": 128, "pretrain.lrs": (0.02,), "inversion.steps": 10,
      "bridge.epochs": 5, "topk.k": "5", "cache.dir": str(tmp_path / "cache"),
      "baselines.names": ("GlobalMean",)})


def _cached_stages(workdir):
  lines = (Path(workdir) / "metrics.jsonl").read_text().splitlines()
  return {s["stage"] for s in map(json.loads, lines) if s.get("cached")}


def _shift_ratings(path):
  """Every rating r -> r mod 5 + 1: same users, items and pairs, other ratings (not an
  affine map, so no metric is unchanged by symmetry)."""
  head, *rows = path.read_text().splitlines()
  out = [head]
  for row in rows:
    u, i, r = row.split("\t")
    out.append(f"{u}\t{i}\t{float(r) % 5 + 1}")
  path.write_text("\n".join(out) + "\n")


def test_ratings_edited_in_place_are_not_served_from_the_cache(tmp_path):
  _write_custom_tsv(tmp_path)
  cfg = _cfg(tmp_path)
  first = pipeline.run_pfcdr(cfg, tmp_path / "a")
  again = pipeline.run_pfcdr(cfg, tmp_path / "b")
  assert {"pretrain_source", "pretrain_target"} <= _cached_stages(tmp_path / "b")
  assert again["methods"] == first["methods"]
  for name in ("src.tsv", "tgt.tsv"):
    _shift_ratings(tmp_path / name)
  fresh = pipeline.run_pfcdr(cfg, tmp_path / "c")
  assert not _cached_stages(tmp_path / "c"), "stages trained on the old ratings were reused"
  assert fresh["methods"]["GlobalMean"] != first["methods"]["GlobalMean"]
  # The edit is the only difference: ids, pairs and split are unchanged, the hash is not.
  assert fresh["dataset"].pop("data_hash") != first["dataset"].pop("data_hash")
  assert fresh["dataset"] == first["dataset"]
  # results.json names each input file with its sha256, before and after the edit.
  sha = lambda res: {Path(f["path"]).name: f["sha256"] for f in res["input_files"]}
  assert set(sha(first)) == {"src.tsv", "tgt.tsv"}
  assert all(sha(first)[n] != sha(fresh)[n] for n in ("src.tsv", "tgt.tsv"))
