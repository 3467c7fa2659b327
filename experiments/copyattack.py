"""CopyAttack on MovieLens-100K (target) with MovieLens-1M (source).

Reproduces Table 1 / Table 2 of Fan et al., "Attacking Black-box
Recommendations via Copying Cross-domain User Profiles", and with
``--analysis=depth|popularity|budget`` the data and plots of Figures 3-5;
``--analysis=detection`` measures how well a platform's detectors find the
copied profiles next to generated fake profiles (``detection.json`` / ``.md``
/ ``.png``).

  python experiments/copyattack.py --num_target_items=5     # < 10 min, 2 CPUs
  python experiments/copyattack.py                          # full 50-item table
  python experiments/copyattack.py --analysis=budget
  python experiments/copyattack.py --synthetic --analysis=detection \
      --num_target_items=2 --n_seeds=1 --episodes=32 --workdir=/tmp/det

Writes ``config.json``, ``metrics.jsonl`` (one line per target item),
``results.json``, ``table1.md``, ``table2.md`` (and ``<analysis>.json`` /
``<analysis>.png``) under ``--workdir``; the work is
``pfcdr_jax.copyattack.pipeline.run_copyattack``, the presets are in
``experiments/configs/copyattack.py``.

Each learning method trains one policy shared by all target items
(``--shared``, conditioned on q_v*) for ``--episodes`` episodes, ``--n_seeds``
times; ``--noshared --episodes=256`` is the paper's fresh policy per item.
"""
from __future__ import annotations

import sys

from absl import app
from absl import flags

from configs import copyattack as presets
from pfcdr_jax.infra import progress
from pfcdr_jax.copyattack import config as ca_config
from pfcdr_jax.copyattack import detection_study
from pfcdr_jax.copyattack import pipeline
from pfcdr_jax.copyattack import report
from pfcdr_jax.data.errors import DataError

D = presets.DEFAULT
FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "./runs/copyattack", "Output directory.")
flags.DEFINE_string("data_dir", None, "Data cache (default: $PFCDR_DATA_DIR or "
                    "~/.cache/pfcdr_jax, as pfcdr.py).")
flags.DEFINE_integer("seed", D.seed, "Master seed.")
flags.DEFINE_integer("num_target_items", D.data.num_target_items,
                     "Target items v* (paper: 50).")
flags.DEFINE_integer("budget", D.attack.budget, "Copied profiles per attack, Delta.")
flags.DEFINE_integer("depth", D.tree.depth, "Clustering-tree depth d (paper: 3).")
flags.DEFINE_integer("episodes", D.attack.episodes,
                     "Training episodes per target item per learning method.")
flags.DEFINE_integer("batch_episodes", D.attack.batch_episodes,
                     "Episodes per REINFORCE update.")
flags.DEFINE_integer("query_every", D.attack.query_every,
                     "Injections between two queries.")
flags.DEFINE_integer("n_pretend", D.pretend.n_pretend, "Pretend accounts (paper: 50).")
flags.DEFINE_integer("reward_k", D.attack.reward_k,
                     "k of the pretend users' top-k lists (0: whole catalogue;"
                     " --reward=hr: 200 ~ the evaluated sampled HR@20).")
flags.DEFINE_float("goal_hr", D.attack.goal_hr,
                   "Promotion goal: stop once HR@k over pretend users >= it.")
flags.DEFINE_float("gamma", D.attack.gamma, "Discount factor (paper: 0.6).")
flags.DEFINE_float("lr", D.attack.lr, "Adam learning rate of the policies.")
flags.DEFINE_integer("min_source_profiles", D.data.min_source_profiles,
                     "v* must be in at least this many source profiles.")
flags.DEFINE_integer("max_target_interactions", D.data.max_target_interactions,
                     "v* has fewer target interactions than this (paper: 10).")
flags.DEFINE_list("methods", [], "Subset of Table 2 methods (default all).")
flags.DEFINE_integer("n_seeds", D.n_seeds, "Attack seeds (every method).")
flags.DEFINE_integer("attack_workers", D.attack_workers,
                     "Threads running (seed, method) attacks side by side (0: one per core).")
flags.DEFINE_enum("reward", D.attack.reward, ["rank", "hr"],
                  "Pretend score: v*'s list position (rank) or HR@k (paper).")
flags.DEFINE_bool("increments", D.attack.increments,
                  "Reward = score increase since the previous query.")
flags.DEFINE_bool("shared", D.attack.shared,
                  "One policy for all target items (else one per item).")
