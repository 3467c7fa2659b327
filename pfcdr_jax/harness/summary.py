"""Aggregates finished cells into table rows: mean +- std over seeds, ranks, tests, marks.

:func:`summarize` turns finished cells into one :class:`Row` per (task, beta, base
model, metric): mean +- sample std (ddof=1) over seeds of each method's MAE / RMSE, the
best and second-best method, and paired tests (``significance``) of PFCDR against the
best other method (by mean) and of the planned contrasts passed in (declared in a
committed file, ``contrasts.load_contrasts``). Each row keeps the per-seed values the
mean and the tests were computed from (``Row.per_seed``).

Floors (GlobalMean, ItemMean, SourceUserMean, BiasFloor) take part in the ranking and
in "best other": a method that does not beat them transfers nothing.

Sanity gates (``sanity.sanity_failures``): a cell's ``results.json`` may hold ``"sanity"``,
one ``{"ok", "value", "floor", "floor_name"}`` record per pretraining stage and per
method. A method whose own gate failed in a seed, or every learned (non-floor) method of
a seed whose pretraining failed its gate, is marked ``⚠`` in the table and counted in the
CSV's ``sanity_failed`` columns; cells from before the gates have no record (not checked,
no mark).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.baselines import registry
from pfcdr_jax.harness.cells import CellResult
from pfcdr_jax.harness.cells import display_name
from pfcdr_jax.harness.cells import load_cell
from pfcdr_jax.harness.significance import PairedTest
from pfcdr_jax.harness.significance import SeedTest
from pfcdr_jax.harness.significance import paired_test
from pfcdr_jax.harness.significance import per_user_errors
from pfcdr_jax.harness.significance import seed_test

log = logging.getLogger(__name__)

FLOORS = sanity_lib.FLOOR_METHODS   # GlobalMean, ItemMean, SourceUserMean, BiasFloor
METRICS = ("mae", "rmse")
# Column groups of the paper's Table 1 (display names; DP-EMCDR(eps=..) by prefix).
GROUPS = (
    ("SDR", ("TGT", "LightGCN")),
    ("CDR with user-sensitive data", ("CMF", "EMCDR", "SSCDR", "PTUPCDR")),
    ("Privacy-preserving CDR", ("DP-EMCDR", "PriCDR-S", "FedCDR", "PF2CDR", "PPGenCDR",
                                "PFCDR-DP", "PFCDR", "PFCDR+", "PFCDR-Bilinear",
                                "PFCDR-Bilinear-DP")),
    ("Floors", FLOORS),
)


@dataclasses.dataclass(frozen=True)
class SanitySummary:
  """The sanity gates of one (task, beta, base model) group over its seeds."""
  checked: int = 0   # seeds whose results.json has a "sanity" record
  failed: int = 0    # seeds in which at least one method of the row is marked
  marked: dict[str, int] = dataclasses.field(default_factory=dict)  # method -> seeds
  reasons: dict[str, dict[str, int]] = dataclasses.field(
      default_factory=dict)   # method -> reason -> seeds


def summarize_sanity(results: Sequence[dict], methods: Iterable[str]) -> SanitySummary:
  """Counts the seeds (one results.json each) that fail a gate, per display name.

  Args:
    results: the results.json of each seed of one group.
    methods: display names of the table's columns (others are not counted).
  """
  methods = set(methods)
  per_seed = [{display_name(k): v for k, v in sanity_lib.sanity_failures(r).items()
               if display_name(k) in methods} for r in results]
  marked: dict[str, int] = {}
  reasons: dict[str, dict[str, int]] = {}
  for fails in per_seed:
    for m, why in fails.items():
      marked[m] = marked.get(m, 0) + 1
      counts = reasons.setdefault(m, {})
      for reason in dict.fromkeys(why):
        counts[reason] = counts.get(reason, 0) + 1
  return SanitySummary(sum(bool(r.get("sanity")) for r in results),
                       sum(bool(f) for f in per_seed), marked, reasons)


@dataclasses.dataclass(frozen=True)
class Row:
  """One line of the table: a (task, beta, base model) group and one metric."""
  task: str
  beta: float
  base_model: str
  metric: str
  n_seeds: int
  seeds: tuple[int, ...]
  mean: dict[str, float]
  std: dict[str, float]
  best: str
  second: str | None
  test: PairedTest | None           # pooled per-user test, PFCDR vs the best other method
  test_nonfloor: PairedTest | None  # pooled per-user test, vs the best other non-floor method
  seed_test: SeedTest | None = None           # over seeds, PFCDR vs the best other method
  seed_test_nonfloor: SeedTest | None = None  # over seeds, vs the best other non-floor
  contrasts: tuple[SeedTest, ...] = ()        # over seeds, the planned pairs present
  sanity: SanitySummary = dataclasses.field(default_factory=SanitySummary)  # the ⚠ marks
  # method -> float[n_seeds] its metric in each seed, in the order of ``seeds``
  per_seed: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)

  @property
  def star(self) -> str | None:
    """The method that gets `*`: the winner of a significant per-seed paired t-test of
    PFCDR vs the best other method (n = seeds)."""
    t = self.seed_test
    return t.winner if t is not None and t.significant else None

  @property
  def star_pooled(self) -> str | None:
    """The winner of a significant pooled per-user t-test (secondary; overstates n)."""
    return self.test.winner if self.test is not None and self.test.significant else None


def column_order(methods: Iterable[str]) -> list[str]:
  """Methods in the paper's column order (groups of :data:`GROUPS`), others last."""
  methods = list(methods)
  out = []
  for _, members in GROUPS:
    for m in members:
      out += sorted((x for x in methods if x == m or x.startswith(m + "(")),
                    key=_eps_key)
  return out + [m for m in methods if m not in out]


