"""Per-item values and paired tests of the Figure 3-5 analyses.

Every analysis row carries its per-item HR@20 (``per_item_HR20``, seed means,
items in the run's order), so each figure's claim can be tested and recomputed
from the committed JSON: ``<kind>_tests.json`` holds two-sided Wilcoxon
signed-rank tests over items, paired by item, with Holm-adjusted p-values
within the figure (the family: that figure's tests).

  depth       each depth against the paper's (``tree.depth``), CopyAttack rows
  budget      CopyAttack against every other row at the same budget
  popularity  CopyAttack against Without Attack within each decile
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def per_item_values(res: dict, name: str) -> dict:
  """{"items": [...], "per_item_HR20": [...]} of row ``name`` of a
  ``runner.run_methods`` result."""
  return {"items": [int(r["item"]) for r in res["per_item"]],
          "per_item_HR20": [float(r["methods"][name]["HR@20"])
                            for r in res["per_item"]]}


def paired(a, b) -> dict:
  """Wilcoxon of a - b over items: mean difference, wins / losses, p."""
  d = np.asarray(a, float) - np.asarray(b, float)
  p = 1.0 if not d.any() else float(stats.wilcoxon(d).pvalue)
  return {"mean_diff": float(d.mean()), "wins": int((d > 0).sum()),
          "losses": int((d < 0).sum()), "n_items": int(len(d)), "p": p}


def holm(tests: list[dict]) -> list[dict]:
  """Adds ``p_holm`` (Holm's step-down adjustment over ``tests``)."""
  order = np.argsort([t["p"] for t in tests])
  m, running = len(tests), 0.0
  for rank, i in enumerate(order):
    running = max(running, min(1.0, (m - rank) * tests[i]["p"]))
    tests[i]["p_holm"] = float(running)
  return tests


def _row(rows, **match):
  return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def depth_tests(rows: list[dict], cfg) -> dict:
  ref = cfg.tree.depth
  if not any(r["depth"] == ref and r["method"] == "CopyAttack" for r in rows):
    return {"metric": "HR@20", "tests": [],
            "note": f"the run's depths leave out the reference depth {ref}"}
  base = _row(rows, depth=ref, method="CopyAttack")
  tests = [dict(depth=r["depth"], reference_depth=ref,
                **paired(r["per_item_HR20"], base["per_item_HR20"]))
           for r in rows if r["method"] == "CopyAttack" and r["depth"] != ref]
  return {"metric": "HR@20", "test": "Wilcoxon signed-rank, two-sided, "
          "paired by item; Holm within the figure", "tests": holm(tests)}


def budget_tests(rows: list[dict], cfg) -> dict:
  del cfg
  tests = []
  for b in dict.fromkeys(r["budget"] for r in rows):
    if not any(r["budget"] == b and r["method"] == "CopyAttack"
               for r in rows):
      continue  # a run without CopyAttack has nothing to test
    ca = _row(rows, budget=b, method="CopyAttack")
    for r in rows:
      if r["budget"] == b and r["method"] != "CopyAttack":
        tests.append(dict(budget=b, method=r["method"],
                          **paired(ca["per_item_HR20"], r["per_item_HR20"])))
  return {"metric": "HR@20", "test": "Wilcoxon signed-rank, two-sided, "
          "CopyAttack minus the row, paired by item; Holm within the figure",
          "tests": holm(tests)}


def popularity_tests(rows: list[dict], cfg) -> dict:
  del cfg
  tests = []
  for g in dict.fromkeys(r["group"] for r in rows):
    ca = _row(rows, group=g, method="CopyAttack")
    wo = _row(rows, group=g, method="Without Attack")
    tests.append(dict(group=g, **paired(ca["per_item_HR20"],
                                        wo["per_item_HR20"])))
  return {"metric": "HR@20", "test": "Wilcoxon signed-rank, two-sided, "
          "CopyAttack minus Without Attack within each decile, paired by "
          "item; Holm within the figure", "tests": holm(tests)}


TESTS = {"depth": depth_tests, "budget": budget_tests,
         "popularity": popularity_tests}
