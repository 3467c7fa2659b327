"""Attack settings chosen on validation items (never on the scored ones).

``run_selection`` attacks the validation side of ``pipeline.item_split``
with CopyAttack under every setting of ``GRID`` (policy sharing, the
REINFORCE baseline and credit, the learning rate, greedy vs sampled final
attack), all at the run's query budget, next to TargetAttack100 and its
best-of-trials variant, and picks the setting with the highest mean
validation HR@20. ``run_stop_selection`` then tries the stopping rules of
``STOP_RULES`` at that choice (stage 2), by the same criterion. The chosen
values become the presets of ``experiments/configs/copyattack.py`` (a test
holds the two equal), so Table 2 scores test items with settings its items
never influenced.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from pathlib import Path

import jax
import numpy as np
from scipy import stats

from pfcdr_jax.copyattack import config as config_lib
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import methods as methods_lib
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import runner
from pfcdr_jax.harness import cache

# Setting -> values tried. "estimator" bundles the REINFORCE baseline, the
# credit of a query's reward and the episodes per item of an update.
GRID = {
    "shared": (True, False),
    "estimator": ("ema-last", "loo-spread"),
    "lr": (1e-2, 3e-2, 1e-1),
    "final_greedy": (False, True),
}
ESTIMATORS = {
    "ema-last": dict(baseline="ema", credit="last", episodes_per_item=1),
    "loo-spread": dict(baseline="loo", credit="spread", episodes_per_item=4),
}
# Stage 2: when training stops, tried at the stage-1 choice.
STOP_RULES = {
    "budget": dict(stop="budget"),
    "plateau(window=20,patience=2)": dict(stop="plateau", plateau_window=20,
                                          plateau_patience=2),
    "plateau(window=20,patience=4)": dict(stop="plateau", plateau_window=20,
                                          plateau_patience=4),
}
REFERENCES = ("TargetAttack100", "TargetAttack100-BestOf", "CopyAttack-Length")


def setting_name(setting: dict) -> str:
  return "CopyAttack[" + ",".join(f"{k}={v}" for k, v in setting.items()) + "]"


def apply_setting(base: methods_lib.AttackConfig,
                  setting: dict) -> methods_lib.AttackConfig:
  """``base`` with one grid point's values."""
  changes = {k: v for k, v in setting.items() if k != "estimator"}
  changes.update(ESTIMATORS[setting["estimator"]])
  return dataclasses.replace(base, **changes)


def grid_settings() -> list[dict]:
  keys = list(GRID)
  return [dict(zip(keys, v)) for v in itertools.product(*GRID.values())]


