"""Figure 2: each method's MAE / RMSE per base model, as bars with the floors as lines."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pfcdr_jax.infra import figures
from pfcdr_jax.harness.summary import METRICS
from pfcdr_jax.harness.summary import Row


def plot_base_models(rows: Sequence[Row], path: str | Path, *,
                     methods: Sequence[str] = ("PriCDR-S", "EMCDR", "PTUPCDR", "PFCDR"),
                     floors: Sequence[str] = ("GlobalMean", "ItemMean"),
                     base_models: Sequence[str] = ("mf", "gmf", "dnn"), title: str = "") -> Path:
  """Figure 2: bars of each method's MAE / RMSE per base model (error bars = std).

  Floors (the same for every base model) are drawn as dashed lines.
  """
  plt = figures.pyplot()

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
  return figures.save_png(fig, path, title, rect=(0, 0.08, 1, 1))
