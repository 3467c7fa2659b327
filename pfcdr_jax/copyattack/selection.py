"""Attack settings chosen on validation items (never on the scored ones).

``run_selection`` attacks the validation side of ``pipeline.item_split``
with CopyAttack under every setting of ``GRID`` (policy sharing, the
REINFORCE baseline and credit, the learning rate, greedy vs sampled final
attack), all at the run's query budget, next to TargetAttack100 and its
best-of-trials variant, and picks the setting with the highest mean
validation HR@20. The chosen values become the presets of
``experiments/configs/copyattack.py`` (a test holds the two equal), so Table 2
scores test items with settings its items never influenced.
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
  cfg = dataclasses.replace(
      cfg, data=dataclasses.replace(cfg.data, item_set="validation"))
  cd = data_lib.align_platforms(*pipeline.load_platforms(cfg.data, cfg.seed))
  items = pipeline.target_items(cd, cfg.data, cfg.seed)
  setup = pipeline.prepare(cfg, cd)
  tr, data, _ = pipeline.build_attacker(setup, cfg.tree.depth, cfg.seed,
                                        cfg.tree.kmeans_iters)
  table = methods_lib.table2_methods(cfg.attack)
  settings = grid_settings()
  run = functools.partial(pipeline.run_methods, setup, items, tr=tr, data=data,
                          seed=cfg.seed, n_neg=cfg.evaluation.n_neg,
                          n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
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
    timings = out["timings_s"]
    res["timings_s"].update({k: v for k, v in timings.items()
                             if k != "attacks_total_s"})
    res["timings_s"]["attacks_total_s"] += timings["attacks_total_s"]

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
  d = np.subtract(rows[0]["per_item_HR@20"], rows[1]["per_item_HR@20"])
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
          1.0 if not d.any() else float(stats.wilcoxon(d).pvalue)),
      "validation_items": [cd.item_ids[i] for i in items],
      "query_budget": cfg.attack.query_budget, "n_seeds": cfg.n_seeds,
      "seed": cfg.seed, "grid": {k: list(v) for k, v in GRID.items()},
      "estimators": ESTIMATORS,
      "timings_s": res["timings_s"],
  }
  cache.atomic_write_text(workdir / "selection.json",
                          json.dumps(out, indent=2))
  return out
