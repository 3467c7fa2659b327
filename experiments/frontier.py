r"""The privacy-utility frontier of one task: every method x budget a point (cold-start
MAE, leakage under the strongest attacker), seeds as the unit, Pareto points marked.

  python experiments/frontier.py --task=comedy2drama --num_seeds=10   # committed
  python experiments/frontier.py --task=comedy2drama --quick --workdir=/tmp/f  # smoke

Per seed (``pfcdr_jax/privacy/frontier_study.py``): the run's transfers (PFCDR,
PFCDR-Bilinear, EMCDR, DP-EMCDR(eps), PriCDR-S, FedCDR, PF2CDR, PPGenCDR,
PFCDR-DP(eps), PFCDR+, PFCDR+(eps), ItemMean), their MAEs (stage cache shared with
Table 1 via --cache_dir), user-level units (``privacy/units.py``) and leakage
(``privacy/leakage.py``); one JSON per seed in <workdir>/seeds/, skipped when present,
so a killed run resumes where it stopped. Then ``privacy/frontier.py`` aggregates:
<workdir>/frontier.json ({"points": [...], "claims": [...], ...}), frontier.md,
frontier.png, and frontier_long.csv (task, beta, method, seed, metric, value).
"""

import csv
import json
from pathlib import Path

from absl import flags
import numpy as np

import cli
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import significance
from pfcdr_jax.privacy import frontier
from pfcdr_jax.privacy import frontier_study

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
flags.DEFINE_float("beta", 0.2, "Fraction of overlap users made cold-start (test).")
flags.DEFINE_integer("num_seeds", 10, "Seeds 0..n-1 (each: split, models, noise, attacker).",
                     lower_bound=1)
flags.DEFINE_list("epsilons", ["0.5", "1", "5", "10", "20", "50", "100"],
                  "Budgets of DP-EMCDR, PFCDR-DP, PFCDR-Bilinear-DP and PFCDR+(eps) (each "
                  "method's native unit; the table converts to user level).")
flags.DEFINE_bool("quick", False, "Short pretraining, quick baselines, one budget, two "
                  "seeds (smoke run).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/frontier-<task>).")
flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache (shared with Table 1).")
flags.DEFINE_string("reuse_leakage", None, "Directory of earlier seed files (same task, "
                    "beta and seeds): rows with a bit-identical MAE take their leakage "
                    "from there instead of attacking again (marked leakage_reused).")
flags.DEFINE_string("carry", None, "A committed frontier JSON (its _long.csv beside it) "
                    "of the same task, beta and seeds: every row but --rows is carried from "
                    "its per-seed values; the --rows are computed afresh per seed (under "
                    "<workdir>/rows/). A full seed file in <workdir>/seeds is used as it "
                    "is, and its carried rows must equal it exactly (checked).")
flags.DEFINE_list("rows", [], "With --carry: the rows computed afresh (e.g. FedCDR).")
flags.DEFINE_list("only_seeds", [], "Worker mode: compute only these seeds' files (in "
                  "this order, skipping those present) and write no aggregate; a later "
                  "run without the flag aggregates. Workers may share a --workdir.")
FLAGS = flags.FLAGS


def ours_names(points: list[dict]) -> list[str]:
  """Our frontier points: PFCDR-Bilinear and PFCDR-Bilinear-DP at each budget."""
  return [p["name"] for p in points if p["name"] == frontier_study.OURS
          or p["name"].startswith(frontier_study.OURS_DP + "(")]


def _paired_on_common_seeds(ours: dict, ref: dict) -> dict:
  """``frontier.paired`` of two points' MAEs over the seeds both ran (ours minus ref)."""
  seeds = [s for s in ours["seeds"] if s in ref["seeds"]]
  mae = lambda p: [p["mae"]["per_seed"][p["seeds"].index(s)] for s in seeds]
  return frontier.paired(mae(ours), mae(ref))


def _holm(family: list[dict]) -> None:
  """Sets ``p_holm`` and ``family`` (its size) on each contrast of one Holm family."""
  for c, p_holm in zip(family, significance.holm([c["p_ttest"] for c in family])
                       if family else []):
    c["p_holm"], c["family"] = float(p_holm), len(family)


