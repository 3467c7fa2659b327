"""The paper's comparison over seeds: run cells, aggregate, test significance, render.

A *cell* is one ``run_pfcdr`` call: task x beta x base model x seed, with its own
workdir. :func:`run_cells` skips a cell whose ``results.json`` (written atomically at
the very end of ``run_pfcdr``) exists, was made with the same configuration and holds
every requested method, so an interrupted sweep resumes where it stopped; cells share
one stage cache, so changing only the method list (or PFCDR's own settings) reuses the
pretrained models and every baseline's cached predictions.

:func:`summarize` turns finished cells into one :class:`Row` per (task, beta, base
model, metric): mean +- sample std (ddof=1) over seeds of each method's MAE / RMSE, the
best and second-best method, and paired tests of PFCDR against the best other method
(by mean).

Primary test (what ``*`` follows): :func:`seed_test`, paired over seeds. The unit is
the seed -- each seed re-draws the split and every initialisation -- so the sample is
the S per-seed differences of the reported metric (PFCDR's MAE minus the other's, and
likewise RMSE), n = S: the paired t-test (``scipy.stats.ttest_rel``, two-sided; the
paper's "paired t-test") and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``,
two-sided, exact for small n). ``*`` marks the better of the two when the t-test gives
p < 0.05; one seed gives no test and no ``*``.

Secondary test (a labelled column, not the ``*``): :func:`paired_test` on per-user
errors (MAE: the user's mean absolute error; RMSE: the user's mean squared error over
their test ratings), pooling the (seed, user) pairs of all seeds as if independent.
Users of one seed share a split and models, so its p-values overstate the evidence
(p = 1e-88 with 10 seeds); it is kept because it shows the per-user picture (median
difference, share of users won).

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
import gc
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import jax
import numpy as np
from scipy import stats

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.infra import progress
from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.baselines import registry

log = logging.getLogger(__name__)

FLOORS = sanity_lib.FLOOR_METHODS   # GlobalMean, ItemMean, SourceUserMean, BiasFloor
METRICS = ("mae", "rmse")
ALPHA = 0.05
# Planned contrasts (a, b): tested over seeds in every row that has both methods, fixed
# before the runs (issue 15: PFCDR+ against the strongest baseline and the floor; issue
# 13: PFCDR against the same two), so no "best other" is picked after seeing the numbers.
CONTRASTS = (("PFCDR+", "PTUPCDR"), ("PFCDR+", "BiasFloor"), ("PFCDR", "PTUPCDR"),
             ("PFCDR", "BiasFloor"),
             # PFCDR+ with per-rating DP scalars (fixed before its 10-seed runs).
             ("PFCDR+(eps=1)", "PTUPCDR"), ("PFCDR+(eps=1)", "BiasFloor"),
             ("PFCDR+(eps=5)", "PTUPCDR"), ("PFCDR+(eps=5)", "BiasFloor"))
# Column groups of the paper's Table 1 (display names; DP-EMCDR(eps=..) by prefix).
GROUPS = (
    ("SDR", ("TGT", "LightGCN")),
    ("CDR with user-sensitive data", ("CMF", "EMCDR", "SSCDR", "PTUPCDR")),
    ("Privacy-preserving CDR", ("DP-EMCDR", "PriCDR-S", "FedCDR", "PF2CDR", "PPGenCDR",
                                "PFCDR-DP", "PFCDR", "PFCDR+")),
    ("Floors", FLOORS),
)
SANITY_MARK = "⚠"


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run: task x beta x base model x seed."""
  task: str
  beta: float
  base_model: str
  seed: int

  @property
  def dirname(self) -> str:
    return f"{self.task}-b{self.beta:g}-{self.base_model}-s{self.seed}"


def make_cells(tasks: Sequence[str], betas: Sequence[float], base_models: Sequence[str],
               num_seeds: int) -> list[Cell]:
  """All cells of a sweep, seeds innermost (seed = 0..num_seeds-1)."""
  if num_seeds < 1:
    raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
  return [Cell(t, float(b), m, s) for t in tasks for b in betas for m in base_models
          for s in range(num_seeds)]


