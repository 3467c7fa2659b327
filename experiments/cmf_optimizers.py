r"""CMF trained by dense Adam and by deferred Adam: the cold-start MAE, paired over seeds.

  python experiments/cmf_optimizers.py --task=comedy2drama --num_seeds=5 \
      --out=docs/results/cmf_optimizers_comedy2drama.json

Deferred Adam (``models.deferred_minibatch``) computes dense Adam's trajectory on the
rows a minibatch touches, except that a row's idle steps use Adam's ``eps`` in one
closed form (a few coordinates with gradients near 1e-7 drift by float32 rounding),
so the two are not bit-identical. This runs the CMF baseline as the main job runs it
(``selection.fit_predict_val``: the registry's validation grid of 4 settings, 20
epochs, the seed's baseline key) once with each optimizer on each seed's split of
``--task`` (``run_inputs.load_split``), and reports per seed the test MAE and RMSE of
each, the validation-chosen setting, the seconds, and over seeds the mean difference
(deferred - dense) with its standard deviation, a 95 % t interval and the paired
t-test (seeds are the unit). CMF reads only the embedding width from the base model;
no pretraining runs here.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import flags
import jax
import numpy as np
from scipy import stats

import cli
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
# pylint: disable=g-import-not-at-top
from benchmarks import common
from pfcdr_jax.baselines import selection
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.config import DataConfig, PFCDRConfig
from pfcdr_jax.data import synthetic
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.models import metrics
from pfcdr_jax.pfcdr import method
# pylint: enable=g-import-not-at-top

flags.DEFINE_string("task", "comedy2drama", "Task of the splits (a MovieLens task, or "
                    "synthetic with --like and --scale).")
flags.DEFINE_string("like", "music2movie", "Synthetic template (--task=synthetic).")
flags.DEFINE_float("scale", 1.0, "Synthetic scale (--task=synthetic).", lower_bound=1e-4)
flags.DEFINE_integer("num_seeds", 5, "Seeds 0..n-1.", lower_bound=2)
flags.DEFINE_integer("emb_dim", 10, "CMF's factor size (the main job's embedding width).",
                     lower_bound=1)
flags.DEFINE_string("out", "cmf_optimizers.json", "Output JSON path.")
FLAGS = flags.FLAGS

OPTIMIZERS = ("adam", "deferred_adam")


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
  """b - a over seeds: mean, sd, 95 % t interval, paired t-test p."""
  d = b - a
  n = d.size
  sd = float(d.std(ddof=1))
  half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
  p = float(stats.ttest_rel(b, a).pvalue) if np.any(d != 0) else 1.0
  return {"mean_diff": float(d.mean()), "sd_diff": sd,
          "ci95": [float(d.mean()) - half, float(d.mean()) + half], "t_test_p": p,
          "seeds_identical": int(np.sum(d == 0))}


def main(argv):
  del argv
  common.check_out(FLAGS.out)
  if FLAGS.task == "synthetic":
    common.check_like(FLAGS.like)
  data_cfg = DataConfig(task=FLAGS.task, **({"like": FLAGS.like, "scale": FLAGS.scale}
                                            if FLAGS.task == "synthetic" else {}))
  per_seed = []
  for seed in range(FLAGS.num_seeds):
    cfg = dataclasses.replace(PFCDRConfig(data=data_cfg), seed=seed)
    data, _, _ = run_inputs.load_split(cfg)
    test = data.target_test
    row = {"seed": seed}
    for opt in OPTIMIZERS:
      ctx = BaselineContext(data=data, scorer=None, params_s=None,
                            params_t={"item": np.zeros((1, FLAGS.emb_dim), np.float32)},
                            key=method.StageKeys.from_seed(seed).baselines, seed=seed)
      t0 = time.perf_counter()
      pred, _, chosen = selection.fit_predict_val(f"CMF(optimizer={opt})", ctx)
      row[opt] = {"mae": float(metrics.mae(pred, test.rating)),
                  "rmse": float(metrics.rmse(pred, test.rating)),
                  "chosen": {k: chosen[k] for k in ("lr", "alpha", "val_mae")},
                  "seconds": round(time.perf_counter() - t0, 2)}
      jax.clear_caches()
    per_seed.append(row)
    print(f"seed {seed}: MAE dense {row['adam']['mae']:.6f} ({row['adam']['seconds']} s), "
          f"deferred {row['deferred_adam']['mae']:.6f} ({row['deferred_adam']['seconds']} s)",
          flush=True)
  summary = {}
  for q in ("mae", "rmse"):
    a = np.array([r["adam"][q] for r in per_seed])
    b = np.array([r["deferred_adam"][q] for r in per_seed])
    summary[q] = {"adam_mean": float(a.mean()), "deferred_adam_mean": float(b.mean()),
                  "deferred_minus_adam": _paired(a, b)}
  same_choice = sum(r["adam"]["chosen"]["lr"] == r["deferred_adam"]["chosen"]["lr"]
                    and r["adam"]["chosen"]["alpha"] == r["deferred_adam"]["chosen"]["alpha"]
                    for r in per_seed)
  res = {"command": cli.command_line(), "task": FLAGS.task,
         **({"like": FLAGS.like, "scale": FLAGS.scale, "synthetic": True}
            if FLAGS.task == "synthetic" else {}),
         "seeds": FLAGS.num_seeds, "per_seed": per_seed, "summary": summary,
         "same_setting_chosen": f"{same_choice}/{FLAGS.num_seeds}",
         "seconds_median": {o: float(np.median([r[o]["seconds"] for r in per_seed]))
                            for o in OPTIMIZERS}}
  d = summary["mae"]["deferred_minus_adam"]
  print(f"MAE dense {summary['mae']['adam_mean']:.6f}, deferred "
        f"{summary['mae']['deferred_adam_mean']:.6f}; deferred - dense {d['mean_diff']:.2e} "
        f"(95 % CI {d['ci95'][0]:.2e} .. {d['ci95'][1]:.2e}, paired t p = {d['t_test_p']:.3f}, "
        f"{FLAGS.num_seeds} seeds); same setting chosen {res['same_setting_chosen']}")
  common.write_json(FLAGS.out, res, indent=2)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