def _claims(points: list[dict], refs: dict[str, list[float]]) -> list[dict]:
  """The acceptance contrasts of issue 29, computed (not asserted).

  One paired contrast against PFCDR per point of ours (:func:`ours_names`), Holm-
  corrected over that family; one against ItemMean per user-level-DP point of ours
  (its own Holm family: does the private release beat knowing nothing?); then whether
  one of them meets the acceptance (Pareto-optimal, leakage interval not above PFCDR's,
  lower MAE at Holm p < 0.05).
  """
  by = {p["name"]: p for p in points}
  out = []
  pf = by.get("PFCDR")
  ci = lambda p: p["leakage_max_ci95"] if np.isfinite(p["leakage_max_ci95"]) else 0.0
  mine = []
  for name in (ours_names(points) if pf else []):
    ours = by[name]
    t = _paired_on_common_seeds(ours, pf)
    above = ours["leakage_max"] - ci(ours) > pf["leakage_max"] + ci(pf)
    mine.append({"id": "ours_vs_pfcdr" if name == frontier_study.OURS
                 else f"ours_vs_pfcdr:{name}", **t, "ours": name, "pareto": ours["pareto"],
                 "dominated_by": list(ours["dominated_by"]),
                 "leakage_ours": ours["leakage_max"], "leakage_ours_ci95": ci(ours),
                 "leakage_pfcdr": pf["leakage_max"],
                 "leakage_interval_above_pfcdr": bool(above)})
  _holm(mine)
  for c in mine:
    c["text"] = (f"{c['ours']} vs PFCDR over {c['n']} seeds: MAE Δ = {c['diff']:+.4f} ± "
                 f"{c['ci95']:.4f} (lower on {c['a_lower']}/{c['n']}; paired t p = "
                 f"{c['p_ttest']:.2g}, Holm over {len(mine)} = {c['p_holm']:.2g}, "
                 f"Wilcoxon p = {c['p_wilcoxon']:.2g}); leakage {c['leakage_ours']:.3f} ± "
                 f"{c['leakage_ours_ci95']:.3f} vs PFCDR's {c['leakage_pfcdr']:.3f}; "
                 f"Pareto-optimal: {'yes' if c['pareto'] else 'no'}"
                 + (f" (dominated by {', '.join(c['dominated_by'])})"
                    if c["dominated_by"] else "") + ".")
    out.append(c)
  floor = by.get(frontier_study.NO_TRANSFER)
  dp = [n for n in ours_names(points) if n.startswith(frontier_study.OURS_DP + "(")]
  vs_floor = []
  for name in (dp if floor else []):
    ours = by[name]
    vs_floor.append({"id": f"ours_dp_vs_itemmean:{name}", "ours": name,
                     **_paired_on_common_seeds(ours, floor),
                     "leakage_ours": ours["leakage_max"], "pareto": ours["pareto"]})
  _holm(vs_floor)
  for c in vs_floor:
    c["text"] = (f"{c['ours']} vs ItemMean (no transfer) over {c['n']} seeds: MAE Δ = "
                 f"{c['diff']:+.4f} ± {c['ci95']:.4f} (lower on {c['a_lower']}/{c['n']}; "
                 f"paired t p = {c['p_ttest']:.2g}, Holm over {len(vs_floor)} = "
                 f"{c['p_holm']:.2g}); leakage {c['leakage_ours']:.3f}; Pareto-optimal: "
                 f"{'yes' if c['pareto'] else 'no'}.")
    out.append(c)
  if mine:
    meets = [c["ours"] for c in mine if c["pareto"] and not c["leakage_interval_above_pfcdr"]
             and c["diff"] < 0 and c["p_holm"] < 0.05]
    out.append({"id": "acceptance_pareto_and_better", "meets": meets,
                "text": ("Points of ours that are Pareto-optimal, with leakage not above "
                         "PFCDR's and lower MAE than PFCDR at Holm p < 0.05: "
                         + (", ".join(meets) if meets else "none") + ".")})
  if pf and refs.get("PTUPCDR"):
    pt = float(np.mean(refs["PTUPCDR"]))
    level = pf["leakage_max"] + pf["leakage_max_ci95"] if np.isfinite(
        pf["leakage_max_ci95"]) else pf["leakage_max"]
    within = [p for p in points if p["leakage_max"] <= level]
    best = min(within, key=lambda p: p["mae"]["mean"]) if within else None
    reaches = best is not None and best["mae"]["mean"] <= pt
    private = [p for p in within if np.isfinite(p["epsilon"]) and p["epsilon"] > 0]
    best_dp = min(private, key=lambda p: p["mae"]["mean"]) if private else None
    out.append({"id": "ptupcdr_reference", "ptupcdr_mae": pt, "pfcdr_leakage_upper": level,
                "best_at_that_leakage": best and best["name"], "reaches": bool(reaches),
                "best_user_dp": best_dp and best_dp["name"],
                "text": (f"PTUPCDR (non-private, reads the source embeddings; no leakage "
                         f"point) MAE {pt:.4f}. Best point with leakage ≤ PFCDR's upper "
                         f"bound ({level:.3f}): "
                         + (f"{best['name']} at {best['mae']['mean']:.4f}" if best else "none")
                         + (" — reaches PTUPCDR's MAE." if reaches else
                            " — does not reach PTUPCDR's MAE.")
                         + (f" Best with a finite user-level ε: {best_dp['name']} at "
                            f"{best_dp['mae']['mean']:.4f} (user ε = {best_dp['epsilon']:.3g})."
                            if best_dp else " No point with a finite user-level ε is there."))})
  return out