def cell_config(base: config_lib.PFCDRConfig, cell: Cell) -> config_lib.PFCDRConfig:
  return config_lib.override(base, {"data.task": cell.task, "split.beta": cell.beta,
                                    "pretrain.base_model": cell.base_model,
                                    "seed": cell.seed})


def expected_methods(cfg: config_lib.PFCDRConfig) -> tuple[str, ...]:
  return ("PFCDR",) + tuple(cfg.baselines.names)


def _decisions(cfg: config_lib.PFCDRConfig) -> dict:
  """What a cell's numbers depend on: the config's content less the method list
  (checked method by method) -- paths and execution-only knobs are not in it
  (``config.EXECUTION_ONLY``: e.g. the exact top-k kernels give the same neighbor sets,
  test_topk; the inversion chunk the same prototypes to 1e-5, test_inversion)."""
  out = config_lib.content(cfg)
  out.pop("baselines")
  return cache_lib.jsonable(out)


def is_finished(workdir: Path, cfg: config_lib.PFCDRConfig) -> bool:
  """True iff `workdir` holds a complete run of `cfg` with every requested method.

  Complete = results.json and predictions-test.npz exist, config.json decides what `cfg`
  decides (:func:`_decisions`; a field added to the config after the cell ran takes its
  default, the behaviour the cell ran with), and each method ran the registry's current
  selection grid.
  """
  workdir = Path(workdir)
  res_path, cfg_path = workdir / "results.json", workdir / "config.json"
  if not (res_path.exists() and cfg_path.exists()):
    return False
  try:
    results = json.loads(res_path.read_text())
    raw = json.loads(cfg_path.read_text())
    stored = config_lib.from_dict(config_lib.PFCDRConfig, raw)
  except (OSError, ValueError, TypeError) as e:
    log.info("cell %s: unreadable or older config.json (%s); rerunning", workdir.name, e)
    return False
  stale = _stale_absent_fields(raw, cfg)
  if stale:
    log.info("cell %s predates %s (it ran the behaviour that field replaced); rerunning",
             workdir.name, stale)
    return False
  if _decisions(stored) != _decisions(cfg):
    log.info("cell %s: the configuration changed; rerunning", workdir.name)
    return False
  missing = set(expected_methods(cfg)) - set(results.get("methods", {}))
  if missing:
    log.info("cell %s lacks %s; rerunning (cached stages are reused)", workdir.name,
             sorted(missing))
    return False
  chosen = results.get("selected", {}).get("baselines", {})
  for name in cfg.baselines.names:
    # A baseline's settings live in the registry, not in the config: compare the grid.
    ran = [{k: v for k, v in g.items() if k != "val_mae"}
           for g in chosen.get(name, {}).get("grid", [])]
    want = [cache_lib.jsonable(p) for p in registry.selection_grid(name)]
    if json.dumps(ran, sort_keys=True) != json.dumps(want, sort_keys=True):
      log.info("cell %s: the selection grid of %s changed; rerunning", workdir.name, name)
      return False
  return (workdir / "predictions-test.npz").exists()


def _stale_absent_fields(raw: Any, cfg: Any) -> list[str]:
  """Fields of `cfg` marked ``absent_is_stale`` (``config.DNN_ONLY``) that `cfg` decides
  but the stored config dict `raw` lacks: a cell written before such a field existed ran
  the behaviour its default replaced."""
  out = []
  raw = raw if isinstance(raw, dict) else {}
  for f in dataclasses.fields(cfg):
    value = getattr(cfg, f.name)
    if dataclasses.is_dataclass(value):
      out += [f"{f.name}.{p}" for p in _stale_absent_fields(raw.get(f.name), value)]
    elif (f.metadata.get("absent_is_stale") and config_lib.decides(cfg, f)
          and f.name not in raw):
      out.append(f.name)
  return out