flags.DEFINE_float("entropy", D.attack.entropy, "Entropy bonus weight.")
flags.DEFINE_enum("pretend_source", D.pretend.source, ["target", "source"],
                  "Pretend accounts: held-out target users or source windows.")
flags.DEFINE_enum("target_item_id", D.target.item_id, ["none", "concat"],
                  "Free item embedding in h_v of the target model.")
flags.DEFINE_float("target_lr", D.target.lr, "Target-model Adam lr (paper 1e-3).")
flags.DEFINE_enum("analysis", "", list(ca_config.ANALYSES),
                  "Analysis of Figures 3-5 or the detection study instead "
                  "of Table 2.")
flags.DEFINE_list("depths", [str(d) for d in D.analysis.depths],
                  "Depths for --analysis=depth.")
flags.DEFINE_list("budgets", [str(b) for b in D.analysis.budgets],
                  "Budgets for --analysis=budget.")
flags.DEFINE_integer("items_per_group", D.analysis.items_per_group,
                     "Items per popularity decile (--analysis=popularity).")
flags.DEFINE_integer("detection_train_items", D.analysis.train_items,
                     "Other items whose fake profiles train the supervised "
                     "detector (--analysis=detection).")
flags.DEFINE_integer("target_max_epochs", D.target.max_epochs,
                     "Target-model epoch cap.")
flags.DEFINE_enum("target_item_norm", D.target.item_norm, ["sqrt", "mean"],
                  "Item-side neighbor aggregation of the target model.")
flags.DEFINE_integer("query_budget", D.attack.query_budget,
                     "Queries of the black box per target item, training and "
                     "final attack together (0: no cap); training stops "
                     "before it would exceed them.")
flags.DEFINE_enum("credit", D.attack.credit, ["last", "spread"],
                  "A query's reward: to its group's last injection, or "
                  "shared by the group's injections.")
flags.DEFINE_enum("baseline", D.attack.baseline, ["ema", "loo"],
                  "REINFORCE baseline: moving average, or leave-one-out "
                  "mean of the update's other episodes of the item.")
flags.DEFINE_integer("episodes_per_item", D.attack.episodes_per_item,
                     "Episodes of each drawn item in one update.")
flags.DEFINE_integer("checkpoints", D.attack.checkpoints,
                     "Policies kept along training: points of the "
                     "HR@20-against-queries curve.")
flags.DEFINE_enum("stop", D.attack.stop, ["budget", "plateau"],
                  "Train until the query budget is spent, or stop earlier "
                  "once the training return plateaus.")
flags.DEFINE_integer("plateau_window", D.attack.plateau_window,
                     "Updates per window of the plateau rule.")
flags.DEFINE_integer("plateau_patience", D.attack.plateau_patience,
                     "Windows without improvement that stop training.")
flags.DEFINE_bool("final_greedy", D.attack.final_greedy,
                  "Final attack takes the policy's most probable actions.")
flags.DEFINE_integer("num_validation_items", D.data.num_validation_items,
                     "Qualifying items set aside for choosing attack "
                     "settings, disjoint from the scored ones.")
flags.DEFINE_enum("item_set", D.data.item_set, ["test", "validation"],
                  "Score the test items (Table 2) or the validation items "
                  "(settings search).")
flags.DEFINE_bool("synthetic", False,
                  "Use tiny synthetic platforms (smoke test, no download).")


def main(argv):
  del argv
  progress.configure_output(FLAGS.verbosity)
  try:
    cfg = presets.get_config(
        {name: FLAGS[name].value for name in presets.FLAG_PATHS})
    results = pipeline.run_copyattack(cfg, FLAGS.workdir)
  except (DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  if cfg.analysis.kind == "detection":
    print(detection_study.detection_markdown(results["result"],
                                             dataset=cfg.data.label))
    print(f"detection.json, detection.md, detection.png in {FLAGS.workdir}")
    return
  if cfg.analysis.kind:
    kind = cfg.analysis.kind
    print(f"{kind}: {len(results['rows'])} rows in {FLAGS.workdir}/{kind}.json"
          f", figure {FLAGS.workdir}/{kind}.png")
    return
  print(report.table2_markdown(results["methods"], dataset=cfg.data.label,
                               sanity=results["sanity"]))
  print(f"results.json, table1.md, table2.md, metrics.jsonl, config.json in "
        f"{FLAGS.workdir}")


if __name__ == "__main__":
  app.run(main)