def _carried_rows(path: Path, seeds: list[int], fresh: set[str]
                  ) -> tuple[dict, dict[int, list[dict]]]:
  """(the carried JSON, {seed: its rows but ``fresh``, rebuilt from the _long.csv})."""
  old = cache_lib.read_json(path)
  csv_path = path.with_name(path.stem + "_long.csv")
  vals: dict = {}
  with open(csv_path, newline="") as f:
    for r in csv.DictReader(f):
      vals.setdefault((r["method"], int(r["seed"])), {})[r["metric"]] = float(r["value"])
  if old["seeds"] != seeds:
    raise ValueError(f"--carry={path}: seeds {old['seeds']}, this run {seeds}")
  rows = {s: [] for s in seeds}
  for p in old["points"]:
    for s in seeds:
      if p["name"] in fresh:
        rows[s].append({"name": p["name"], "fresh": True})   # filled in by the caller
        continue
      v = vals[(p["name"], s)]
      q = {k: {"attacker": p["leakage"][k]["attacker"], "score": v[f"score_{k}"],
               "chance": v[f"chance_{k}"], "advantage": v[f"advantage_{k}"],
               "control": v[f"control_{k}"]} for k in p["leakage"]}
      adv = {k: x["advantage"] for k, x in q.items() if np.isfinite(x["advantage"])}
      unit = {"native": p["unit_native"], "epsilon": p["epsilon_native"],
              "delta": p["delta"], "user_epsilon": p["epsilon"], "user_delta": p["delta"],
              "how": p["unit_how"], "unnoised": p["unnoised"]}
      rows[s].append({"name": p["name"], "mae": v["mae"], "unit": unit, "carried": True,
                      "leakage_reused": s in p["leakage_reused_seeds"],
                      "leakage": {"quantities": q, "leakage_max": v["leakage_max"],
                                  "leakage_argmax": max(adv, key=adv.get) if adv else None}})
  return old, rows


def _same_row(full: dict, carried: dict) -> bool:
  """A full run's row equals a carried one: MAE, leakage and every quantity's numbers."""
  a, b = full["leakage"]["quantities"], carried["leakage"]["quantities"]
  return (full["mae"] == carried["mae"]
          and full["leakage"]["leakage_max"] == carried["leakage"]["leakage_max"]
          and set(a) == set(b)
          and all(a[k][m] == b[k][m] or (np.isnan(a[k][m]) and np.isnan(b[k][m]))
                  for k in a for m in ("score", "chance", "advantage", "control")))