SEED_STACK_MODES = ("auto", "on", "off")


def use_seed_stack(mode: str) -> bool:
  """``--seed_stack``: "on", "off", or "auto" = on when JAX runs on an accelerator.

  On 2 CPU cores a stack of 3 comedy2drama seeds took 0.8x the speed of one seed after
  another (``experiments/bench_seeds.py``, BUILD_NOTES): CPU pretraining is bound by
  arithmetic, not by launches, so "auto" leaves CPU runs sequential. The parameters
  came out bit-identical either way in that measurement.
  """
  if mode not in SEED_STACK_MODES:
    raise ValueError(f"seed_stack must be one of {SEED_STACK_MODES}, got {mode!r}")
  if mode == "auto":
    return jax.default_backend() != "cpu"
  return mode == "on"


def _release_compiled() -> None:
  """Drops JAX's compiled executables after a cell.

  Every cell has its own array shapes, so its jitted functions compile afresh and the
  executables of earlier cells are never used again. Kept, they add up: a 10-seed
  Table 1 sweep in one process died in its 16th cell with "LLVM compilation error:
  Cannot allocate memory" (each CPU executable holds its own memory mappings, and a
  process may have at most vm.max_map_count = 65,530 of them).
  """
  jax.clear_caches()
  gc.collect()


def run_cells(base_cfg: config_lib.PFCDRConfig, cells: Sequence[Cell], root: str | Path,
              *, seed_stack: bool = False) -> list[Path]:
  """Runs every unfinished cell under ``root/<cell.dirname>``; returns all workdirs.

  Every cell uses ``base_cfg.cache.dir`` (set it to share pretraining across cells;
  None gives each cell its own ``<workdir>/cache``). With ``seed_stack`` the
  unfinished seeds of each (task, beta, base model) first pretrain together, vmapped
  over the seed axis where the domains' shapes allow (:func:`pipeline.pretrain_seeds`);
  the cells then load those parameters from the stage cache.
  """
  root = Path(root)
  dirs = [root / c.dirname for c in cells]
  todo = [(c, d) for c, d in zip(cells, dirs) if not is_finished(d, cell_config(base_cfg, c))]
  log.info("%d cells, %d finished, %d to run", len(cells), len(cells) - len(todo), len(todo))
  t0 = time.perf_counter()
  if seed_stack:
    groups: dict[tuple, list[tuple[Cell, Path]]] = {}
    for cell, workdir in todo:
      groups.setdefault((cell.task, cell.beta, cell.base_model), []).append((cell, workdir))
    for group in groups.values():
      if len(group) > 1:
        stacked = pipeline.pretrain_seeds([cell_config(base_cfg, c) for c, _ in group],
                                          [d for _, d in group])
        log.info("seed-stacked pretraining of %s: %s", group[0][0].dirname, stacked)
  with progress.bar(len(todo), "cells", unit="cell") as bar:
    for i, (cell, workdir) in enumerate(todo):
      log.info("cell %d/%d: %s", i + 1, len(todo), cell.dirname)
      pipeline.run_pfcdr(cell_config(base_cfg, cell), workdir)
      _release_compiled()
      bar.update()
      done = time.perf_counter() - t0
      eta = done / (i + 1) * (len(todo) - i - 1)
      log.info("cell %d/%d done (%.0fs elapsed, %.1f min/cell, ETA %.0f min)", i + 1,
               len(todo), done, done / (i + 1) / 60, eta / 60)
  return dirs


# --- loading ------------------------------------------------------------------------------

class CellResult(NamedTuple):
  """A finished cell: its results.json and per-rating test predictions by display name."""
  cell: Cell
  results: dict[str, Any]
  user: np.ndarray            # int[T]
  rating: np.ndarray          # float32[T]
  preds: dict[str, np.ndarray]  # display name -> float32[T]
  names: dict[str, str]       # display name -> name as run


def display_name(name: str) -> str:
  return name if name == "PFCDR" else registry.display_name(name)


