"""Table 2 of the paper as markdown: every method of the run, each learned row after its
untrained twin, with v*'s full-catalogue percentile and the queries each
attack spent."""
from __future__ import annotations

from pfcdr_jax.copyattack import evaluate
from pfcdr_jax.copyattack import runner
from pfcdr_jax.infra import markdown

TABLE2_ORDER = ("Without Attack", "RandomAttack", "TargetAttack40",
                "TargetAttack70", "TargetAttack100", "TargetAttack100-BestOf",
                "PolicyNetwork",
                "CopyAttack-Masking", "CopyAttack-Length", "CopyAttack")


def _queries(m: dict) -> str:
  """What an attack spent per target item: training (or trial) queries plus
  the final attack's."""
  if "queries_total" not in m:
    return "0"
  return (f"{m['queries_total']:.0f} ({m['queries_train']:.0f} + "
          f"{m['queries_final']:.0f})")


def table2_markdown(methods: dict, dataset: str = "ML100K-ML1M",
                    sanity: dict | None = None) -> str:
  """Table 2 of the paper for our run, each learned row after its untrained
  twin, with v*'s mean full-catalogue percentile and its 10-90 % spread."""
  cols = evaluate.metric_names()
  order = []
  for n in TABLE2_ORDER:
    order += [n + runner.UNTRAINED, n]
  body = []
  for i, name in enumerate(n for n in order if n in methods):
    m = methods[name]
    pct = (f"{m['percentile']:.3f} ({m['percentile_p10']:.2f}-"
           f"{m['percentile_p90']:.2f})" if "percentile" in m else "")
    label = name
    if sanity and name in sanity and not sanity[name]["ok"]:
      label = f"{name} ⚠"  # failed the gate (analysis_stats.sanity)
    body.append([dataset if i == 0 else "", label]
                + [f"{m[c]:.4f}" for c in cols]
                + [pct, f"{m['avg_items_per_profile']:.0f}", _queries(m)])
  header = (["Dataset", "Algorithms"] + list(cols)
            + ["percentile (p10-p90)", "# Average Items per User Profile",
               "queries / item (train + final)"])
  lines = markdown.table(header, body)
  if sanity and any(not r["ok"] for r in sanity.values()):
    lines.append("")
    lines.append("⚠ failed the sanity gate: not clearly above its untrained "
                 "policy or above no attack (mean per-item HR@20 difference "
                 "minus 2 standard errors <= 0).")
  return "\n".join(lines)
