"""Figure 3's panels: MAE against K per base model, and against the target rating r."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pfcdr_jax.infra import figures

MODEL_NAMES = {"mf": "MF", "gmf": "GMF", "dnn": "YouTube-DNN"}


def _band(ax, x, mean, std, label, **kw):
  mean, std = np.asarray(mean), np.asarray(std)
  line, = ax.plot(x, mean, marker="o", ms=3, label=label, **kw)
  ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)


def _k_panel(ax, agg: dict, title: str) -> None:
  _band(ax, agg["k"], agg["val_mae"], agg["val_mae_std"], "validation")
  _band(ax, agg["k"], agg["test_mae"], agg["test_mae_std"], "test")
  for i, (k, mae) in enumerate(zip(agg["k_selected_by_seed"],
                                   agg["test_mae_at_selected_by_seed"])):
    ax.plot([k], [mae], "r*", ms=9, label="K chosen on validation" if i == 0 else None)
  ax.set_xscale("log")
  ax.set_xlabel("K (selected target users)")
  ax.set_ylabel("MAE")
  ax.set_title(title)
  ax.legend(fontsize=7)


def _r_panel(ax, rows: Sequence[dict]) -> None:
  r = [row["r"] for row in rows]
  _band(ax, r, [x["val_mae"] for x in rows], [x["val_mae_std"] for x in rows], "validation")
  _band(ax, r, [x["test_mae"] for x in rows], [x["test_mae_std"] for x in rows], "test")
  for row in rows:
    ks = sorted(set(row["k_by_seed"]))
    ax.annotate("K=" + "/".join(map(str, ks)), (row["r"], row["test_mae"]), fontsize=6,
                textcoords="offset points", xytext=(0, 8), ha="center")
  ax.set_xticks(r)
  ax.set_xlabel("target rating r of the inversion")
  ax.set_ylabel("MAE")
  ax.set_title("(d) MF: target rating r")
  ax.legend(fontsize=7)


def figure3(k_aggs: dict[str, dict], rating_rows: Sequence[dict] | None, path: str | Path,
            *, title: str = "") -> Path:
  """(a)-(c) one panel per base model of `k_aggs` (``k_sweep.aggregate``), (d) r sweep."""
  plt = figures.pyplot()
  n = len(k_aggs) + (1 if rating_rows else 0)
  fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
  for i, (model, agg) in enumerate(k_aggs.items()):
    _k_panel(axes[0, i], agg, f"({'abc'[i]}) {MODEL_NAMES.get(model, model)}")
  if rating_rows:
    _r_panel(axes[0, -1], rating_rows)
  return figures.save_png(fig, path, title)


def table3(rows: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
  """Table 3 as bars: training / testing seconds and storage (log scales)."""
  plt = figures.pyplot()
  names = [r["method"] for r in rows]
  x = np.arange(len(names))
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for ax, key, label in ((axes[0], "train_s", "training time (s)"),
                         (axes[1], "test_s", "testing time (s)")):
    vals = [np.nan if r[key] is None else max(r[key], 1e-3) for r in rows]
    ax.bar(x, vals)
    ax.set_ylabel(label)
  axes[2].bar(x, [np.nan if r["sent_bytes"] is None else max(r["sent_bytes"] + r["kept_bytes"], 1)
                  for r in rows])
  axes[2].set_ylabel("storage (bytes)")
  for ax in axes:
    if ax is not axes[1]:   # testing: few, similar values
      ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
  return figures.save_png(fig, path, title)
