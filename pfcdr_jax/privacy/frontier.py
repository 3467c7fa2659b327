"""The privacy-utility frontier: every method x budget a point (cold-start MAE, leakage),
aggregated over seeds, with the Pareto-optimal points marked.

Input: one record per seed (``frontier_study.seed_record``): per row ``name``,
``mae``, ``unit`` (``units.Unit`` as a dict) and ``leakage`` (``leakage.attack_transfer``).
Seeds are the unit of every interval: each seed re-draws the split, every model, every
noise draw and the attacker's holdout. Intervals are two-sided 95 % Student-t over
seeds; a point's leakage is, per seed, its largest advantage over the quantities
(``leakage``), then averaged.

Pareto (on the means): point p dominates q when p's MAE and leakage are both no
higher than q's and one is lower. ``dominated_by`` lists every point that dominates
q; ``pareto`` is True when none does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from pfcdr_jax.infra import figures
from pfcdr_jax.infra import markdown as markdown_lib


def ci95(values) -> float:
  """Half-width of the two-sided 95 % t-interval of the mean (nan with < 2 values)."""
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
  if v.size < 2:
    return float("nan")
  return float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def _mean(values) -> float:
  v = [x for x in values if x is not None and np.isfinite(x)]
  return float(np.mean(v)) if v else float("nan")


def _mode(values):
  vals, counts = np.unique(np.asarray(values, dtype=object).astype(str), return_counts=True)
  return str(vals[np.argmax(counts)]) if len(vals) else None


def point(name: str, rows: list[dict]) -> dict:
  """One frontier point from the per-seed rows of one method / budget.

  Returns:
    ``{"name", "method", "epsilon" (user-level), "unit", "epsilon_native", "delta",
    "unit_how", "unnoised", "seeds", "mae": {"mean", "ci95", "per_seed"},
    "leakage": {quantity: {"attacker", "score", "chance", "advantage", "ci95",
    "control", "per_seed"}}, "leakage_max", "leakage_max_ci95",
    "leakage_max_per_seed", "leakage_argmax", "leakage_reused_seeds"}``; the last lists
    the seeds whose leakage was taken from an earlier run's file (``--reuse_leakage``).
  """
  base = name.partition("(")[0].strip()
  # The weakest guarantee over the seeds (PriCDR-S's depends on the seed's projection).
  unit = max((r["unit"] for r in rows), key=lambda u: u["user_epsilon"])
  quantities = sorted({q for r in rows for q in r["leakage"]["quantities"]})
  leak = {}
  for q in quantities:
    res = [r["leakage"]["quantities"][q] for r in rows if q in r["leakage"]["quantities"]]
    adv = [x["advantage"] for x in res]
    leak[q] = {"attacker": _mode([x["attacker"] for x in res]),
               "score": _mean([x["score"] for x in res]),
               "chance": _mean([x["chance"] for x in res]),
               "advantage": _mean(adv), "ci95": ci95(adv),
               "control": _mean([x["control"] for x in res]),
               "per_seed": adv}
  per_seed_max = [r["leakage"]["leakage_max"] for r in rows]
  maes = [r["mae"] for r in rows]
  means = {q: v["advantage"] for q, v in leak.items() if np.isfinite(v["advantage"])}
  return {"name": name, "method": base, "epsilon": unit["user_epsilon"],
          "unit": "user", "epsilon_native": unit["epsilon"], "unit_native": unit["native"],
          "delta": unit["user_delta"], "unit_how": unit["how"], "unnoised": unit["unnoised"],
          "seeds": [r["seed"] for r in rows],
          "mae": {"mean": _mean(maes), "ci95": ci95(maes), "per_seed": maes},
          "leakage": leak, "leakage_max": _mean(per_seed_max),
          "leakage_max_ci95": ci95(per_seed_max), "leakage_max_per_seed": per_seed_max,
          "leakage_argmax": max(means, key=means.get) if means else None,
          "leakage_reused_seeds": [r["seed"] for r in rows if r.get("leakage_reused")]}


def mark_pareto(points: list[dict]) -> list[dict]:
  """Sets ``pareto`` and ``dominated_by`` on every point (module docstring)."""
  ok = lambda p: np.isfinite(p["mae"]["mean"]) and np.isfinite(p["leakage_max"])
  for q in points:
    q["dominated_by"] = [
        p["name"] for p in points if p is not q and ok(p) and ok(q)
        and p["mae"]["mean"] <= q["mae"]["mean"] and p["leakage_max"] <= q["leakage_max"]
        and (p["mae"]["mean"] < q["mae"]["mean"] or p["leakage_max"] < q["leakage_max"])]
    q["pareto"] = bool(ok(q) and not q["dominated_by"])   # unmeasured: never on it
  return points


def aggregate(records: list[dict]) -> list[dict]:
  """Frontier points from per-seed records (rows matched by name, in first-seed order)."""
  order, by_name = [], {}
  for rec in records:
    for row in rec["rows"]:
      if row["name"] not in by_name:
        order.append(row["name"])
        by_name[row["name"]] = []
      by_name[row["name"]].append({**row, "seed": rec["seed"]})
  return mark_pareto([point(n, by_name[n]) for n in order])


def paired(a: list[float], b: list[float]) -> dict:
  """Paired comparison over seeds: mean difference a - b, its CI, t-test and Wilcoxon."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d = a - b
  out = {"n": int(d.size), "diff": float(d.mean()), "ci95": ci95(d),
         "a_lower": int(np.sum(d < 0))}
  if d.size >= 2 and np.any(d != 0):
    out["p_ttest"] = float(stats.ttest_rel(a, b).pvalue)
    out["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue)
  else:
    out["p_ttest"] = out["p_wilcoxon"] = float("nan")
  return out


def _fmt(v, digits=4):
  if v is None or (isinstance(v, float) and not np.isfinite(v)):
    return "inf" if isinstance(v, float) and v == math.inf else "-"
  return f"{v:.{digits}f}"


def _eps(p) -> tuple[str, str]:
  native = "-" if p["epsilon_native"] is None else f"{p['epsilon_native']:g} ({p['unit_native']})"
  user = "∞" if p["epsilon"] == math.inf else f"{p['epsilon']:.3g}"
  return native, user


def markdown(out: dict) -> str:
  """The frontier table, the claims and what every column means."""
  pts = out["points"]
  qs = sorted({q for p in pts for q in p["leakage"]})
  head = ["method", "ε native (unit)", "user-level ε (δ=1e-5)", "cold MAE ± ci95",
          "leakage ± ci95", "strongest on", *[f"adv. {q}" for q in qs], "Pareto",
          "dominated by"]
  rows = []
  for p in sorted(pts, key=lambda p: p["mae"]["mean"]):
    native, user = _eps(p)
    rows.append([p["name"], native, user,
                 f"{_fmt(p['mae']['mean'])} ± {_fmt(p['mae']['ci95'])}",
                 f"{_fmt(p['leakage_max'], 3)} ± {_fmt(p['leakage_max_ci95'], 3)}",
                 p["leakage_argmax"] or "-",
                 *[_fmt(p["leakage"].get(q, {}).get("advantage"), 3) for q in qs],
                 "**yes**" if p["pareto"] else "no", ", ".join(p["dominated_by"][:4])
                 + (" …" if len(p["dominated_by"]) > 4 else "")])
  lines = [f"# Privacy-utility frontier, {out['task']} (β = {out['beta']:g}, "
           f"{out['base_model']}, seeds {out['seeds']})", "", "Command:", "",
           f"    {out['command']}", ""]
  lines += markdown_lib.table(head, rows)
  lines += ["", "Leakage = per seed the largest *advantage* over the quantities attacked "
            "(``pfcdr_jax/privacy/leakage.py``): max(0, (score − chance) / (1 − chance)) "
            "of the strongest attacker, chosen on the attacker's own held-out auxiliary "
            "users among ridge / MLP / gradient-boosted trees (membership: ridge / MLP / "
            "the item map; n_ratings of PFCDR+: also the exact kappa-ratio inversion); "
            "then the mean over seeds ± the 95 % t-interval. Quantities: embedding (R² "
            "of U_i), n_ratings (R² of log(1+n_u)), mean_rating (R²), membership (AUC of "
            "rated vs unrated items, chance = popularity ranking), attributes (gender "
            "AUC, age / occupation accuracy, chance = 0.5 / majority). Attacked users: "
            f"{out['users']['attacked']} cold-start test users; the attacker's auxiliary "
            f"users: {out['users']['aux']} bridge users (mean over seeds).",
            "", "User-level ε: the guarantee when a user's whole source profile may change "
            "(``pfcdr_jax/privacy/units.py``); ∞ = no finite user-level guarantee (no "
            "mechanism, or per-rating DP that releases the counts exactly). Pareto on the "
            "means: a point is dominated when another has MAE and leakage no higher, one "
            "lower.", ""]
  reused = [p for p in pts if p.get("leakage_reused_seeds")]
  if reused:
    lines += ["Leakage taken from an earlier run's seed files (``--reuse_leakage``: the same "
              "MAE bit for bit, the same release settings and vectors), not attacked "
              "again: " + "; ".join(f"{p['name']} (seeds {p['leakage_reused_seeds']})"
                                     for p in reused) + ".", ""]
  lines += ["## Controls (chance, measured)", "",
            "Per quantity, the chosen attacker on a derangement of the rows (each user gets "
            "another user's vector): (control − chance) / (1 − chance), mean over seeds, "
            "*not* clipped at 0. A fitted attacker should sit near 0; a fixed one "
            "(kappa_ratio, direct) can sit far below. The floor of the whole pipeline "
            "is the ItemMean row's leakage (pure noise attacked end to end).", ""]
  ctrl = []
  for p in pts:
    cells = []
    for q in qs:
      v = p["leakage"].get(q)
      ok = v and np.isfinite(v["control"]) and np.isfinite(v["chance"])
      cells.append(_fmt((v["control"] - v["chance"]) / max(1 - v["chance"], 1e-12), 3)
                   if ok else "-")
    ctrl.append([p["name"], *cells])
  lines += markdown_lib.table(["method", *[f"control {q}" for q in qs]], ctrl)
  lines += ["", "## Claims", ""]
  for c in out.get("claims", []):
    lines.append(f"- {c['text']}")
  lines += ["", "## What each method sends without noise", ""]
  seen = set()
  for p in pts:
    if p["method"] in seen:
      continue
    seen.add(p["method"])
    lines.append(f"- **{p['method']}** ({p['unit_native']}-level; {p['unit_how']}): "
                 f"{p['unnoised']}")
  return "\n".join(lines) + "\n"


def plot(out: dict, path: str | Path) -> None:
  """Cold-start MAE against leakage, one marker per point with both intervals; the
  Pareto-optimal points joined by a line."""
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(8.5, 6))
  families: dict[str, list] = {}
  for p in out["points"]:
    families.setdefault(p["method"], []).append(p)
  palette = plt.get_cmap("tab20").colors   # 20 distinct colours: no family shares one
  for n, (fam, pts) in enumerate(families.items()):
    pts = sorted(pts, key=lambda p: p["leakage_max"])
    xs = [p["leakage_max"] for p in pts]
    ys = [p["mae"]["mean"] for p in pts]
    xe = [0 if not np.isfinite(p["leakage_max_ci95"]) else p["leakage_max_ci95"] for p in pts]
    ye = [0 if not np.isfinite(p["mae"]["ci95"]) else p["mae"]["ci95"] for p in pts]
    line = ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt="o-" if len(pts) > 1 else "o", ms=4,
                       capsize=2, lw=1, label=fam, color=palette[(2 * n) % 20 + (n // 10) % 2])
    color = line[0].get_color()
    for p in pts:
      if p["epsilon_native"] is not None:
        ax.annotate(f"ε={p['epsilon_native']:g}", (p["leakage_max"], p["mae"]["mean"]),
                    fontsize=6, color=color, xytext=(3, -8), textcoords="offset points")
  front = sorted((p for p in out["points"] if p["pareto"]), key=lambda p: p["leakage_max"])
  ax.plot([p["leakage_max"] for p in front], [p["mae"]["mean"] for p in front], "k--",
          lw=0.8, label="Pareto frontier")
  ax.set_xlabel("leakage: largest advantage of the strongest attacker (0 = chance)")
  ax.set_ylabel("cold-start MAE (lower is better)")
  ax.legend(fontsize=7, ncol=2)
  figures.save_png(fig, path, f"Privacy-utility frontier, {out['task']} β={out['beta']:g}, "
                   f"{len(out['seeds'])} seeds (95 % t-intervals)")
