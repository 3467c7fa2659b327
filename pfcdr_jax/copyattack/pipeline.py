"""The CopyAttack experiment: Table 1, Table 2 and the Figure 3-5 analyses.

``run_copyattack(cfg, workdir)`` is the whole run: it loads and aligns the
platforms, picks the target items, ``prepare``s everything the attacks need
once (the trained-and-frozen target model behind the black box, source MF,
pretend accounts), builds the clustering tree, attacks each target item with each
method through ``run_methods`` and evaluates the promotion over real target
users (Section 5); with ``cfg.analysis.kind`` it runs the depth / popularity /
budget study of Figures 3-5 or the detection study (``detection_study``)
instead of Table 2.

Files under ``workdir`` (each written atomically): ``config.json``,
``metrics.jsonl`` (one line per target item and study point), ``table1.md``,
and ``results.json`` + ``table2.md`` (Table 2) or ``<analysis>.json`` +
``<analysis>.png`` (Figures 3-5; the detection study adds ``detection.md``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.harness import cache
from pfcdr_jax import config as config_util
from pfcdr_jax.copyattack import analyses
from pfcdr_jax.copyattack import analysis_stats
from pfcdr_jax.copyattack import attacker_data
from pfcdr_jax.copyattack import blackbox
from pfcdr_jax.copyattack import config as config_lib
from pfcdr_jax.copyattack import data as data_lib
from pfcdr_jax.copyattack import detection_study
from pfcdr_jax.copyattack import methods as methods_lib
from pfcdr_jax.copyattack import report
from pfcdr_jax.copyattack import runner
from pfcdr_jax.copyattack import source_mf
from pfcdr_jax.copyattack import synthetic
from pfcdr_jax.copyattack import target_model
from pfcdr_jax.copyattack import training
from pfcdr_jax.copyattack import tree as tree_lib
from pfcdr_jax.data import download
from pfcdr_jax.data import movielens

log = logging.getLogger(__name__)

BUDGET_METHODS = analyses.BUDGET_METHODS
N_POPULARITY_GROUPS = analyses.N_POPULARITY_GROUPS


@dataclasses.dataclass
class Setup:
  """Built once per run (host objects and device arrays)."""

  cd: data_lib.CrossDomain
  target: target_model.TrainedTarget
  bb: blackbox.BlackBox
  bb_state: object  # state with the pretend accounts, before any attack
  scorer: Callable
  p: np.ndarray
  q: np.ndarray
  pretend_profiles: np.ndarray
  pretend_users: np.ndarray
  interacted: jnp.ndarray  # bool[U, N] all known target interactions
  eval_key: jax.Array
  timings: dict
  eval_users: np.ndarray = None  # int32[B] real users evaluated (no pretend)
  train_pairs: np.ndarray = None  # int32[R, 2] the platform's interactions


class MetricsLog:
  """``metrics.jsonl``: one JSON line per record, the file rewritten atomically.

  Args:
    path: the file; None keeps the records in memory only.
  """

  def __init__(self, path: Optional[Path]):
    self.path = None if path is None else Path(path)
    self.lines: list[str] = []
    self._write()

  def append(self, record: dict) -> None:
    self.lines.append(json.dumps(record) + "\n")
    self._write()

  def _write(self) -> None:
    if self.path is not None:
      cache.atomic_write_text(self.path, "".join(self.lines))


def run_copyattack(cfg: config_lib.CopyAttackConfig,
                   workdir: str | Path) -> dict:
  """Runs Table 2 (or the ``cfg.analysis`` study) and writes its files.

  Args:
    cfg: the run's config.
    workdir: output directory (created).

  Returns:
    Table 2: the ``results.json`` dict ("methods" with the
    "<method>-untrained" rows, "target_model" (test / popularity / untrained
    HR@10), "table1", "target_items", "item_split", "query_budget", "tree", "n_seeds",
    "seed_means_HR@20", "planned_contrasts", "sanity",
    "wilcoxon_vs_CopyAttack", "training_curves", "window_distribution",
    "pretend_reward_vs_HR@20", "n_eval_users", "timings_s"). An analysis: {"analysis": kind,
    "rows": the ``<kind>.json`` rows}; the detection study: {"analysis":
    "detection", "result": the ``detection.json`` dict}.

  Raises:
    ValueError: an unknown method, an analysis without the methods it needs,
      or too few qualifying target items (checked before any training where
      possible); ``DataError`` (a ValueError) for missing or bad data files.
  """
  methods = select_methods(cfg)
  kind = cfg.analysis.kind
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cache.atomic_write_text(
      workdir / "config.json",
      json.dumps(config_util.to_dict(cfg), indent=2, default=str))
  metrics = MetricsLog(workdir / "metrics.jsonl")
  target_df, source_df = load_platforms(cfg.data, cfg.seed)
  timings = {}
  with _Timer(timings, "align_s"):
    cd = data_lib.align_platforms(target_df, source_df)
  cache.atomic_write_text(workdir / "table1.md",
                          data_lib.table1_markdown(cd.stats) + "\n")
  # Before any training: too few qualifying items is a ValueError.
  items = (None if kind == "popularity"
           else target_items(cd, cfg.data, cfg.seed))
  setup = prepare(cfg, cd, max_budget=largest_budget(cfg), timings=timings)
  if not kind:
    return _table2(cfg, setup, methods, items, workdir, metrics)
  if kind == "detection":
    tr, data, _ = _attacker(setup, cfg)
    result = detection_study.run_detection(cfg, setup, methods, items, tr,
                                           data, metrics)
    detection_study.write_files(result, workdir, cfg.data.label)
    return {"analysis": kind, "result": result}
  attacker = functools.partial(_attacker, setup, cfg)
  if kind == "popularity":  # draws its own items, never the validation ones
    items = item_split(cd, cfg.data, cfg.seed)[0]
  rows = analyses.ANALYSES[kind](cfg, setup, methods, items, metrics,
                                 attacker)
  # matplotlib only loads for the figures.
  from pfcdr_jax.copyattack import plots  # pylint: disable=g-import-not-at-top
  plot = getattr(plots, f"plot_{kind}")
  plot(rows, workdir / f"{kind}.png", dataset=cfg.data.label)
  cache.atomic_write_text(workdir / f"{kind}.json", json.dumps(rows, indent=2))
  tests = analysis_stats.TESTS[kind](rows, cfg)
  cache.atomic_write_text(workdir / f"{kind}_tests.json",
                          json.dumps(tests, indent=2))
  return {"analysis": kind, "rows": rows, "tests": tests}


def select_methods(cfg: config_lib.CopyAttackConfig
                   ) -> dict[str, methods_lib.AttackConfig]:
  """The Table 2 methods ``cfg`` asks for, name -> AttackConfig (by default
  all, or ``detection_study.DETECTION_METHODS`` for the detection study).

  Raises:
    ValueError: on an unknown name, or a depth / popularity analysis without
      "CopyAttack".
  """
  methods = methods_lib.table2_methods(cfg.attack)
  if cfg.methods:
    unknown = [m for m in cfg.methods if m not in methods]
    if unknown:
      raise ValueError(f"unknown methods {unknown}; choose from "
                       f"{list(methods)}")
    methods = {k: methods[k] for k in cfg.methods}
  elif cfg.analysis.kind == "detection":
    methods = {k: methods[k] for k in detection_study.DETECTION_METHODS}
  if cfg.analysis.kind in ("depth", "popularity") and (
      "CopyAttack" not in methods):
    raise ValueError(f"--analysis={cfg.analysis.kind} attacks with "
                     "CopyAttack; add it to the methods")
  return methods


def largest_budget(cfg: config_lib.CopyAttackConfig) -> int:
  """Largest budget any attack of the run uses (the black box's capacity)."""
  if cfg.analysis.kind == "budget":
    return max((cfg.attack.budget,) + tuple(cfg.analysis.budgets))
  return cfg.attack.budget


def load_platforms(cfg: config_lib.DataConfig, seed: int):
  """(target_df, source_df): synthetic, or MovieLens-100K and -1M.

  Raises:
    DataError: when the MovieLens files are missing or malformed.
  """
  if cfg.synthetic:
    return synthetic.make_synthetic_platforms(
        seed, n_target_users=cfg.synthetic_target_users,
        n_source_users=cfg.synthetic_source_users,
        n_items=cfg.synthetic_items, per_user=cfg.synthetic_per_user,
        popularity_exponent=cfg.synthetic_popularity_exponent)
  data_dir = cfg.data_dir or str(download.default_data_dir())
  target, _ = movielens.load_ml100k(data_dir)
  source, _ = movielens.load_ml1m(data_dir)
  return target, source


class _Timer:
  """Stores the seconds of a ``with`` block under ``timings[name]``."""

  def __init__(self, timings: dict, name: str):
    self.timings, self.name = timings, name

  def __enter__(self):
    self.t0 = time.perf_counter()
    return self

  def __exit__(self, *exc):
    self.timings[self.name] = time.perf_counter() - self.t0


def prepare(cfg: config_lib.CopyAttackConfig, cd: data_lib.CrossDomain,
            max_budget: Optional[int] = None,
            timings: Optional[dict] = None) -> Setup:
  """Trains the target model and source MF; opens the platform to attacks.

  Args:
    cfg: experiment config (reads seed, target, mf, pretend, attack).
    cd: the aligned platforms (``data.align_platforms``).
    max_budget: largest budget any later attack uses (buffer capacity).
    timings: seconds of earlier stages; this one's are added.

  Returns:
    Setup.
  """
  timings = dict(timings or {})
  k_target, k_mf, k_eval = jax.random.split(jax.random.key(cfg.seed), 3)
  log.info("Table 1\n%s", data_lib.table1_markdown(cd.stats))
  with _Timer(timings, "target_model_s"):
    split = target_model.split_interactions(cd.target_pairs, cfg.seed)
    interacted = np.zeros((cd.n_target_users, cd.n_items), bool)
    interacted[cd.target_pairs[:, 0], cd.target_pairs[:, 1]] = True
    tgt = target_model.train_target_model(k_target, cd.n_target_users,
                                          cd.n_items, split, interacted,
                                          cfg.target)
  log.info("target model: test HR@10 = %.4f (best epoch %d, %.1fs)",
           tgt.test_hr, tgt.best_epoch, timings["target_model_s"])
  with _Timer(timings, "source_mf_s"):
    p, q, mf_info = source_mf.train_source_mf(cd.source_profiles,
                                              cd.source_lengths, cd.n_items,
                                              cfg.mf, k_mf)
  log.info("source MF: %s (%.1fs)", mf_info, timings["source_mf_s"])
  pretend_len = min(cfg.pretend.pretend_len, cd.source_profiles.shape[1])
  bb, state, scorer = _platform(cd, tgt, split.train, cfg.pretend.n_pretend,
                                pretend_len, max_budget or cfg.attack.budget)
  eval_users = np.arange(cd.n_target_users, dtype=np.int32)
  if cfg.pretend.source == "target":
    pretend_users, pretend = attacker_data.held_out_pretend_users(
        split.train, cd.n_target_users, cfg.pretend.n_pretend,
        cfg.pretend.min_len, seed=cfg.seed + 1)
    eval_users = np.setdiff1d(eval_users, pretend_users).astype(np.int32)
  else:
    pretend = attacker_data.make_pretend_profiles(
        cd.source_profiles, cd.source_lengths, cfg.pretend.n_pretend,
        pretend_len, min_len=cfg.pretend.min_len, seed=cfg.seed + 1)
    state, pretend_users = attacker_data.register_pretend_users(bb, state,
                                                                pretend)
  return Setup(cd=cd, target=tgt, bb=bb, bb_state=state, scorer=scorer, p=p,
               q=q, pretend_profiles=pretend,
               pretend_users=np.asarray(pretend_users),
               interacted=jnp.asarray(interacted), eval_key=k_eval,
               timings=timings, eval_users=eval_users,
               train_pairs=split.train)


def _platform(cd: data_lib.CrossDomain, tgt: target_model.TrainedTarget,
              train_pairs: np.ndarray, n_pretend: int, pretend_len: int,
              budget: int):
  """The black box, with room for the pretend accounts and ``budget`` copies."""
  l_max = cd.source_profiles.shape[1]
  return blackbox.make_blackbox(
      tgt.model, tgt.params, train_pairs, cd.n_target_users,
      extra_users=n_pretend + budget,
      extra_interactions=n_pretend * pretend_len + budget * l_max,
      max_profile_len=l_max, incremental=True)


def target_items(cd: data_lib.CrossDomain, cfg: config_lib.DataConfig,
                 seed: int) -> np.ndarray:
  """The run's scored target items v* (Section 5.1.3). int32[n].

  With ``cfg.num_validation_items`` the side ``cfg.item_set`` of
  ``item_split``: ``num_target_items`` test items, or the validation items.

  Raises:
    ValueError: if too few items qualify.
  """
  val, test = item_split(cd, cfg, seed)
  return val if cfg.item_set == "validation" else test


def item_split(cd: data_lib.CrossDomain, cfg: config_lib.DataConfig,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(validation, test) target items (``data.split_target_items``); without
  validation items, (empty, the paper's draw)."""
  if not cfg.num_validation_items:
    return np.zeros((0,), np.int32), data_lib.select_target_items(
        cd, cfg.num_target_items, seed, cfg.max_target_interactions,
        cfg.min_source_profiles)
  return data_lib.split_target_items(
      cd, cfg.num_target_items, cfg.num_validation_items, seed,
      cfg.max_target_interactions, cfg.min_source_profiles)


def build_attacker(setup: Setup, depth: int, seed: int,
                   kmeans_iters: int = 20):
  """Clustering tree (Section 4.3.1) and leaf-indexed attacker data.

  Returns:
    (ClusterTree, AttackerData, seconds it took).
  """
  t0 = time.perf_counter()
  tr = tree_lib.build_tree(setup.p, depth, seed=seed,
                           kmeans_iters=kmeans_iters)
  data = attacker_data.make_attacker_data(
      tr, setup.cd.source_profiles, setup.cd.source_lengths, setup.p, setup.q,
      setup.pretend_users, setup.pretend_profiles)
  return tr, data, time.perf_counter() - t0


def _attacker(setup: Setup, cfg: config_lib.CopyAttackConfig,
              depth: Optional[int] = None):
  return build_attacker(setup, cfg.tree.depth if depth is None else depth,
                        cfg.seed, cfg.tree.kmeans_iters)


def _table2(cfg: config_lib.CopyAttackConfig, setup: Setup, methods: dict,
            items: np.ndarray, workdir: Path, metrics: MetricsLog) -> dict:
  """Table 2: every method on every target item; writes results.json."""
  tr, data, tree_s = _attacker(setup, cfg)
  log.info("tree: depth %d, branching %d, %d policy nodes, %.1fs", tr.depth,
           tr.branching, tr.n_nonleaf, tree_s)
  res = run_methods(setup, items, methods, tr, data, cfg.seed,
                    cfg.evaluation.n_neg, metrics=metrics,
                    n_seeds=cfg.n_seeds, workers=cfg.attack_workers)
  results = {
      "methods": res["methods"],
      "target_model": target_model_summary(setup.target),
      "table1": setup.cd.stats,
      "target_items": [setup.cd.item_ids[i] for i in items],
      "tree": {"depth": tr.depth, "branching": tr.branching,
               "n_nonleaf": tr.n_nonleaf},
      "n_seeds": cfg.n_seeds,
      "item_split": _item_split_record(setup.cd, cfg),
      "query_budget": _budget_record(cfg, methods, len(items)),
      "seed_means_HR@20": res["seed_means"],
      "wilcoxon_vs_CopyAttack": runner.paired_tests(res["per_item"]),
      "planned_contrasts": planned_contrasts(res["per_item"]),
      "sanity": analysis_stats.sanity(res["per_item"]),
      "training_curves": res["training_curves"],
      "training_curves_per_seed": res["training_curves_per_seed"],
      "spend_curves": res["spend_curves"],
      "window_distribution": runner.window_distribution(res["methods"]),
      "pretend_reward_vs_HR@20": runner.pretend_vs_evaluated(
          res["per_item"]),
      "n_eval_users": int(len(setup.eval_users)),
      "timings_s": dict(setup.timings, tree_s=tree_s, **res["timings_s"]),
  }
  cache.atomic_write_text(workdir / "results.json",
                          json.dumps(results, indent=2))
  for name, rec in results["sanity"].items():
    if not rec["ok"]:
      log.warning(
          "FAILED SANITY GATE: %s %s (HR@20 lower bound %+.4f vs its untrained "
          "policy, %+.4f vs no attack)", name,
          "does not clearly learn" if not rec["learns"]
          else "does not clearly beat no attack", rec["low_vs_untrained"],
          rec["low_vs_floor"])
  table = report.table2_markdown(res["methods"], dataset=cfg.data.label,
                                 sanity=results["sanity"])
  cache.atomic_write_text(workdir / "table2.md", table + "\n")
  if results["training_curves"]:
    from pfcdr_jax.copyattack import plots  # pylint: disable=g-import-not-at-top
    plots.plot_training_curves(results["training_curves"],
                               workdir / "training_curves.png",
                               dataset=cfg.data.label,
                               per_seed=results["training_curves_per_seed"])
  if results["spend_curves"]:
    from pfcdr_jax.copyattack import plots  # pylint: disable=g-import-not-at-top
    plots.plot_spend_curves(results["spend_curves"],
                            workdir / "queries.png", dataset=cfg.data.label)
  return results


# Declared before the run (issue 30): CopyAttack against the paper's strongest
# baseline, the same baseline at CopyAttack's query spend, and CopyAttack with
# whole profiles (its crafting ablated). Holm over these three.
PLANNED = ("TargetAttack100", "TargetAttack100-BestOf", "CopyAttack-Length")


def planned_contrasts(per_item: list[dict]) -> list[dict]:
  """CopyAttack minus each ``PLANNED`` row in HR@20, paired by item, with
  Holm-adjusted p-values (rows absent from the run are skipped)."""
  if not per_item or "CopyAttack" not in per_item[0]["methods"]:
    return []
  ca = [r["methods"]["CopyAttack"]["HR@20"] for r in per_item]
  tests = [dict(row=n, **analysis_stats.paired(
      ca, [r["methods"][n]["HR@20"] for r in per_item]))
           for n in PLANNED if n in per_item[0]["methods"]]
  return analysis_stats.holm(tests)


def _item_split_record(cd: data_lib.CrossDomain,
                       cfg: config_lib.CopyAttackConfig) -> dict:
  """Which items were set aside for validation and which are scored."""
  val, test = item_split(cd, cfg.data, cfg.seed)
  return {"scored": cfg.data.item_set, "seed": cfg.seed,
          "validation": [cd.item_ids[i] for i in val],
          "test": [cd.item_ids[i] for i in test]}


def _budget_record(cfg: config_lib.CopyAttackConfig, methods: dict,
                   n_items: int) -> dict:
  """The query budget per item and what each method was allowed under it."""
  return {"per_item": cfg.attack.query_budget,
          "episode_queries": cfg.attack.episode_queries,
          "updates": {n: training.n_updates(m, n_items if m.shared else 1)
                      for n, m in methods.items() if m.learns},
          "updates_asked": {n: m.episodes // m.batch_episodes
                            for n, m in methods.items() if m.learns},
          "trials": {n: m.trials() for n, m in methods.items() if m.best_of}}


def target_model_summary(target: target_model.TrainedTarget) -> dict:
  """The target model's test HR@10 beside a popularity ranker's and its
  untrained initialisation's, on the same pairs and negatives."""
  return {"test_HR@10": target.test_hr,
          "popularity_HR@10": target.popularity_hr,
          "untrained_HR@10": target.untrained_hr,
          "best_epoch": target.best_epoch,
          "epochs_run": len(target.val_curve)}


run_methods = runner.run_methods