def load_cell(workdir: str | Path) -> CellResult:
  """Reads a finished cell's results.json and predictions-test.npz."""
  workdir = Path(workdir)
  results = json.loads((workdir / "results.json").read_text())
  hit = cache_lib.StageCache(workdir).load("predictions", "test")
  if hit is None:
    raise FileNotFoundError(f"{workdir}/predictions-test.npz is missing or unreadable")
  arrays, _ = hit
  preds, names = {}, {}
  for key, arr in arrays.items():
    if not key.startswith("pred_"):
      continue
    name = key[len("pred_"):]
    disp = display_name(name)
    if disp in preds:
      raise ValueError(f"{workdir}: methods {names[disp]!r} and {name!r} share the display "
                       f"name {disp!r}")
    preds[disp], names[disp] = arr.astype(np.float32), name
  cell = Cell(results["task"], float(results["beta"]), results["base_model"],
              int(results["seed"]))
  return CellResult(cell, results, arrays["user"], arrays["rating"].astype(np.float32), preds,
                    names)


# --- sanity gates -----------------------------------------------------------------------

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


# --- statistics -----------------------------------------------------------------------------

def per_user_errors(user: np.ndarray, rating: np.ndarray, pred: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-user MAE and MSE over each user's test ratings.

  Args:
    user: int[T]; rating, pred: float[T].

  Returns:
    ``(users int[C] sorted, mae float64[C], mse float64[C])``.
  """
  user, rating, pred = np.asarray(user), np.asarray(rating, np.float64), np.asarray(pred,
                                                                                      np.float64)
  if not user.shape == rating.shape == pred.shape or user.ndim != 1:
    raise ValueError(f"shape mismatch: user {user.shape}, rating {rating.shape}, "
                     f"pred {pred.shape}")
  users, inv = np.unique(user, return_inverse=True)
  n = np.bincount(inv, minlength=users.size)
  err = pred - rating
  mae = np.bincount(inv, weights=np.abs(err), minlength=users.size) / n
  mse = np.bincount(inv, weights=err ** 2, minlength=users.size) / n
  return users, mae, mse


class PairedTest(NamedTuple):
  """Paired comparison of method a vs b on per-user errors (a - b < 0: a is better)."""
  method_a: str
  method_b: str
  n_pairs: int
  mean_diff: float     # mean over pairs of err_a - err_b
  t_stat: float
  p_ttest: float
  p_wilcoxon: float
  median_diff: float = 0.0     # median over pairs of err_a - err_b (Wilcoxon's direction)
  share_a_better: float = 0.0  # fraction of pairs with err_a < err_b

  @property
  def significant(self) -> bool:
    return bool(self.p_ttest < ALPHA)

  @property
  def winner(self) -> str | None:
    return None if self.mean_diff == 0 else (self.method_a if self.mean_diff < 0
                                             else self.method_b)


def paired_test(err_a: np.ndarray, err_b: np.ndarray, method_a: str = "a",
                method_b: str = "b") -> PairedTest:
  """Two-sided paired t-test and Wilcoxon signed-rank test of per-user errors.

  Identical errors give p = 1 for both (scipy would return nan / raise).
  """
  a, b = np.asarray(err_a, np.float64), np.asarray(err_b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or a.size < 2:
    raise ValueError(f"need two equal-length 1-D error arrays (>= 2 pairs), got {a.shape}, "
                     f"{b.shape}")
  d = a - b
  if np.all(d == 0):
    return PairedTest(method_a, method_b, a.size, 0.0, 0.0, 1.0, 1.0)
  t = stats.ttest_rel(a, b)
  w = stats.wilcoxon(a, b)
  return PairedTest(method_a, method_b, int(a.size), float(d.mean()), float(t.statistic),
                    float(t.pvalue), float(w.pvalue), float(np.median(d)), float(np.mean(d < 0)))


class SeedTest(NamedTuple):
  """Paired test over seeds of the per-seed metric difference (a - b < 0: a is better).

  The unit is the seed (each seed re-draws the split and every initialisation), so
  ``n_seeds`` is the sample size: the design's replicates, not (seed, user) pairs.
  """
  method_a: str
  method_b: str
  n_seeds: int
  mean_diff: float     # mean over seeds of metric_a - metric_b
  t_stat: float
  p_ttest: float       # scipy.stats.ttest_rel, two-sided (nan for fewer than 2 seeds)
  p_wilcoxon: float    # scipy.stats.wilcoxon, two-sided (exact for small n)
  n_a_better: int      # seeds on which a's metric is lower
  diffs: tuple[float, ...] = ()

  @property
  def significant(self) -> bool:
    return bool(self.p_ttest < ALPHA)   # False for nan

  @property
  def winner(self) -> str | None:
    return None if self.mean_diff == 0 else (self.method_a if self.mean_diff < 0
                                             else self.method_b)


def seed_test(metric_a: Sequence[float], metric_b: Sequence[float], method_a: str = "a",
              method_b: str = "b") -> SeedTest:
  """Two-sided paired t-test and Wilcoxon signed-rank test over seeds.

  Args:
    metric_a, metric_b: float[S] one metric value (MAE or RMSE) per seed, same seed order.

  Identical values give p = 1 for both; a single seed gives p = nan (no test).
  """
  a, b = np.asarray(metric_a, np.float64), np.asarray(metric_b, np.float64)
  if a.shape != b.shape or a.ndim != 1 or a.size < 1:
    raise ValueError(f"need two equal-length 1-D metric arrays, got {a.shape}, {b.shape}")
  d = a - b
  base = dict(method_a=method_a, method_b=method_b, n_seeds=int(a.size),
              mean_diff=float(d.mean()), n_a_better=int(np.sum(d < 0)),
              diffs=tuple(float(x) for x in d))
  if np.all(d == 0):
    return SeedTest(t_stat=0.0, p_ttest=1.0, p_wilcoxon=1.0, **base)
  if a.size < 2:
    return SeedTest(t_stat=float("nan"), p_ttest=float("nan"), p_wilcoxon=float("nan"), **base)
  with np.errstate(divide="ignore", invalid="ignore"):
    t = stats.ttest_rel(a, b)
  w = stats.wilcoxon(a, b)
  return SeedTest(t_stat=float(t.statistic), p_ttest=float(t.pvalue),
                  p_wilcoxon=float(w.pvalue), **base)


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
  contrasts: tuple[SeedTest, ...] = ()        # over seeds, the :data:`CONTRASTS` present
  sanity: SanitySummary = dataclasses.field(default_factory=SanitySummary)  # the ⚠ marks

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


def _group_of(method: str) -> str:
  for group, members in GROUPS:
    if any(method == m or method.startswith(m + "(") for m in members):
      return group
  return "Other"


def summarize(workdirs: Sequence[str | Path], *, metrics: Sequence[str] = METRICS
              ) -> list[Row]:
  """Aggregates finished cells into table rows (mean +- std, ranks, significance)."""
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
      contrasts = tuple(seed_test(vals[a], vals[b], a, b) for a, b in CONTRASTS
                        if a in vals and b in vals)
      rows.append(Row(task, beta, base_model, metric, len(crs),
                      tuple(c.cell.seed for c in crs), mean, std, ranked[0],
                      ranked[1] if len(ranked) > 1 else None, test, test_nf, seed, seed_nf,
                      contrasts, sanity))
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


# --- rendering ------------------------------------------------------------------------------

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
                    notes: Sequence[str] = ()) -> str:
  """Markdown table laid out like the paper's Table 1 plus significance and selections.

  Args:
    rows: from :func:`summarize`.
    title: heading.
    command: the command that produced the numbers (printed verbatim).
    row_label: ``"beta"`` (Table 1: rows task x beta) or ``"base_model"`` (Figure 2).
    selected: from :func:`selected_settings`.
    notes: extra lines printed under the table.
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
               for g, _ in GROUPS if any(_group_of(m) == g for m in methods)), "",
           "| " + " | ".join(lead + methods) + " |",
           "|" + "---|" * (len(lead) + len(methods))]
  for r in rows:
    key = f"{r.beta:.0%}" if row_label == "beta" else r.base_model
    lines.append("| " + " | ".join([r.task, key, r.metric.upper()] +
                                   [_cell_text(r, m) if m in r.mean else "—" for m in methods])
                 + " |")
  lines += _sanity_lines(rows)
  lines += _seed_test_lines(rows, lead[1], row_label)
  lines += _contrast_lines(rows, lead[1], row_label)
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