def _validation_setup(cfg: config_lib.CopyAttackConfig):
  """(cfg scoring validation items, aligned data, items, setup, run) where
  ``run(methods=...)`` attacks the validation items with the run's seeds."""
  cfg = dataclasses.replace(
      cfg, data=dataclasses.replace(cfg.data, item_set="validation"))
  cd = data_lib.align_platforms(*pipeline.load_platforms(cfg.data, cfg.seed))
  items = pipeline.target_items(cd, cfg.data, cfg.seed)
  setup = pipeline.prepare(cfg, cd)
  tr, data, _ = pipeline.build_attacker(setup, cfg.tree.depth, cfg.seed,
                                        cfg.tree.kmeans_iters)
  run = functools.partial(pipeline.run_methods, setup, items, tr=tr, data=data,
                          seed=cfg.seed, n_neg=cfg.evaluation.n_neg,
                          n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
  return cfg, cd, items, run


def _merge_timings(total: dict, timings: dict) -> None:
  total.update({k: v for k, v in timings.items() if k != "attacks_total_s"})
  total["attacks_total_s"] += timings["attacks_total_s"]


def run_stop_selection(cfg: config_lib.CopyAttackConfig, workdir,
                       stage1: dict) -> dict:
  """Stage 2: the stopping rules of ``STOP_RULES`` at ``stage1["chosen"]``
  on the validation items; writes ``selection_stop.json``.

  Every rule runs as method 0 of its own call (the keys of stage 1), so the
  "budget" rule replays stage 1's chosen setting; the output says whether
  it reproduced its per-item HR@20.

  Returns:
    {"chosen": rule name, "rules": [{"rule", "values", "HR@20", "ci95",
    "per_item_HR@20", "queries_total", "queries_train", "updates_train"}]
    best first, "budget_reproduces_stage1", "wilcoxon_vs_budget", ...}.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cfg, cd, items, run = _validation_setup(cfg)
  base = apply_setting(methods_lib.table2_methods(cfg.attack)["CopyAttack"],
                       stage1["chosen"])
  rows, timings = [], None
  for rule, values in STOP_RULES.items():
    jax.clear_caches()
    name = f"CopyAttack[stop={rule}]"
    out = run(methods={name: dataclasses.replace(base, **values)})
    if timings is None:
      timings = out["timings_s"]
    else:
      _merge_timings(timings, out["timings_s"])
    m = out["methods"][name]
    h = [r["methods"][name]["HR@20"] for r in out["per_item"]]
    rows.append({"rule": rule, "values": values, "HR@20": float(np.mean(h)),
                 "ci95": runner.interval(h), "per_item_HR@20": h,
                 "queries_total": m["queries_total"],
                 "queries_train": m["queries_train"],
                 "updates_train": m["updates_train"],
                 "training_curves_per_seed":
                     out["training_curves_per_seed"][name]})
  by_rule = {r["rule"]: r for r in rows}
  chosen_s1 = next(r for r in stage1["settings"]
                   if r["setting"] == stage1["chosen"])

  def wilcoxon(a, b):
    d = np.subtract(a, b)
    return 1.0 if not d.any() else float(stats.wilcoxon(d).pvalue)

  budget_h = by_rule["budget"]["per_item_HR@20"]
  rows.sort(key=lambda r: -r["HR@20"])
  out = {
      "chosen": rows[0]["rule"],
      "chosen_values": rows[0]["values"],
      "criterion": "mean validation HR@20 of CopyAttack over items and "
                   "seeds (as stage 1)",
      "stage1_setting": stage1["chosen"],
      "rules": rows,
      "budget_reproduces_stage1": bool(np.allclose(
          budget_h, chosen_s1["per_item_HR@20"])),
      "wilcoxon_vs_budget": {r["rule"]: wilcoxon(r["per_item_HR@20"],
                                                 budget_h)
                             for r in rows if r["rule"] != "budget"},
      "validation_items": [cd.item_ids[i] for i in items],
      "query_budget": cfg.attack.query_budget, "n_seeds": cfg.n_seeds,
      "seed": cfg.seed, "timings_s": timings,
  }
  cache.atomic_write_text(workdir / "selection_stop.json",
                          json.dumps(out, indent=2))
  return out


def run_selection(cfg: config_lib.CopyAttackConfig, workdir) -> dict:
  """Runs the grid on the validation items; writes ``selection.json``.

  Returns:
    {"chosen": setting, "settings": [{"setting", "name", "HR@20",
    "per_item_HR@20", "queries_total", "ci95"}] best first, "references":
    {name: mean HR@20}, "validation_items", "query_budget", "n_seeds",
    "wilcoxon_best_vs_runner_up"}.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cfg, cd, items, run = _validation_setup(cfg)
  table = methods_lib.table2_methods(cfg.attack)
  settings = grid_settings()
  # One call per setting: every setting sees the same random numbers (its
  # method index is 0), and the compiled code of one setting is dropped
  # before the next (dozens of configs' executables at once exhausted the
  # process's memory mappings).
  res = run(methods={n: table[n] for n in REFERENCES if n in table})
  results = {n: res for n in res["methods"]}
  for s in settings:
    jax.clear_caches()
    name = setting_name(s)
    out = run(methods={name: apply_setting(table["CopyAttack"], s)})
    results[name] = out
    _merge_timings(res["timings_s"], out["timings_s"])

  def per_item(name):
    return [r["methods"][name]["HR@20"] for r in results[name]["per_item"]]

  def summary(name):
    return results[name]["methods"][name]

  rows = []
  for s in settings:
    name = setting_name(s)
    h = per_item(name)
    rows.append({"setting": s, "name": name, "HR@20": float(np.mean(h)),
                 "ci95": runner.interval(h), "per_item_HR@20": h,
                 "queries_total": summary(name)["queries_total"]})
  rows.sort(key=lambda r: -r["HR@20"])
  d = (np.subtract(rows[0]["per_item_HR@20"], rows[1]["per_item_HR@20"])
       if len(rows) > 1 else None)
  out = {
      "chosen": rows[0]["setting"],
      "criterion": "mean validation HR@20 of CopyAttack over items and seeds",
      "settings": rows,
      "references": {n: {"HR@20": summary(n)["HR@20"],
                         "per_item_HR@20": per_item(n),
                         "queries_total": summary(n)["queries_total"]}
                     for n in REFERENCES if n in res["methods"]},
      "random_numbers": "common: every setting runs as method 0 of its own "
                        "call, so all see the same keys",
      "wilcoxon_best_vs_runner_up": (
          None if d is None else 1.0 if not d.any()
          else float(stats.wilcoxon(d).pvalue)),
      "validation_items": [cd.item_ids[i] for i in items],
      "query_budget": cfg.attack.query_budget, "n_seeds": cfg.n_seeds,
      "seed": cfg.seed, "grid": {k: list(v) for k, v in GRID.items()},
      "estimators": ESTIMATORS,
      "timings_s": res["timings_s"],
  }
  cache.atomic_write_text(workdir / "selection.json",
                          json.dumps(out, indent=2))
  return out
