"""The comparison as a table: markdown laid out like the paper's Table 1, and a wide CSV.

Each row of :func:`summary.summarize` becomes one line: mean +- std per method, **bold**
best, underlined second, ``*`` on the winner of a significant paired test over seeds,
``⚠`` on a method that failed its sanity gate; below the table, the significance tests,
the planned contrasts (raw and Holm-adjusted p-values, ``contrasts.adjust``) and the
settings chosen on the validation users.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import contrasts as contrasts_lib
from pfcdr_jax.harness.significance import ALPHA
from pfcdr_jax.harness.significance import SeedTest
from pfcdr_jax.harness.summary import FLOORS
from pfcdr_jax.harness.summary import GROUPS
from pfcdr_jax.harness.summary import Row
from pfcdr_jax.harness.summary import column_order
from pfcdr_jax.infra import markdown

SANITY_MARK = "⚠"


def _fmt(mean: float, std: float, n_seeds: int) -> str:
  return f"{mean:.4f} ± {std:.4f}" if n_seeds > 1 else f"{mean:.4f}"


def _cell_text(row: Row, m: str) -> str:
  text = _fmt(row.mean[m], row.std[m], row.n_seeds)
  if row.star == m:
    text += "*"
  if row.sanity.marked.get(m):
    text += SANITY_MARK
  if m == row.best:
    return f"**{text}**"
  if m == row.second:
    return f"<u>{text}</u>"
  return text


def _p(x: float) -> str:
  return "nan" if math.isnan(x) else (f"{x:.2e}" if x < 1e-3 else f"{x:.3f}")


def render_markdown(rows: Sequence[Row], *, title: str, command: str,
                    row_label: str = "beta", selected: dict | None = None,
                    notes: Sequence[str] = (),
                    planned: contrasts_lib.PlannedContrasts | None = None) -> str:
  """Markdown table laid out like the paper's Table 1 plus significance and selections.

  Args:
    rows: from :func:`summarize`.
    title: heading.
    command: the command that produced the numbers (printed verbatim).
    row_label: ``"beta"`` (Table 1: rows task x beta) or ``"base_model"`` (Figure 2).
    selected: from :func:`selected_settings`.
    notes: extra lines printed under the table.
    planned: the declared contrasts the rows were summarised with (their file and
      declaration are printed above the contrast table).
  """
  if not rows:
    raise ValueError("no rows to render")
  methods = column_order(dict.fromkeys(m for r in rows for m in r.mean))
  seeds = sorted({s for r in rows for s in r.seeds})
  n_seeds = sorted({r.n_seeds for r in rows})
  lead = ["Task", "β" if row_label == "beta" else "Base model", "Metric"]
  lines = [f"# {title}", "",
           f"Mean ± sample std over {'/'.join(map(str, n_seeds))} seed(s) "
           f"(seeds {', '.join(map(str, seeds))}; each seed re-draws the split and every "
           "initialisation). **Bold** = best, <u>underline</u> = second (floors included); "
           f"`*` = PFCDR vs the best other method differs at p < {ALPHA} in a paired t-test "
           "over seeds of the per-seed metric difference (n = number of seeds; "
           "`scipy.stats.ttest_rel`, two-sided), marked on the method the test favours; "
           "with one seed there is no test and no `*`. The pooled per-user tests below are "
           "secondary: they treat (seed, user) pairs as independent and overstate the "
           "evidence.",
           "", "Command:", "", f"    {command}", "",
           "Columns: " + "; ".join(
               f"{g} = {', '.join(m for m in methods if _group_of(m) == g)}"
               for g, _ in GROUPS if any(_group_of(m) == g for m in methods)), ""]
  lines += _unit_lines(methods)
  lines += markdown.table(lead + methods, (
      [r.task, _row_key(r, row_label), r.metric.upper()]
      + [_cell_text(r, m) if m in r.mean else "—" for m in methods] for r in rows))
  lines += _sanity_lines(rows)
  lines += _seed_test_lines(rows, lead[1], row_label)
  lines += _contrast_lines(rows, lead[1], row_label, planned)
  lines += _pooled_test_lines(rows, lead[1], row_label)
  if selected:
    lines += ["", "## Settings chosen on the validation users (count over cells)", ""]
    for method, fields in selected.items():
      parts = [f"{f}: " + ", ".join(f"{v} ({c})" for v, c in sorted(vals.items()))
               for f, vals in fields.items()]
      lines.append(f"- {method}: " + "; ".join(parts))
  if notes:
    lines += [""] + list(notes)
  return "\n".join(lines) + "\n"


def _group_of(method: str) -> str:
  for group, members in GROUPS:
    if any(method == m or method.startswith(m + "(") for m in members):
      return group
  return "Other"


def _row_key(r: Row, row_label: str) -> str:
  return f"{r.beta:.0%}" if row_label == "beta" else r.base_model


# The privacy unit of each private family (pfcdr_jax/privacy/units.py has the user-level
# conversion; the frontier reports every method there).
PRIVACY_UNITS = (
    ("DP-EMCDR", "user-level (ε, δ = 1e-5): add/remove one user's released vector"),
    ("PFCDR-DP", "user-level (ε, δ = 1e-5): add/remove one user's released prototype"),
    ("PFCDR-Bilinear-DP", "user-level (ε, δ = 1e-5): PFCDR-DP's released prototype"),
    ("PF2CDR", "user-level (ε = 1, δ = 1e-5) on the released vector"),
    ("PPGenCDR", "user-level (ε = 1, δ = 1e-5) over the generator's DP-SGD training"),
    ("PriCDR-S", "per rating (ε = 0.5, δ = 1e-5); at the user level far weaker "
                 "(docs/results/frontier_<task>.md)"),
    ("PFCDR+(eps", "per rating *value* (Laplace, δ = 0); counts and item sets are released "
                   "exactly: no finite user-level ε"),
    ("FedCDR", "no DP (plain FedCDR; the uploads are private only under secure "
               "aggregation, which is assumed, not implemented)"),
)


def _unit_lines(methods) -> list[str]:
  """One line naming the privacy unit of every private method in the table."""
  parts = [f"{name.replace('(eps', '(ε)')}: {text}" for name, text in PRIVACY_UNITS
           if any(m.startswith(name) for m in methods)]
  return ["Privacy units (ε is not comparable across them): " + "; ".join(parts) + ".",
          ""] if parts else []


def _sanity_lines(rows: Sequence[Row]) -> list[str]:
  """The footnote of the ⚠ marks: one line per marked method and group; empty if none."""
  groups = {(r.task, r.beta, r.base_model): r for r in rows}
  lines = []
  for (task, beta, model), r in groups.items():
    for m in column_order(r.sanity.marked):
      why = "; ".join(f"{reason} in {_seeds(n)}"
                      for reason, n in r.sanity.reasons[m].items())
      lines.append(f"- {m} ({task}, β={beta:.0%}, {model}): {r.sanity.marked[m]} of "
                   f"{_seeds(r.n_seeds)} ({why})")
  if not lines:
    return []
  return ["", f"{SANITY_MARK} failed its sanity gate (validation MAE not clearly below the "
          "floor named, or its pretraining failed) in n of N seeds:", ""] + lines


def _seeds(n: int) -> str:
  return f"{n} seed" if n == 1 else f"{n} seeds"


def _seed_test_lines(rows: Sequence[Row], label: str, row_label: str) -> list[str]:
  """The primary significance table: paired tests over seeds (what `*` follows)."""
  lines = ["", "## Significance: PFCDR vs the best other method, paired over seeds "
           "(primary; the `*`)", "",
           "The unit is the seed: each seed re-draws the split and every initialisation, so "
           "n = number of seeds. Δ = mean over seeds of PFCDR's metric − the other's "
           "(negative: PFCDR better); PFCDR better = seeds on which PFCDR's metric is lower. "
           "t-test: `scipy.stats.ttest_rel`; Wilcoxon: `scipy.stats.wilcoxon` (signed-rank, "
           "exact for small n: with n = 5 seeds or fewer no two-sided p can fall below "
           "0.05). Two-sided p-values.", ""]
  body = []
  for r in rows:
    t, tn = r.seed_test, r.seed_test_nonfloor
    if t is None:
      continue
    nf = ([tn.method_b, f"{tn.mean_diff:+.4f}", f"{tn.n_a_better}/{tn.n_seeds}",
           _p(tn.p_ttest), _p(tn.p_wilcoxon)] if tn is not None else ["—"] * 5)
    body.append([r.task, _row_key(r, row_label), r.metric.upper(), t.method_b,
                 f"{t.mean_diff:+.4f}", f"{t.n_a_better}/{t.n_seeds}", str(t.n_seeds),
                 _p(t.p_ttest), _p(t.p_wilcoxon)] + nf)
  header = ["Task", label, "Metric", "vs", "Δ", "PFCDR better", "seeds", "t-test p",
            "Wilcoxon p", "vs best non-floor", "Δ", "PFCDR better", "t-test p", "Wilcoxon p"]
  return lines + markdown.table(header, body)


def _contrast_lines(rows: Sequence[Row], label: str, row_label: str,
                    planned: contrasts_lib.PlannedContrasts | None) -> list[str]:
  """The planned contrasts, paired over seeds, raw and Holm p-values; empty if none ran."""
  adjusted = contrasts_lib.adjust(rows)
  if not adjusted:
    return []
  n_t, n_w = contrasts_lib.family_size(adjusted)
  pairs = planned.pairs if planned else _ran_pairs(rows)
  declared = (f"Declared in `{planned.source}` ({planned.declared}): " if planned
              else "Planned: ")
  family = (f"the {n_t} contrast tests with a p-value in this table (every pair above "
            f"that ran × task × {label.lower()} × metric)"
            + (f"; the Wilcoxon p-values form a second family of {n_w}" if n_w != n_t
               else "; the Wilcoxon p-values a second family of the same tests"))
  holm = (f"Holm p = the p-value adjusted by Holm's step-down method (`significance.holm`) "
          f"over the family of {family}. Holm p < {ALPHA} holds the family-wise error rate "
          f"(the chance of one or more false rejections in the family) at {ALPHA}; the raw "
          "p-values do not." if n_t else "No contrast has a p-value (one seed): nothing to "
          "adjust.")
  lines = ["", "## Planned contrasts, paired over seeds", "",
           declared + ", ".join(f"{a} vs {b}" for a, b in pairs) + ", each tested wherever "
           "both ran. Δ = mean over seeds of a's metric − b's (negative: a better); a better "
           "= seeds on which a's metric is lower; tests as above, two-sided. " + holm, ""]
  header = ["Task", label, "Metric", "a", "b", "Δ", "a better", "t-test p", "t-test Holm p",
            "Wilcoxon p", "Wilcoxon Holm p", f"a better at p < {ALPHA}",
            f"a better at Holm p < {ALPHA}"]
  return lines + markdown.table(header, (
      [c.row.task, _row_key(c.row, row_label), c.row.metric.upper(), c.test.method_a,
       c.test.method_b, f"{c.test.mean_diff:+.4f}", f"{c.test.n_a_better}/{c.test.n_seeds}",
       _p(c.test.p_ttest), _p(c.p_ttest_holm), _p(c.test.p_wilcoxon), _p(c.p_wilcoxon_holm),
       "yes" if c.test.significant and c.test.mean_diff < 0 else "no",
       "yes" if c.a_better_holm else "no"]
      for c in adjusted))


def _ran_pairs(rows: Sequence[Row]) -> list[tuple[str, str]]:
  """The contrast pairs of `rows`, in the order they first appear."""
  return list(dict.fromkeys((t.method_a, t.method_b) for r in rows for t in r.contrasts))


def _pooled_test_lines(rows: Sequence[Row], label: str, row_label: str) -> list[str]:
  """The secondary table: per-user tests with (seed, user) pairs pooled."""
  lines = ["", "## Secondary: pooled per-user tests, PFCDR vs the best other method", "",
           "Not what `*` follows: pooling (seed, user) pairs as independent ignores that "
           "users of one seed share a split and models, so these p-values overstate the "
           "evidence. "
           "Per-user error: MAE rows use each cold-start user's mean absolute error, RMSE rows "
           "their mean squared error. Δ = mean over pairs of PFCDR − other (negative: PFCDR "
           "better; the t-test's direction), median Δ = their median (the Wilcoxon test's "
           "direction), PFCDR better = share of users on whom PFCDR's error is lower. The "
           "mean and the median can disagree: one method may win most users by a little "
           "and lose a few by a lot; and the per-user errors weight every user equally, the "
           "table's MAE/RMSE every rating (heavy raters dominate). Two-sided p-values.", ""]
  body = []
  for r in rows:
    if r.test is None:
      continue
    t, tn = r.test, r.test_nonfloor
    nf = ([tn.method_b, f"{tn.mean_diff:+.4f}", f"{tn.median_diff:+.4f}", _p(tn.p_ttest),
           _p(tn.p_wilcoxon)] if tn is not None else ["—"] * 5)
    body.append([r.task, _row_key(r, row_label), r.metric.upper(), t.method_b,
                 f"{t.mean_diff:+.4f}", f"{t.median_diff:+.4f}", f"{t.share_a_better:.1%}",
                 str(t.n_pairs), _p(t.p_ttest), _p(t.p_wilcoxon)] + nf)
  header = ["Task", label, "Metric", "vs", "Δ", "median Δ", "PFCDR better", "pairs",
            "t-test p", "Wilcoxon p", "vs best non-floor", "Δ", "median Δ", "t-test p",
            "Wilcoxon p"]
  return lines + markdown.table(header, body)


def render_csv(rows: Sequence[Row]) -> str:
  """Wide CSV: one line per row of the table, mean and std columns per method."""
  methods = column_order(dict.fromkeys(m for r in rows for m in r.mean))
  contrasts = _ran_pairs(rows)
  holm = {(id(c.row), c.test.method_a, c.test.method_b): c
          for c in contrasts_lib.adjust(rows)}
  learned = [m for m in methods if m not in FLOORS]
  head = (["task", "beta", "base_model", "metric", "n_seeds"] + methods +
          [f"{m} std" for m in methods] +
          ["best", "second", "vs", "mean_diff", "n_pairs", "p_ttest", "p_wilcoxon", "star"] +
          # Appended (the columns above keep their names): the per-seed test that "star"
          # follows; the pooled per-user columns above are secondary ("star_pooled").
          ["seed_mean_diff", "seed_n", "seed_n_pfcdr_better", "seed_p_ttest",
           "seed_p_wilcoxon", "star_pooled"] +
          # Appended: the planned contrasts that ran (a minus b, over seeds), with the
          # Holm-adjusted p-values over all of them (contrasts.adjust).
          [f"{a} vs {b} {f}" for a, b in contrasts for f in _CONTRAST_FIELDS] +
          # Appended: the sanity gates (seeds with a ⚠ in the row / with a record), then
          # the seeds in which each learned method is marked.
          ["sanity_failed", "sanity_checked"] + [f"{m} sanity_failed" for m in learned])
  out = [",".join(_csv(h) for h in head)]
  for r in rows:
    t = r.test
    vals = ([r.task, f"{r.beta:g}", r.base_model, r.metric, str(r.n_seeds)] +
            [f"{r.mean[m]:.6f}" if m in r.mean else "" for m in methods] +
            [f"{r.std[m]:.6f}" if m in r.std else "" for m in methods] +
            [r.best, r.second or ""] +
            ([t.method_b, f"{t.mean_diff:.6f}", str(t.n_pairs), f"{t.p_ttest:.6g}",
              f"{t.p_wilcoxon:.6g}"] if t is not None else [""] * 5) + [r.star or ""] +
            _seed_csv(r.seed_test) + [r.star_pooled or ""] +
            [v for c in contrasts for v in _contrast_csv(holm.get((id(r), *c)))]
            + _sanity_csv(r, learned))
    out.append(",".join(_csv(v) for v in vals))
  return "\n".join(out) + "\n"


def _seed_csv(t: SeedTest | None) -> list[str]:
  if t is None:
    return [""] * 5
  return [f"{t.mean_diff:.6f}", str(t.n_seeds), str(t.n_a_better), f"{t.p_ttest:.6g}",
          f"{t.p_wilcoxon:.6g}"]


def _sanity_csv(r: Row, learned: Sequence[str]) -> list[str]:
  s = r.sanity
  return [str(s.failed), str(s.checked)] + [
      str(s.marked.get(m, 0)) if m in r.mean else "" for m in learned]


_CONTRAST_FIELDS = ("mean_diff", "n_a_better", "p_ttest", "p_ttest_holm", "p_wilcoxon",
                    "p_wilcoxon_holm")


def _contrast_csv(c: contrasts_lib.AdjustedContrast | None) -> list[str]:
  if c is None:
    return [""] * len(_CONTRAST_FIELDS)
  t = c.test
  return [f"{t.mean_diff:.6f}", str(t.n_a_better), f"{t.p_ttest:.6g}", f"{c.p_ttest_holm:.6g}",
          f"{t.p_wilcoxon:.6g}", f"{c.p_wilcoxon_holm:.6g}"]


def _csv(text: str) -> str:
  return f'"{text}"' if any(c in text for c in ',"') else text


def write_table(rows: Sequence[Row], out_dir: str | Path, *, stem: str = "table1",
                **render_kw) -> tuple[Path, Path]:
  """Writes ``<stem>.md`` and ``<stem>.csv`` atomically; returns their paths."""
  out_dir = Path(out_dir)
  md, csv = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
  cache_lib.atomic_write_text(md, render_markdown(rows, **render_kw))
  cache_lib.atomic_write_text(csv, render_csv(rows))
  return md, csv
