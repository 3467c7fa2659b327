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

from pfcdr_jax.harness.sanity import MARGIN_SE

UNTRAINED = "-untrained"


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


def _clearly_above(a, b, z: float = MARGIN_SE) -> tuple[bool, float]:
  """(mean(a - b) - z standard errors > 0, that lower bound), over items."""
  d = np.asarray(a, float) - np.asarray(b, float)
  se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("inf")
  low = float(d.mean() - z * se)
  return bool(low > 0), low


def sanity(per_item: list[dict], metric: str = "HR@20") -> dict:
  """The gate every learned attack row must pass, as PFCDR's methods do
  (``harness.sanity``): clearly above its own untrained policy ("learns") and
  clearly above no attack at all ("beats_floor"), each as the mean per-item
  difference minus ``MARGIN_SE`` standard errors > 0.

  Returns:
    {row: {"ok", "learns", "beats_floor", "low_vs_untrained",
    "low_vs_floor"}} for every row with an untrained twin.
  """
  if not per_item:
    return {}
  names = per_item[0]["methods"]
  val = lambda n: [r["methods"][n][metric] for r in per_item]
  out = {}
  for name in names:
    if name.endswith(UNTRAINED) or name + UNTRAINED not in names:
      continue
    learns, low_u = _clearly_above(val(name), val(name + UNTRAINED))
    beats, low_f = _clearly_above(val(name), val("Without Attack"))
    out[name] = {"ok": learns and beats, "learns": learns,
                 "beats_floor": beats, "low_vs_untrained": low_u,
                 "low_vs_floor": low_f}
  return out
