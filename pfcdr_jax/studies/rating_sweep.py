"""MAE against the inversion's target rating r (the paper's Figure 3 d).

For each r the prototypes of both domains are inverted (or read from the stage cache:
r is part of the prototype cache key) and PFCDR runs as in the main job
(``method.fit_predict``), K chosen on the validation users at that r. The pretrained
scorers do not depend on r and are prepared once. At r = 5 (the default) the result
is the main job's PFCDR exactly (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.harness import stages
from pfcdr_jax.harness import records

RATINGS = (1.0, 2.0, 3.0, 4.0, 5.0)


def sweep_rating(run: run_inputs.RunInputs, cfg: config_lib.PFCDRConfig, workdir: str | Path,
                 ratings: Sequence[float] = RATINGS) -> list[dict]:
  """One row per r: ``{"r", "k", "val_mae", "test_mae", "test_rmse"}``.

  Args:
    run: ``stages.prepare(cfg, workdir)``; cfg: the run (its r is replaced).
    workdir: where the default stage cache lives.
    ratings: the target ratings tried.
  """
  rows = []
  test = run.data.target_test
  for r in ratings:
    c = config_lib.override(cfg, {"inversion.target_rating": float(r)})
    protos = stages.run_prototypes(run, c, workdir)
    fit = method_lib.fit_predict(run.scorer, run.params_s, run.params_t, run.data, run.keys,
                                 inversion=c.inversion, bridge=c.bridge, topk=c.topk,
                                 protos=protos)
    rows.append({"r": float(r), "k": int(fit.k),
                 "val_mae": fit.val_mae_by_k.get(fit.k, float("nan")),
                 "test_mae": float(metrics_lib.mae(fit.pred, test.rating)),
                 "test_rmse": float(metrics_lib.rmse(fit.pred, test.rating)),
                 "n_candidates": fit.n_candidates})
  return rows


def summarize(rows_by_seed: Sequence[Sequence[dict]]) -> list[dict]:
  """Mean and sample std over seeds per r (and every seed's chosen K)."""
  out = []
  for i, first in enumerate(rows_by_seed[0]):
    col = [rows[i] for rows in rows_by_seed]
    entry = {"r": first["r"], "k_by_seed": [c["k"] for c in col]}
    for key in ("val_mae", "test_mae", "test_rmse"):
      v = np.array([c[key] for c in col], np.float64)
      entry[key] = float(v.mean())
      entry[f"{key}_std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
    out.append(entry)
  return out


def run_cells(cfg: config_lib.PFCDRConfig, num_seeds: int, root,
              ratings: Sequence[float] = RATINGS) -> list[list[dict]]:
  """The r sweep of every seed under ``root/cells`` (finished ones are read back)."""
  suffix = "-r" + "_".join(f"{r:g}" for r in ratings)
  out = []
  for seed in range(num_seeds):
    c = config_lib.override(cfg, {"seed": seed})
    rec = records.cached(records.cell_path(root, "r", c, suffix), c,
                         lambda c=c: {"rows": sweep_rating(stages.prepare(c, root), c, root,
                                                           ratings)})
    out.append(rec["rows"])
    records.release_compiled()
  return out
