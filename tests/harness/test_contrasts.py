"""Planned contrasts (harness/contrasts.py): the committed file, its checks, and the Holm
family a table's contrasts form."""

import json
from pathlib import Path

import numpy as np
import pytest

from pfcdr_jax.harness import contrasts
from pfcdr_jax.harness import significance
from pfcdr_jax.harness import summary

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "experiments" / "configs" / "planned_contrasts.json"
# The pairs hard-coded in harness/summary.py before issue 29, kept first and in order.
BEFORE_ISSUE_29 = (("PFCDR+", "PTUPCDR"), ("PFCDR+", "BiasFloor"), ("PFCDR", "PTUPCDR"),
                   ("PFCDR", "BiasFloor"), ("PFCDR+(eps=1)", "PTUPCDR"),
                   ("PFCDR+(eps=1)", "BiasFloor"), ("PFCDR+(eps=5)", "PTUPCDR"),
                   ("PFCDR+(eps=5)", "BiasFloor"))
ADDED = (("PFCDR-Bilinear", "PFCDR"), ("PFCDR-Bilinear", "PTUPCDR"),
         ("PFCDR-Bilinear", "BiasFloor"), ("FedCDR", "PFCDR"), ("FedCDR", "PFCDR+"),
         ("FedCDR", "PFCDR-Bilinear"))


def test_committed_file():
  planned = contrasts.load_contrasts(COMMITTED)
  assert planned.pairs == BEFORE_ISSUE_29 + ADDED
  assert planned.declared.startswith("2026-12-05") and "before" in planned.declared
  assert "Holm" in planned.family
  assert planned.source == str(COMMITTED)
  assert contrasts.load_contrasts(COMMITTED, shown_as="x.json").source == "x.json"


def _write(tmp_path, content):
  path = tmp_path / "c.json"
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  return path


@pytest.mark.parametrize("content, match", [
    ("{not json", "not JSON"),
    ([["PFCDR", "TGT"]], "JSON object"),
    ({"contrasts": [["PFCDR", "TGT"]]}, "declared"),
    ({"declared": "d", "contrasts": []}, "non-empty list"),
    ({"declared": "d", "contrasts": [["PFCDR"]]}, r"contrasts\[0\]"),
    ({"declared": "d", "contrasts": [["PFCDR", "PFCDR"]]}, "two different"),
    ({"declared": "d", "contrasts": [["PFCDR", "TGT"], ["PFCDR", "TGT"]]}, "twice"),
    ({"declared": "d", "contrasts": [["PFCDR", "NoSuchMethod"]]}, "NoSuchMethod"),
    ({"declared": "d", "contrasts": [["PFCDR+(eps=1.0)", "TGT"]]}, "'PFCDR\\+\\(eps=1\\)'"),
])
def test_bad_files_name_the_file(tmp_path, content, match):
  path = _write(tmp_path, content)
  with pytest.raises(ValueError, match=match) as e:
    contrasts.load_contrasts(path)
  assert str(path) in str(e.value)


def test_missing_file(tmp_path):
  with pytest.raises(ValueError, match="no.json"):
    contrasts.load_contrasts(tmp_path / "no.json")


def _row(metric, tests):
  return summary.Row("t", 0.2, "mf", metric, 3, (0, 1, 2), {}, {}, "x", None, None, None,
                     contrasts=tuple(tests))


def test_adjust_is_holm_over_every_contrast_of_the_table():
  rng = np.random.default_rng(0)
  a, b, c = (0.7 + 0.01 * rng.normal(size=5) for _ in range(3))
  tests = [significance.seed_test(a, b - 0.01, "A", "B"),
           significance.seed_test(a, c, "A", "C"),
           significance.seed_test(a[:1], c[:1], "A", "D")]   # one seed: no p-value
  rows = [_row("mae", tests[:2]), _row("rmse", tests[1:])]
  adjusted = contrasts.adjust(rows)
  assert [(x.row.metric, x.test.method_b) for x in adjusted] == [
      ("mae", "B"), ("mae", "C"), ("rmse", "C"), ("rmse", "D")]
  raw = [x.test.p_ttest for x in adjusted]
  np.testing.assert_allclose([x.p_ttest_holm for x in adjusted], significance.holm(raw))
  assert contrasts.family_size(adjusted) == (3, 3)   # the nan is not in the family
  assert np.isnan(adjusted[-1].p_ttest_holm)
  assert all(x.p_ttest_holm >= x.test.p_ttest for x in adjusted[:3])
  assert not adjusted[-1].a_better_holm
  assert contrasts.adjust([_row("mae", ())]) == []
