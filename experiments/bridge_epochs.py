r"""How PFCDR's cold-start MAE moves with the bridge's training epochs.

  python experiments/bridge_epochs.py --task=comedy2drama --betas=0.2,0.5,0.8 --seed=0

For each beta this rebuilds the run of ``run_pfcdr`` (same split, keys and stage cache:
pretraining and prototypes are loaded when a Table 1 sweep already made them, trained
otherwise), then fits the linear bridge with every epoch count of --epochs_grid and
the least-squares bridge, picks K on the validation users for each, and prints the
bridge's training MSE, the validation MAE and the test MAE. A protocol study (the
pipeline itself trains --bridge_epochs = 200); results go to --out.
"""
import dataclasses
import json

from absl import flags
import numpy as np

import cli
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method
from pfcdr_jax.models import metrics
from pfcdr_jax.harness import stages

cli.define_data_flags()
cli.define_pretrain_flags()
flags.DEFINE_list("betas", ["0.2", "0.5", "0.8"], "Cold-start fractions.")
flags.DEFINE_integer("seed", 0, "Seed of the run.", lower_bound=0)
flags.DEFINE_list("epochs_grid", ["50", "200", "1000"], "Bridge epochs tried.")
flags.DEFINE_list("topk_grid", [str(f) for f in config_lib.DEFAULT_TOPK_GRID],
                  "Fractions of the target users tried for K (the pipeline's).")
flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache (Table 1's).")
flags.DEFINE_string("out", "bridge_epochs.json", "Output JSON path.")
FLAGS = flags.FLAGS


def _study(cfg: config_lib.PFCDRConfig, grid: list[int]) -> list[dict]:
  run = stages.prepare(cfg, ".")
  protos = stages.run_prototypes(run, cfg, ".")
  n_bridge = len(method.bridge_users(run.data))
  P_train, P_cold = protos.source[:n_bridge], protos.source[n_bridge:]
  W_t, V_t = method.representations(run.scorer, run.params_t, run.data.target_train.n_users)
  valid, cold = method.candidates(run.data, cfg.topk), method.cold_users(run.data)
  bridges = {str(e): method.fit_bridge(P_train, protos.target, run.keys.bridge,
                                       dataclasses.replace(cfg.bridge, epochs=e))[0] for e in grid}
  bridges["least_squares"] = np.linalg.lstsq(P_train, protos.target, rcond=None)[0]
  rows, r = [], cfg.inversion.target_rating
  for name, W in bridges.items():
    P_hat = method.transfer(W, P_cold)
    k, val_mae = method.select_k(P_hat, W_t, valid, V_t, run.data.target_val, cold, cfg.topk, r)
    pred = method.predict_cold(P_hat, W_t, valid, V_t, run.data.target_test, cold, k,
                               cfg.topk, r)
    rows.append({"beta": cfg.split.beta, "bridge": name, "k": k,
                 "train_mse": float(np.mean((P_train @ W - protos.target) ** 2)),
                 "val_mae": val_mae.get(k, float("nan")),   # nan: a single K, not chosen
                 "test_mae": float(metrics.mae(pred, run.data.target_test.rating))})
  return rows


def main(argv):
  del argv
  rows = []
  for beta in (float(b) for b in FLAGS.betas):
    cfg = cli.pfcdr_config(overrides={"split.beta": beta})
    for r in _study(cfg, [int(e) for e in FLAGS.epochs_grid]):
      rows.append(r)
      print(f"beta={r['beta']:g} bridge={r['bridge']:>13}: train_mse={r['train_mse']:.4f} "
            f"K={r['k']} val_mae={r['val_mae']:.4f} test_mae={r['test_mae']:.4f}", flush=True)
  with open(FLAGS.out, "w") as f:
    json.dump({"task": FLAGS.task, "seed": FLAGS.seed, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