def carry_records(workdir: Path, base, seeds: list[int], run_key: str) -> tuple[list, dict]:
  """Per-seed records of a --carry run and what was carried, checked and recomputed."""
  fresh = set(FLAGS.rows)
  if not fresh:
    raise ValueError("--carry needs --rows (the rows to compute afresh)")
  if fresh - set(frontier_study.ALONE):
    raise ValueError(f"--rows: {sorted(fresh - set(frontier_study.ALONE))} cannot be "
                     f"computed alone (only {sorted(frontier_study.ALONE)})")
  old, carried = _carried_rows(Path(FLAGS.carry), seeds, fresh)
  records, full_seeds = [], []
  for seed in seeds:
    full_path = workdir / "seeds" / f"seed{seed}.json"
    if full_path.exists():
      rec = json.loads(full_path.read_text())
      if rec.get("run_key") != run_key:
        raise ValueError(f"{full_path}: made with other settings")
      by_name = {r["name"]: r for r in rec["rows"]}
      for r in carried[seed]:
        if not r.get("fresh") and not _same_row(by_name[r["name"]], r):
          raise ValueError(f"seed {seed}: the full run's {r['name']} differs from the "
                           f"carried one ({FLAGS.carry})")
      records.append(rec)
      full_seeds.append(seed)
      continue
    path = workdir / "rows" / f"seed{seed}.json"
    if path.exists():
      part = json.loads(path.read_text())
    else:
      cfg = config_lib.override(base, {"seed": seed})
      part = frontier_study.named_rows(cfg, workdir, tuple(FLAGS.rows), FLAGS.quick)
      part["run_key"] = run_key
      path.parent.mkdir(parents=True, exist_ok=True)
      cache_lib.atomic_write_text(path, json.dumps(cache_lib.jsonable(part), indent=1))
    if part.get("run_key") != run_key:
      raise ValueError(f"{path}: made with other settings")
    new = {r["name"]: r for r in part["rows"]}
    rows = [new[r["name"]] if r.get("fresh") else r for r in carried[seed]]
    refs = {k: v["per_seed"][old["seeds"].index(seed)] for k, v in old["references"].items()}
    records.append({"seed": seed, "task": old["task"], "beta": old["beta"], "rows": rows,
                    "references": refs, "users": part["users"]})
    print(f"seed {seed}: rows {sorted(fresh)} computed, the rest carried")
  info = {"from": str(FLAGS.carry), "command_of_carried": old["command"],
          "rows_computed": sorted(fresh), "seeds_run_in_full": full_seeds,
          "text": (f"Rows {', '.join(sorted(fresh))} computed afresh for every seed; every "
                   f"other row carried from {FLAGS.carry} (its per-seed values, made by "
                   f"`{old['command']}`). Seeds run in full with this code: "
                   f"{full_seeds or 'none'}; there every carried row equals the full run's "
                   "(MAE, leakage and each quantity's score, chance, advantage and "
                   "control; checked).")}
  return records, info


def long_rows(records: list[dict]) -> list[str]:
  """``task,beta,method,seed,metric,value`` rows of every per-seed number."""
  lines = []
  for rec in records:
    for row in rec["rows"]:
      vals = {"mae": row["mae"], "leakage_max": row["leakage"]["leakage_max"]}
      for q, v in row["leakage"]["quantities"].items():
        vals[f"advantage_{q}"] = v["advantage"]
        vals[f"score_{q}"] = v["score"]
        vals[f"chance_{q}"] = v["chance"]
        vals[f"control_{q}"] = v["control"]
      for m, v in sorted(vals.items()):
        lines.append(f"{rec['task']},{rec['beta']:g},\"{row['name']}\",{rec['seed']},{m},{v!r}")
    for name, v in sorted(rec["references"].items()):
      lines.append(f"{rec['task']},{rec['beta']:g},{name},{rec['seed']},mae,{v!r}")
  return sorted(lines)