def _eps_key(name: str) -> float:
  return registry.parse_name(name)[1].get("eps", -1.0) if "(" in name else -1.0


def summarize(workdirs: Sequence[str | Path], *, metrics: Sequence[str] = METRICS,
              contrasts: Sequence[tuple[str, str]] = ()) -> list[Row]:
  """Aggregates finished cells into table rows (mean +- std, ranks, significance).

  Args:
    workdirs: finished cells (``cells.load_cell``).
    metrics: the metrics of the rows.
    contrasts: planned pairs (a, b), tested over seeds in every row that has both
      methods, in this order (``contrasts.load_contrasts(...).pairs``).
  """
  groups: dict[tuple, list[CellResult]] = {}
  for wd in workdirs:
    cr = load_cell(wd)
    groups.setdefault((cr.cell.task, cr.cell.beta, cr.cell.base_model), []).append(cr)
  rows = []
  for (task, beta, base_model), crs in groups.items():
    crs = sorted(crs, key=lambda c: c.cell.seed)
    methods = set.intersection(*(set(c.preds) & set(_result_methods(c)) for c in crs))
    dropped = set.union(*(set(c.preds) for c in crs)) - methods
    if dropped:
      log.warning("%s beta=%g %s: %s missing in some seeds; left out", task, beta, base_model,
                  sorted(dropped))
    methods = column_order(methods)
    sanity = summarize_sanity([c.results for c in crs], methods)
    for metric in metrics:
      vals = {m: np.array([_result_methods(c)[m][metric] for c in crs]) for m in methods}
      mean = {m: float(v.mean()) for m, v in vals.items()}
      std = {m: float(v.std(ddof=1)) if v.size > 1 else 0.0 for m, v in vals.items()}
      ranked = sorted(methods, key=lambda m: mean[m])
      test = test_nf = seed = seed_nf = None
      if "PFCDR" in methods and len(methods) > 1:
        others = [m for m in ranked if m != "PFCDR"]
        test = _pooled_test(crs, "PFCDR", others[0], metric)
        seed = seed_test(vals["PFCDR"], vals[others[0]], "PFCDR", others[0])
        nonfloor = [m for m in others if m not in FLOORS]
        if nonfloor:
          same = nonfloor[0] == others[0]
          test_nf = test if same else _pooled_test(crs, "PFCDR", nonfloor[0], metric)
          seed_nf = seed if same else seed_test(vals["PFCDR"], vals[nonfloor[0]], "PFCDR",
                                                nonfloor[0])
      tests = tuple(seed_test(vals[a], vals[b], a, b) for a, b in contrasts
                    if a in vals and b in vals)
      rows.append(Row(task, beta, base_model, metric, len(crs),
                      tuple(c.cell.seed for c in crs), mean, std, ranked[0],
                      ranked[1] if len(ranked) > 1 else None, test, test_nf, seed, seed_nf,
                      tests, sanity,
                      {m: tuple(float(x) for x in v) for m, v in vals.items()}))
  return sorted(rows, key=lambda r: (r.task, r.beta, _model_rank(r.base_model),
                                      METRICS.index(r.metric)))


def _model_rank(base_model: str) -> tuple[int, str]:
  order = ("mf", "gmf", "dnn")
  return (order.index(base_model) if base_model in order else len(order), base_model)


def _result_methods(cr: CellResult) -> dict[str, dict[str, float]]:
  return {display_name(k): v for k, v in cr.results["methods"].items()}


def _pooled_test(crs: Sequence[CellResult], a: str, b: str, metric: str) -> PairedTest:
  col = 1 if metric == "mae" else 2
  ea = np.concatenate([per_user_errors(c.user, c.rating, c.preds[a])[col] for c in crs])
  eb = np.concatenate([per_user_errors(c.user, c.rating, c.preds[b])[col] for c in crs])
  return paired_test(ea, eb, a, b)


def selected_settings(workdirs: Sequence[str | Path]) -> dict[str, dict[str, dict[str, int]]]:
  """Counts of the settings chosen on validation, per method and field, over cells."""
  out: dict[str, dict[str, dict[str, int]]] = {}

  def add(method, field, value):
    counts = out.setdefault(method, {}).setdefault(field, {})
    counts[str(value)] = counts.get(str(value), 0) + 1

  for wd in workdirs:
    sel = json.loads((Path(wd) / "results.json").read_text())["selected"]
    add("PFCDR", "K", sel["topk"])
    for stage, meta in sel.get("pretrain", {}).items():
      for field in ("lr", "epoch"):
        if field in meta:
          add(f"pretrain ({stage.split('_')[1]})", field, meta[field])
    for name, chosen in sel.get("baselines", {}).items():
      grid = chosen.get("grid", [])
      free = [k for k in chosen if k not in ("val_mae", "grid")
              and len({str(g.get(k)) for g in grid}) > 1]
      for field in free:
        add(display_name(name), field, chosen[field])
  return out
