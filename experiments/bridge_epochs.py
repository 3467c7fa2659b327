r"""How PFCDR's cold-start MAE moves with the bridge's training epochs.

  python experiments/bridge_epochs.py --task=comedy2drama --betas=0.2,0.5,0.8 --seed=0

For each beta this rebuilds the run of ``run_pfcdr`` (same split, keys and stage cache:
pretraining and prototypes are loaded when a Table 1 sweep already made them, trained
otherwise), then fits the linear bridge with every epoch count of --epochs_grid and
the least-squares bridge, picks K on the validation users for each, and prints the
bridge's training MSE, the validation MAE and the test MAE. A protocol study (the
pipeline itself trains --bridge_epochs = 200); results go to --out.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from pfcdr_jax import bridge as bridge_lib  # noqa: E402
from pfcdr_jax import metrics as metrics_lib  # noqa: E402
from pfcdr_jax import pipeline  # noqa: E402
from pfcdr_jax.data import tasks  # noqa: E402
from pfcdr_jax.models import scorers as scorers_lib  # noqa: E402

_TASK = flags.DEFINE_enum("task", "comedy2drama", list(tasks.TASK_NAMES), "CDR task.")
_BETAS = flags.DEFINE_list("betas", ["0.2", "0.5", "0.8"], "Cold-start fractions.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the run.")
_GRID = flags.DEFINE_list("epochs_grid", ["50", "200", "1000"], "Bridge epochs tried.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Pretraining epochs (task preset if unset; "
                               "must match the sweep's to reuse its cache).")
_TOPK_GRID = flags.DEFINE_list("topk_grid", [str(f) for f in pipeline.DEFAULT_TOPK_GRID],
                               "Fractions of the target users tried for K (the pipeline's).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache (Table 1's).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data directory.")
_SCALE = flags.DEFINE_float("scale", 0.01, "Size of --task=synthetic relative to the paper.")
_OUT = flags.DEFINE_string("out", "bridge_epochs.json", "Output JSON path.")

_P = pipeline   # the run's own stage functions, so nothing here re-implements them


def _study(cfg: pipeline.PFCDRConfig, grid: list[int]) -> list[dict]:
  data, _, data_hash = _P._load_split(cfg)  # pylint: disable=protected-access
  k_src, k_tgt, k_inv_s, k_inv_t, k_bridge, _, _ = _P._stage_keys(cfg)  # pylint: disable=protected-access
  scorer = scorers_lib.get_scorer(cfg.base_model)
  cache = _P._stage_cache(cfg, Path("."))  # pylint: disable=protected-access
  params = {}
  for name, domain, key in (("source", data.source, k_src),
                            ("target", data.target_train, k_tgt)):
    params[name] = _P._pretrain(scorer, domain, cfg, key, cache,  # pylint: disable=protected-access
                                _P._pretrain_cache_key(cfg, data_hash, name), name, {})  # pylint: disable=protected-access
  W_s = scorer.user_repr(params["source"], jnp.arange(data.source.n_users))
  V_s = scorer.item_matrix(params["source"])
  W_t = scorer.user_repr(params["target"], jnp.arange(data.target_train.n_users))
  V_t = scorer.item_matrix(params["target"])
  cold = np.concatenate([data.val_users, data.test_users]).astype(np.int32)
  bridge_users = np.asarray(data.train_users, np.int32)
  n_bridge = len(bridge_users)
  P_s = _P._prototypes(scorer, W_s, V_s, np.concatenate([bridge_users, cold]), k_inv_s, cfg,  # pylint: disable=protected-access
                       cache, _P._prototype_cache_key(cfg, data_hash, "source"), "source", {})  # pylint: disable=protected-access
  P_t = _P._prototypes(scorer, W_t, V_t, bridge_users, k_inv_t, cfg, cache,  # pylint: disable=protected-access
                       _P._prototype_cache_key(cfg, data_hash, "target"), "target", {})  # pylint: disable=protected-access
  P_train, P_cold = P_s[:n_bridge], P_s[n_bridge:]
  valid = _P._topk_candidates_mask(cfg, data)  # pylint: disable=protected-access
  row_of_user = np.full(data.target_train.n_users, -1, np.int64)
  row_of_user[cold] = np.arange(len(cold))
  val, test = data.target_val, data.target_test
  bridges = {str(e): np.asarray(bridge_lib.fit_linear_bridge(
      jnp.asarray(P_train), jnp.asarray(P_t), k_bridge, lr=cfg.bridge_lr, epochs=e,
      batch_size=cfg.bridge_batch_size)) for e in grid}
  bridges["least_squares"] = np.linalg.lstsq(P_train, P_t, rcond=None)[0]
  rows = []
  for name, W in bridges.items():
    P_hat = P_cold @ W
    k, val_mae = _P._select_k(P_hat, W_t, valid, V_t, val, row_of_user, cfg)  # pylint: disable=protected-access
    pred = _P._topk_predict(P_hat, W_t, valid, V_t, test.user, row_of_user, test.item, k, cfg)  # pylint: disable=protected-access
    rows.append({"beta": cfg.beta, "bridge": name, "k": k,
                 "train_mse": float(np.mean((P_train @ W - P_t) ** 2)),
                 "val_mae": val_mae.get(k, float("nan")),   # nan: a single K, not chosen
                 "test_mae": float(metrics_lib.mae(pred, test.rating))})
  return rows


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.WARNING)
  preset = pipeline.TASK_PRESETS[_TASK.value]
  grid = [int(e) for e in _GRID.value]
  rows = []
  for beta in (float(b) for b in _BETAS.value):
    cfg = pipeline.PFCDRConfig(task=_TASK.value, beta=beta, seed=_SEED.value,
                               data_dir=_DATA_DIR.value, scale=_SCALE.value,
                               cache_dir=_CACHE_DIR.value, epochs=_EPOCHS.value or preset["epochs"],
                               batch_size=preset["batch_size"],
                               topk_grid=tuple(float(f) for f in _TOPK_GRID.value))
    for r in _study(cfg, grid):
      rows.append(r)
      print(f"beta={r['beta']:g} bridge={r['bridge']:>13}: train_mse={r['train_mse']:.4f} "
            f"K={r['k']} val_mae={r['val_mae']:.4f} test_mae={r['test_mae']:.4f}", flush=True)
  with open(_OUT.value, "w") as f:
    json.dump({"task": _TASK.value, "seed": _SEED.value, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
