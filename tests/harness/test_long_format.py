"""The long per-seed CSV (harness/long_format.py): from table rows and from committed
``*_seeds.json`` files, its columns, order, round trip and the errors on bad cells."""

import csv
import io
import json
from pathlib import Path

import pytest

from pfcdr_jax.harness import long_format
from pfcdr_jax.harness import summary

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"


def _row(metric, per_seed, seeds=(0, 1), task="t", beta=0.2, base_model="mf"):
  mean = {m: sum(v) / len(v) for m, v in per_seed.items()}
  return summary.Row(task, beta, base_model, metric, len(seeds), seeds, mean, mean, "x", None,
                     None, None, per_seed=per_seed)


def test_from_rows_one_record_per_method_seed_metric():
  rows = [_row("mae", {"PFCDR": (0.7, 0.71), "TGT": (0.9, 0.8)}, seeds=(3, 1)),
          _row("rmse", {"PFCDR": (0.9, 0.91), "TGT": (1.1, 1.0)}, seeds=(3, 1))]
  records = long_format.from_rows(rows)
  assert len(records) == 2 * 2 * 2 and records == sorted(records)
  assert long_format.Record("t", 0.2, "TGT", 1, "mae", 0.8) in records
  text = long_format.render_csv(records)
  table = list(csv.reader(io.StringIO(text)))
  assert tuple(table[0]) == long_format.COLUMNS == (
      "task", "beta", "method", "seed", "metric", "value")
  assert table[1] == ["t", "0.2", "PFCDR", "1", "mae", "0.71"]
  assert [float(r[5]) for r in table[1:]] == [r.value for r in records]   # exact round trip
  with pytest.raises(ValueError, match="several base models"):
    long_format.from_rows(rows + [_row("mae", {"PFCDR": (0.7, 0.7)}, base_model="dnn")])


def test_render_sorts_quotes_and_refuses_duplicates():
  recs = [long_format.Record("b", 0.5, "FedCDR(eps=1,clip_norm=2)", 0, "rmse", 1.0),
          long_format.Record("a", 0.8, "X", 10, "mae", float("nan")),
          long_format.Record("a", 0.8, "X", 2, "mae", 1.0 / 3)]
  lines = long_format.render_csv(recs).splitlines()
  assert lines[1:] == ["a,0.8,X,2,mae,0.3333333333333333", "a,0.8,X,10,mae,nan",
                       'b,0.5,"FedCDR(eps=1,clip_norm=2)",0,rmse,1.0']
  with pytest.raises(ValueError, match="two values of a beta=0.8 X seed=2 mae"):
    long_format.render_csv(recs + [recs[2]._replace(value=2.0)])


def _cell(seed, **extra):
  return {"seed": seed, "mae": {"PFCDR": 0.7 + seed, "TGT": 0.9}, "rmse": {"PFCDR": 0.9,
                                                                          "TGT": 1.1}, **extra}


def test_from_seeds_reads_task_beta_seed_from_the_key_or_the_fields():
  data = {"source": "runs/x", "cells": {
      "comedy2drama-b0.2-mf-s0": _cell(0), "comedy2drama-b0.5-mf-s1": _cell(1),
      "any-name": _cell(2, task="synthetic", beta=0.8)}}
  records = long_format.from_seeds(data, source="f.json")
  assert len(records) == 3 * 2 * 2
  assert {(r.task, r.beta, r.seed) for r in records} == {
      ("comedy2drama", 0.2, 0), ("comedy2drama", 0.5, 1), ("synthetic", 0.8, 2)}
  assert long_format.Record("comedy2drama", 0.5, "PFCDR", 1, "mae", 1.7) in records


@pytest.mark.parametrize("cells, match", [
    ({"any-name": _cell(0)}, r"cell 'any-name': no 'task'"),
    ({"t-b0.2-mf-s0": {"seed": 0, "mae": {"PFCDR": 0.7}}}, r"cell 't-b0.2-mf-s0': no 'rmse'"),
    ({"t-b0.2-mf-s0": _cell(1)}, r"field seed = 1 but the key says 0"),
    ({"t-b0.2-mf-s0": {**_cell(0), "mae": {"PFCDR": None}}}, "not a number"),
    ({"t-b0.2-mf-s0": _cell(0), "t-b0.2-gmf-s0": _cell(0)}, "same task, beta and seed"),
    ({"t-b0.2-mf-s0": [1, 2]}, "not an object"),
    ({}, "no 'cells' object"),
])
def test_from_seeds_errors_name_the_file_and_the_cell(cells, match):
  with pytest.raises(ValueError, match=match) as e:
    long_format.from_seeds({"cells": cells}, source="docs/results/x_seeds.json")
  assert str(e.value).startswith("docs/results/x_seeds.json:")


def test_read_seeds_errors(tmp_path):
  with pytest.raises(ValueError, match="no_seeds.json"):
    long_format.read_seeds(tmp_path / "no_seeds.json")
  bad = tmp_path / "bad_seeds.json"
  bad.write_text("{")
  with pytest.raises(ValueError, match=r"bad_seeds.json: not JSON"):
    long_format.read_seeds(bad)


def _committed_seeds():
  return sorted(p for p in RESULTS.glob("*_seeds.json")
                if "cells" in json.loads(p.read_text()))


def test_every_committed_seeds_file_has_its_long_csv():
  seeds = _committed_seeds()
  assert seeds
  for path in seeds:
    long_csv = path.with_name(path.name.replace("_seeds.json", "_long.csv"))
    assert long_csv.exists(), long_csv
    records = long_format.read_seeds(path)
    assert long_csv.read_text() == long_format.render_csv(records), long_csv
    cells = json.loads(path.read_text())["cells"]
    assert len(records) == sum(len(c["mae"]) + len(c["rmse"]) for c in cells.values())
