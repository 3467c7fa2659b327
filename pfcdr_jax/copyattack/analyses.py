"""The model analyses of Figures 3-5: CopyAttack across tree depths (3), item
popularity deciles (4) and budgets (5).

Each ``*_rows(cfg, setup, methods, items, metrics, attacker)`` attacks through
``runner.run_methods`` and returns the figure's rows (means over items plus
the per-item HR@20 that ``analysis_stats`` tests); ``attacker(depth=None)``
builds the clustering tree and attacker data (``pipeline._attacker``).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from pfcdr_jax.copyattack import analysis_stats
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import runner

BUDGET_METHODS = ("RandomAttack", "TargetAttack40", "TargetAttack70",
                  "TargetAttack100", "CopyAttack")
N_POPULARITY_GROUPS = 10


def depth_rows(cfg, setup, methods: dict, items: np.ndarray, metrics,
               attacker) -> list[dict]:
  """Figure 3: CopyAttack with trees of each depth of ``cfg.analysis``."""
  rows = []
  for d in cfg.analysis.depths:
    jax.clear_caches()  # one depth's executables at a time (memory mappings)
    tr, data, _ = attacker(depth=d)
    res = runner.run_methods(setup, items, _copyattack_only(methods), tr, data,
                      cfg.seed, cfg.evaluation.n_neg, metrics=metrics,
                      n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
    for name in ("CopyAttack", "CopyAttack-untrained"):
      rows.append(dict(depth=d, branching=tr.branching, method=name,
                       **res["methods"][name],
                       **analysis_stats.per_item_values(res, name)))
  return rows


def popularity_rows(cfg, setup, methods: dict, items: np.ndarray, metrics,
                    attacker) -> list[dict]:
  """Figure 4: CopyAttack on items of each target-popularity decile.

  Draws its own ``analysis.items_per_group`` items per decile among the items with at least one source profile (masking needs
  one; the others cannot be attacked and are counted in ``n_excluded``) and
  outside the validation items;
  items in fewer source profiles than the budget are kept and counted in
  ``n_below_budget``. One run over all drawn items (one shared policy), then
  the per-item rows are averaged per decile.
  """
  groups = data_lib.popularity_groups(setup.cd, N_POPULARITY_GROUPS)
  tr, data, _ = attacker()
  rng = np.random.default_rng(cfg.seed)
  src = setup.cd.source_counts()
  # ``items``: the validation items, on which settings were chosen.
  held = np.zeros(setup.cd.n_items, bool)
  held[items] = True
  drawn, info = [], {}
  for g in range(N_POPULARITY_GROUPS):
    pool = np.flatnonzero((groups == g) & (src >= 1) & ~held)
    n = min(cfg.analysis.items_per_group, len(pool))
    chosen = np.sort(rng.choice(pool, n, replace=False))
    drawn.append(chosen)
    info[g] = dict(group=g, n_items=int(n), pool=int(len(pool)),
                   n_excluded=int(((groups == g) & (src < 1)).sum()),
                   n_below_budget=int((src[chosen] < cfg.attack.budget).sum()),
                   mean_target_interactions=float(
                       setup.cd.target_counts()[chosen].mean()) if n else 0.0)
  all_items = np.concatenate(drawn).astype(np.int32)
  res = runner.run_methods(setup, all_items, _copyattack_only(methods), tr, data,
                    cfg.seed, cfg.evaluation.n_neg, metrics=metrics,
                    n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
  by_item = {r["item"]: r["methods"] for r in res["per_item"]}
  rows = []
  for g, chosen in enumerate(drawn):
    if not len(chosen):
      continue
    for name in ("CopyAttack", "CopyAttack-untrained", "Without Attack"):
      m = runner.mean_rows([by_item[int(i)][name] for i in chosen])
      rows.append(dict(info[g], method=name, **m,
                       items=[int(i) for i in chosen],
                       per_item_HR20=[by_item[int(i)][name]["HR@20"]
                                      for i in chosen]))
  return rows


def budget_rows(cfg, setup, methods: dict, items: np.ndarray, metrics,
                attacker) -> list[dict]:
  """Figure 5: the baselines and CopyAttack at each budget of the study."""
  tr, data, _ = attacker()
  rows = []
  for b in cfg.analysis.budgets:
    jax.clear_caches()  # one budget's executables at a time (memory mappings)
    sub = {n: dataclasses.replace(methods[n], budget=b)
           for n in BUDGET_METHODS if n in methods}
    res = runner.run_methods(setup, items, sub, tr, data, cfg.seed,
                      cfg.evaluation.n_neg, metrics=metrics,
                      n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
    for n, m in res["methods"].items():
      if n != "Without Attack":
        rows.append(dict(budget=b, method=n, **m,
                         **analysis_stats.per_item_values(res, n)))
  return rows


ANALYSES = {"depth": depth_rows, "popularity": popularity_rows,
            "budget": budget_rows}


def _copyattack_only(methods: dict) -> dict:
  return {"CopyAttack": methods["CopyAttack"]}
