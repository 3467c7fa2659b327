r"""PFCDR+ ablation: validation and test MAE of each step, per seed, from cached models.

  python experiments/ablate_plus.py --task=comedy2drama --num_seeds=3 \
      --cache_dir=/tmp/pfcdr_stage_cache --out=runs/ablate_plus/comedy2drama.json

Each seed's split and pretrained scorers come from the stage cache (the same keys as
``pfcdr.py`` / ``table1.py``; trained here when missing); the prototypes at every
``--rs`` are inverted once per seed. Each step of ``plus.config.ABLATION`` chooses
its own settings on the validation users; the test users are only scored. Writes the
per-seed rows and the mean over seeds to --out (JSON) and prints a markdown table.
"""

import json
import os
import tempfile

from absl import flags
import numpy as np

import cli
from pfcdr_jax.models import metrics
from pfcdr_jax.plus.config import ABLATION
from pfcdr_jax.plus.inputs import Pairs
from pfcdr_jax.plus.inputs import plus_inputs
from pfcdr_jax.plus.method import fit_predict_plus
from pfcdr_jax.harness import cache_keys
from pfcdr_jax.harness import stages

cli.define_data_flags()
cli.define_pretrain_flags()
flags.DEFINE_float("beta", 0.2, "Cold-start fraction.")
flags.DEFINE_integer("num_seeds", 3, "Seeds 0..N-1.", lower_bound=1)
flags.DEFINE_string("cache_dir", None, "Stage cache shared with table1.py.")
flags.DEFINE_list("rs", ["1", "3", "5"], "Inversion target ratings (the last one is "
                  "PFCDR's, used by the neighbours).")
flags.DEFINE_string("out", None, "JSON output (default runs/ablate_plus/<task>.json).")
flags.DEFINE_list("baselines", ["PTUPCDR", "BiasFloor"], "Registry methods scored on the "
                  "same split and pretrained models (cached predictions).")
flags.DEFINE_list("steps", [], "Only the ablation steps whose name starts with one of "
                  "these (default: all).")
flags.DEFINE_list("seeds", [], "Seeds to run (default 0..num_seeds-1).")
FLAGS = flags.FLAGS


def steps() -> list:
  """The rows of ``plus.config.ABLATION`` selected by --steps."""
  return [s for s in ABLATION
          if not FLAGS.steps or any(s[0].startswith(p) for p in FLAGS.steps)]


def baseline_rows(seed: int, cfg, run) -> list[dict]:
  """The registry baselines on the same split and models (validation MAE, test)."""
  rows, test = [], run.data.target_test
  with tempfile.TemporaryDirectory() as tmp:
    cache = cache_keys.stage_cache(cfg, tmp)
    for name in FLAGS.baselines:
      pred, chosen, _ = stages.run_baseline(run, cfg, cache, name, {})
      rows.append({"step": name, "seed": seed, "val_mae": chosen["val_mae"],
                   "test_mae": float(metrics.mae(pred, test.rating)),
                   "test_rmse": float(metrics.rmse(pred, test.rating))})
      print(f"seed {seed} {name:<40} val {rows[-1]['val_mae']:.4f} "
            f"test {rows[-1]['test_mae']:.4f} / {rows[-1]['test_rmse']:.4f}", flush=True)
  return rows


def seed_rows(seed: int, rs: tuple) -> list[dict]:
  """One row per baseline and per ablation step for one seed."""
  cfg = cli.pfcdr_config(FLAGS.task, overrides={"seed": seed, "split.beta": FLAGS.beta})
  with tempfile.TemporaryDirectory() as tmp:
    run = stages.prepare(cfg, tmp)
  rows = baseline_rows(seed, cfg, run)
  inp = plus_inputs(run.scorer, run.params_s, run.params_t, run.data, run.keys,
                    cfg.bridge, cfg.inversion, rs)
  val, test = run.data.target_val, run.data.target_test
  pairs = Pairs(test.user, test.item)
  for name, step_rs, plus_cfg in steps():
    idx = [rs.index(r) for r in step_rs]
    sub = inp._replace(protos_src=inp.protos_src[idx], rs=tuple(step_rs))
    fit = fit_predict_plus(sub, (val.user, val.item, val.rating), pairs, plus_cfg)
    rows.append({"step": name, "seed": seed, "val_mae": list(fit.val_mae.values())[-1],
                 "test_mae": float(metrics.mae(fit.pred, test.rating)),
                 "test_rmse": float(metrics.rmse(fit.pred, test.rating)),
                 "chosen": fit.chosen, "val_mae_by_stage": fit.val_mae})
    print(f"seed {seed} {name:<40} val {rows[-1]['val_mae']:.4f} "
          f"test {rows[-1]['test_mae']:.4f} / {rows[-1]['test_rmse']:.4f}  {fit.chosen}",
          flush=True)
  return rows


def summary(rows: list[dict]) -> str:
  """Markdown: mean over seeds of each step."""
  lines = [f"task={FLAGS.task} beta={FLAGS.beta} seeds={sorted({r['seed'] for r in rows})}",
           "",
           "| step | val MAE | test MAE | test RMSE |", "|---|---|---|---|"]
  for name in list(FLAGS.baselines) + [s[0] for s in steps()]:
    sel = [r for r in rows if r["step"] == name]
    m = {k: np.mean([r[k] for r in sel]) for k in ("val_mae", "test_mae", "test_rmse")}
    lines.append(f"| {name} | {m['val_mae']:.4f} | {m['test_mae']:.4f} | "
                 f"{m['test_rmse']:.4f} |")
  return "\n".join(lines)


def main(argv):
  del argv
  rs = tuple(float(r) for r in FLAGS.rs)
  out = FLAGS.out or os.path.join("runs", "ablate_plus", f"{FLAGS.task}.json")
  seeds = [int(s) for s in FLAGS.seeds] or list(range(FLAGS.num_seeds))
  rows = [row for seed in seeds for row in seed_rows(seed, rs)]
  md = summary(rows)
  os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
  with open(out, "w") as f:
    json.dump({"task": FLAGS.task, "beta": FLAGS.beta, "rows": rows, "summary": md}, f,
              indent=2, default=str)
  print(md)
  print(f"wrote {out}")


if __name__ == "__main__":
  cli.run(main)
