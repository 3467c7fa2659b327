"""CopyAttack on MovieLens-100K (target) with MovieLens-1M (source).

Reproduces Table 1 / Table 2 of Fan et al., "Attacking Black-box
Recommendations via Copying Cross-domain User Profiles", and with
``--analysis=depth|popularity|budget`` the data and plots of Figures 3-5.

  python experiments/copyattack.py --num_target_items=5     # < 10 min, 2 CPUs
  python experiments/copyattack.py                          # full 50-item table
  python experiments/copyattack.py --analysis=budget

Writes ``config.json``, ``metrics.jsonl`` (one line per target item),
``results.json``, ``table1.md``, ``table2.md`` (and ``<analysis>.json`` /
``<analysis>.png``) under ``--workdir``.

``--episodes`` (training episodes per target item for each learning method)
defaults to 256 (32 REINFORCE updates of 8 vmapped episodes): on 2 CPU cores
one CopyAttack attack (training + final attack, budget 30) then takes ~8 s
after compilation, so the 50-item table (4 learning methods) fits in 90
minutes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from absl import app
from absl import flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pfcdr_jax.copyattack import attack as attack_lib  # noqa: E402
from pfcdr_jax.copyattack import data as data_lib  # noqa: E402
from pfcdr_jax.copyattack import pipeline  # noqa: E402
from pfcdr_jax.copyattack import plots  # noqa: E402
from pfcdr_jax.copyattack import source_mf  # noqa: E402
from pfcdr_jax.copyattack import target_model  # noqa: E402
from pfcdr_jax.data import download  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "./runs/copyattack", "Output directory.")
flags.DEFINE_string("data_dir", None,
                    "Data cache (default: $PFCDR_DATA_DIR or ~/.cache/pfcdr_jax, as pfcdr.py).")
flags.DEFINE_integer("seed", 0, "Master seed.")
flags.DEFINE_integer("num_target_items", 50, "Target items v* (paper: 50).")
flags.DEFINE_integer("budget", 30, "Copied profiles per attack, Delta.")
flags.DEFINE_integer("depth", 3, "Clustering-tree depth d (paper: 3).")
flags.DEFINE_integer("episodes", 256,
                     "Training episodes per target item per learning method.")
flags.DEFINE_integer("batch_episodes", 8, "Episodes per REINFORCE update.")
flags.DEFINE_integer("query_every", 3, "Injections between two queries.")
flags.DEFINE_integer("n_pretend", 50, "Pretend accounts (paper: 50).")
flags.DEFINE_integer("reward_k", 200,
                     "k of the pretend users' full-catalogue top-k lists "
                     "(200 of 1,163 items ~ the evaluated sampled HR@20).")
flags.DEFINE_float("goal_hr", 1.0,
                   "Promotion goal: stop once HR@k over pretend users >= it.")
flags.DEFINE_float("gamma", 0.6, "Discount factor (paper: 0.6).")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate of the policies.")
flags.DEFINE_integer("min_source_profiles", 30,
                     "v* must be in at least this many source profiles.")
flags.DEFINE_integer("max_target_interactions", 10,
                     "v* has fewer target interactions than this (paper: 10).")
flags.DEFINE_list("methods", [], "Subset of Table 2 methods (default all).")
flags.DEFINE_enum("analysis", "", ["", "depth", "popularity", "budget"],
                  "Model analysis of Figures 3-5 instead of Table 2.")
flags.DEFINE_list("depths", ["2", "3", "4", "5"], "Depths for --analysis=depth.")
flags.DEFINE_list("budgets", ["5", "10", "15", "20", "25", "30"],
                  "Budgets for --analysis=budget.")
flags.DEFINE_integer("items_per_group", 5,
                     "Items per popularity decile (--analysis=popularity).")
flags.DEFINE_integer("target_max_epochs", 300, "Target-model epoch cap.")
flags.DEFINE_enum("target_item_norm", "sqrt", ["sqrt", "mean"],
                  "Item-side neighbor aggregation of the target model.")
flags.DEFINE_bool("synthetic", False,
                  "Use tiny synthetic platforms (smoke test, no download).")


def _config() -> pipeline.ExperimentConfig:
  base = attack_lib.AttackConfig(
      budget=FLAGS.budget, query_every=FLAGS.query_every,
      reward_k=FLAGS.reward_k, goal_hr=FLAGS.goal_hr, gamma=FLAGS.gamma,
      lr=FLAGS.lr, episodes=FLAGS.episodes,
      batch_episodes=FLAGS.batch_episodes)
  tcfg = target_model.TargetConfig(seed=FLAGS.seed,
                                   max_epochs=FLAGS.target_max_epochs,
                                   item_norm=FLAGS.target_item_norm)
  mf = source_mf.SourceMFConfig(seed=FLAGS.seed)
  if FLAGS.synthetic:
    tcfg = dataclasses.replace(tcfg, n_neg=20, batch_size=32)
    base = dataclasses.replace(base, reward_k=min(base.reward_k, 10))
  return pipeline.ExperimentConfig(
      seed=FLAGS.seed, num_target_items=FLAGS.num_target_items,
      max_target_interactions=FLAGS.max_target_interactions,
      min_source_profiles=FLAGS.min_source_profiles,
      n_pretend=FLAGS.n_pretend, depth=FLAGS.depth,
      n_neg=20 if FLAGS.synthetic else 100, attack=base, target=tcfg, mf=mf,
      methods=tuple(FLAGS.methods) or None)


def _dataset_label() -> str:
  return "SYNTHETIC" if FLAGS.synthetic else "ML100K-ML1M"


def _load():
  if FLAGS.synthetic:
    from pfcdr_jax.copyattack import synthetic
    return synthetic.make_synthetic_platforms(FLAGS.seed, n_target_users=80,
                                              n_source_users=300, n_items=60)
  from pfcdr_jax.data import movielens
  data_dir = FLAGS.data_dir or str(download.default_data_dir())
  target, _ = movielens.load_ml100k(data_dir)
  source, _ = movielens.load_ml1m(data_dir)
  return target, source


def main(argv):
  del argv
  cfg = _config()
  workdir = Path(FLAGS.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(
      json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
  metrics_file = workdir / "metrics.jsonl"
  metrics_file.write_text("")
  target_df, source_df = _load()
  max_budget = max([cfg.attack.budget] + [int(b) for b in FLAGS.budgets]
                   if FLAGS.analysis == "budget" else [cfg.attack.budget])
  setup = pipeline.prepare(cfg, target_df, source_df, max_budget=max_budget)
  (workdir / "table1.md").write_text(
      data_lib.table1_markdown(setup.cd.stats) + "\n")
  methods = attack_lib.table2_methods(cfg.attack)
  if cfg.methods:
    methods = {k: methods[k] for k in cfg.methods}

  if FLAGS.analysis:
    out = _analysis(FLAGS.analysis, cfg, setup, methods, workdir,
                    metrics_file)
    (workdir / f"{FLAGS.analysis}.json").write_text(json.dumps(out, indent=2))
    return

  items = data_lib.select_target_items(
      setup.cd, cfg.num_target_items, cfg.seed,
      cfg.max_target_interactions, cfg.min_source_profiles)
  tr, data, tree_s = pipeline.build_attacker(setup, cfg.depth, cfg.seed)
  print(f"tree: depth {tr.depth}, branching {tr.branching}, "
        f"{tr.n_nonleaf} policy nodes, {tree_s:.1f}s", flush=True)
  res = pipeline.run_methods(setup, items, methods, tr, data, cfg.seed,
                             cfg.n_neg, metrics_file=metrics_file)
  timings = dict(setup.timings, tree_s=tree_s, **res["timings_s"])
  results = {
      "methods": res["methods"],
      "target_model": {"test_HR@10": setup.target.test_hr,
                       "best_epoch": setup.target.best_epoch},
      "table1": setup.cd.stats,
      "target_items": [setup.cd.item_ids[i] for i in items],
      "tree": {"depth": tr.depth, "branching": tr.branching,
               "n_nonleaf": tr.n_nonleaf},
      "timings_s": timings,
  }
  (workdir / "results.json").write_text(json.dumps(results, indent=2))
  table = pipeline.table2_markdown(res["methods"], dataset=_dataset_label())
  (workdir / "table2.md").write_text(table + "\n")
  print(table, flush=True)


def _analysis(kind, cfg, setup, methods, workdir, metrics_file):
  rows = []
  if kind == "depth":
    items = data_lib.select_target_items(
        setup.cd, cfg.num_target_items, cfg.seed,
        cfg.max_target_interactions, cfg.min_source_profiles)
    for d in (int(x) for x in FLAGS.depths):
      tr, data, _ = pipeline.build_attacker(setup, d, cfg.seed)
      res = pipeline.run_methods(setup, items, {"CopyAttack":
                                                methods["CopyAttack"]},
                                 tr, data, cfg.seed, cfg.n_neg,
                                 metrics_file=metrics_file)
      rows.append(dict(depth=d, branching=tr.branching,
                       **res["methods"]["CopyAttack"]))
    plots.plot_depth(rows, workdir / "depth.png", dataset=_dataset_label())
  elif kind == "popularity":
    groups = data_lib.popularity_groups(setup.cd)
    tr, data, _ = pipeline.build_attacker(setup, cfg.depth, cfg.seed)
    import numpy as np
    rng = np.random.default_rng(cfg.seed)
    src = setup.cd.source_counts()
    for g in range(10):
      pool = np.flatnonzero((groups == g) & (src >= 1))
      if not len(pool):
        continue
      items = np.sort(rng.choice(pool, min(FLAGS.items_per_group, len(pool)),
                                 replace=False))
      res = pipeline.run_methods(setup, items, {"CopyAttack":
                                                methods["CopyAttack"]},
                                 tr, data, cfg.seed, cfg.n_neg,
                                 metrics_file=metrics_file)
      rows.append(dict(group=g, **res["methods"]["CopyAttack"]))
    plots.plot_popularity(rows, workdir / "popularity.png", dataset=_dataset_label())
  elif kind == "budget":
    items = data_lib.select_target_items(
        setup.cd, cfg.num_target_items, cfg.seed,
        cfg.max_target_interactions, cfg.min_source_profiles)
    tr, data, _ = pipeline.build_attacker(setup, cfg.depth, cfg.seed)
    names = ("RandomAttack", "TargetAttack40", "TargetAttack70",
             "TargetAttack100", "CopyAttack")
    for b in (int(x) for x in FLAGS.budgets):
      sub = {n: dataclasses.replace(methods[n], budget=b) for n in names
             if n in methods}
      res = pipeline.run_methods(setup, items, sub, tr, data, cfg.seed,
                                 cfg.n_neg, metrics_file=metrics_file)
      for n, m in res["methods"].items():
        if n != "Without Attack":
          rows.append(dict(budget=b, method=n, **m))
    plots.plot_budget(rows, workdir / "budget.png", dataset=_dataset_label())
  return rows


if __name__ == "__main__":
  app.run(main)