def _row_key(r: Row, row_label: str) -> str:
  return f"{r.beta:.0%}" if row_label == "beta" else r.base_model


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
           "0.05). Two-sided p-values.", "",
           f"| Task | {label} | Metric | vs | Δ | PFCDR better | seeds | t-test p | Wilcoxon p "
           "| vs best non-floor | Δ | PFCDR better | t-test p | Wilcoxon p |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    t, tn = r.seed_test, r.seed_test_nonfloor
    if t is None:
      continue
    nf = ([tn.method_b, f"{tn.mean_diff:+.4f}", f"{tn.n_a_better}/{tn.n_seeds}",
           _p(tn.p_ttest), _p(tn.p_wilcoxon)] if tn is not None else ["—"] * 5)
    lines.append("| " + " | ".join([r.task, _row_key(r, row_label), r.metric.upper(),
                                    t.method_b, f"{t.mean_diff:+.4f}",
                                    f"{t.n_a_better}/{t.n_seeds}", str(t.n_seeds),
                                    _p(t.p_ttest), _p(t.p_wilcoxon)] + nf) + " |")
  return lines


def _contrast_lines(rows: Sequence[Row], label: str, row_label: str) -> list[str]:
  """The planned contrasts (:data:`CONTRASTS`), paired over seeds; empty if none ran."""
  if not any(r.contrasts for r in rows):
    return []
  lines = ["", "## Planned contrasts, paired over seeds", "",
           "Fixed before the runs (not picked by the numbers): "
           + ", ".join(f"{a} vs {b}" for a, b in CONTRASTS) + ", wherever both ran. "
           "Δ = mean over seeds of a's metric − b's (negative: a better); a better = seeds "
           "on which a's metric is lower; tests as above, two-sided.", "",
           f"| Task | {label} | Metric | a | b | Δ | a better | t-test p | Wilcoxon p | "
           "a better at p < 0.05 |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    for t in r.contrasts:
      won = "yes" if t.significant and t.mean_diff < 0 else "no"
      lines.append("| " + " | ".join([
          r.task, _row_key(r, row_label), r.metric.upper(), t.method_a, t.method_b,
          f"{t.mean_diff:+.4f}", f"{t.n_a_better}/{t.n_seeds}", _p(t.p_ttest),
          _p(t.p_wilcoxon), won]) + " |")
  return lines


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
           "table's MAE/RMSE every rating (heavy raters dominate). Two-sided p-values.", "",
           f"| Task | {label} | Metric | vs | Δ | median Δ | PFCDR better | pairs | "
           "t-test p | Wilcoxon p | vs best non-floor | Δ | median Δ | t-test p | Wilcoxon p |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if r.test is None:
      continue
    t, tn = r.test, r.test_nonfloor
    nf = ([tn.method_b, f"{tn.mean_diff:+.4f}", f"{tn.median_diff:+.4f}", _p(tn.p_ttest),
           _p(tn.p_wilcoxon)] if tn is not None else ["—"] * 5)
    lines.append("| " + " | ".join([r.task, _row_key(r, row_label), r.metric.upper(),
                                    t.method_b, f"{t.mean_diff:+.4f}", f"{t.median_diff:+.4f}",
                                    f"{t.share_a_better:.1%}", str(t.n_pairs), _p(t.p_ttest),
                                    _p(t.p_wilcoxon)] + nf) + " |")
  return lines


def render_csv(rows: Sequence[Row]) -> str:
  """Wide CSV: one line per row of the table, mean and std columns per method."""
  methods = column_order(dict.fromkeys(m for r in rows for m in r.mean))
  contrasts = [(a, b) for a, b in CONTRASTS if any(
      (t.method_a, t.method_b) == (a, b) for r in rows for t in r.contrasts)]
  learned = [m for m in methods if m not in FLOORS]
  head = (["task", "beta", "base_model", "metric", "n_seeds"] + methods +
          [f"{m} std" for m in methods] +
          ["best", "second", "vs", "mean_diff", "n_pairs", "p_ttest", "p_wilcoxon", "star"] +
          # Appended (the columns above keep their names): the per-seed test that "star"
          # follows; the pooled per-user columns above are secondary ("star_pooled").
          ["seed_mean_diff", "seed_n", "seed_n_pfcdr_better", "seed_p_ttest",
           "seed_p_wilcoxon", "star_pooled"] +
          # Appended: the planned contrasts that ran (a minus b, over seeds).
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
            [v for c in contrasts for v in _contrast_csv(r, c)] + _sanity_csv(r, learned))
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


_CONTRAST_FIELDS = ("mean_diff", "n_a_better", "p_ttest", "p_wilcoxon")


def _contrast_csv(r: Row, pair: tuple[str, str]) -> list[str]:
  t = next((t for t in r.contrasts if (t.method_a, t.method_b) == pair), None)
  if t is None:
    return [""] * len(_CONTRAST_FIELDS)
  return [f"{t.mean_diff:.6f}", str(t.n_a_better), f"{t.p_ttest:.6g}", f"{t.p_wilcoxon:.6g}"]


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


def plot_base_models(rows: Sequence[Row], path: str | Path, *,
                     methods: Sequence[str] = ("PriCDR-S", "EMCDR", "PTUPCDR", "PFCDR"),
                     floors: Sequence[str] = ("GlobalMean", "ItemMean"),
                     base_models: Sequence[str] = ("mf", "gmf", "dnn"), title: str = "") -> Path:
  """Figure 2: bars of each method's MAE / RMSE per base model (error bars = std).

  Floors (the same for every base model) are drawn as dashed lines.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  by = {(r.base_model, r.metric): r for r in rows}
  models = [b for b in base_models if any((b, m) in by for m in METRICS)]
  if not models:
    raise ValueError("no rows for the requested base models")
  fig, axes = plt.subplots(1, len(METRICS), figsize=(5.5 * len(METRICS), 4))
  width = 0.8 / len(methods)
  x = np.arange(len(models))
  for ax, metric in zip(np.atleast_1d(axes), METRICS):
    for i, m in enumerate(methods):
      mean = [by[(b, metric)].mean.get(m, np.nan) if (b, metric) in by else np.nan
              for b in models]
      std = [by[(b, metric)].std.get(m, 0.0) if (b, metric) in by else 0.0 for b in models]
      ax.bar(x + (i - (len(methods) - 1) / 2) * width, mean, width, yerr=std, capsize=3,
             label=m)
    for j, f in enumerate(floors):
      vals = [by[(b, metric)].mean[f] for b in models if (b, metric) in by
              and f in by[(b, metric)].mean]
      if vals:
        ax.axhline(float(np.mean(vals)), color="k", lw=1, ls=("--", ":", "-.")[j % 3],
                   label=f)
    ax.set_xticks(x, [b.upper() if b != "dnn" else "YouTube-DNN" for b in models])
    ax.set_ylabel(metric.upper())
    lo = np.nanmin([by[(b, metric)].mean[m] for b in models for m in methods
                    if (b, metric) in by and m in by[(b, metric)].mean] + [np.inf])
    if np.isfinite(lo):
      ax.set_ylim(bottom=max(0.0, lo * 0.8))
  handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
  if title:
    fig.suptitle(title)
  fig.tight_layout(rect=(0, 0.08, 1, 1))
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