def main(argv):
  del argv
  epsilons = cli.epsilons(FLAGS.epsilons)
  if FLAGS.quick and not FLAGS["epsilons"].present:
    epsilons = (1.0,)
  num_seeds = 2 if FLAGS.quick and not FLAGS["num_seeds"].present else FLAGS.num_seeds
  base = cli.pfcdr_config()
  base = config_lib.override(base, {"split.beta": FLAGS.beta})
  task = base.data.task
  workdir = Path(FLAGS.workdir or f"runs/frontier-{task}")
  (workdir / "seeds").mkdir(parents=True, exist_ok=True)
  # What a seed file must have been made with to be reused (everything but the seed).
  run_key = cache_lib.stable_hash(config_lib.override(base, {"seed": 0}), list(epsilons),
                                  FLAGS.quick, "frontier-v1")
  try:
    only = [int(x) for x in FLAGS.only_seeds]
  except ValueError:
    raise ValueError(f"--only_seeds={','.join(FLAGS.only_seeds)}: expected integers") from None
  if any(not 0 <= x < num_seeds for x in only):
    raise ValueError(f"--only_seeds: every seed must be in 0..{num_seeds - 1}")
  if FLAGS.carry:
    carry = Path(FLAGS.carry)
    long = carry.with_name(carry.stem + "_long.csv")
    for f in (carry, long):
      if not f.is_file():
        raise ValueError(f"--carry={FLAGS.carry}: no such file {f}")
  elif FLAGS.rows:
    raise ValueError("--rows needs --carry (the frontier whose other rows are carried)")
  if FLAGS.reuse_leakage and not Path(FLAGS.reuse_leakage).is_dir():
    raise ValueError(f"--reuse_leakage={FLAGS.reuse_leakage}: no such directory")
  records = []
  carried = None
  if FLAGS.carry:
    if only:
      raise ValueError("--carry and --only_seeds do not go together")
    records, carried = carry_records(workdir, base, list(range(num_seeds)), run_key)
  for seed in ([] if FLAGS.carry else (only or range(num_seeds))):
    path = workdir / "seeds" / f"seed{seed}.json"
    if path.exists():
      rec = json.loads(path.read_text())
      if rec.get("run_key") != run_key:
        raise ValueError(f"{path}: made with other settings (epsilons, beta, quick or "
                         "the run's config differ); use another --workdir or delete it")
      records.append(rec)
      continue
    cfg = config_lib.override(base, {"seed": seed})
    reuse = None
    if FLAGS.reuse_leakage:
      old = Path(FLAGS.reuse_leakage) / f"seed{seed}.json"
      if old.exists():
        prev = cache_lib.read_json(old)
        if (prev.get("task"), prev.get("beta"), prev.get("seed")) != (task, FLAGS.beta, seed):
          raise ValueError(f"{old}: another task, beta or seed; not reused")
        reuse = {r["name"]: r for r in prev["rows"]}
    rec = frontier_study.seed_record(cfg, workdir, epsilons, quick=FLAGS.quick, reuse=reuse)
    rec["run_key"] = run_key
    cache_lib.atomic_write_text(path, json.dumps(cache_lib.jsonable(rec), indent=1))
    print(f"seed {seed}: {rec['timings_s']['total']} s")
    records.append(rec)
  if only:
    print(f"worker: seeds {only} done in {workdir}/seeds; run without --only_seeds to "
          "aggregate")
    return
  points = frontier.aggregate(records)
  refs = {}
  for rec in records:
    for k, v in rec["references"].items():
      refs.setdefault(k, []).append(v)
  out = {"task": task, "beta": FLAGS.beta, "base_model": base.pretrain.base_model,
         "seeds": [r["seed"] for r in records], "epsilons": list(epsilons),
         "command": cli.command_line(), "quick": FLAGS.quick,
         "users": {k: float(np.mean([r["users"][k] for r in records])) for k in ("aux", "attacked")},
         "points": points, "references": {k: {"mean": float(np.mean(v)),
                                               "ci95": frontier.ci95(v), "per_seed": v}
                                           for k, v in refs.items()}}
  out["claims"] = _claims(points, refs)
  if carried:
    out["carried"] = carried
  cache_lib.atomic_write_text(workdir / "frontier.json",
                              json.dumps(cache_lib.jsonable(out), indent=1))
  md = frontier.markdown(out)
  if carried:
    md += "\n" + carried["text"] + "\n"
  cache_lib.atomic_write_text(workdir / "frontier.md", md)
  cache_lib.atomic_write_text(workdir / "frontier_long.csv",
                              "task,beta,method,seed,metric,value\n"
                              + "\n".join(long_rows(records)) + "\n")
  frontier.plot(out, workdir / "frontier.png")
  print((workdir / "frontier.md").read_text())
  print(f"outputs: {workdir}/ (frontier.json, frontier.md, frontier.png, frontier_long.csv)")


if __name__ == "__main__":
  cli.run(main)
