"""PNG plots of the model analyses (Figures 3-5 of the paper) and the detection
study.

Each figure is written to a temporary file beside ``path`` and renamed onto
it, so a reader never sees a half-written PNG.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pfcdr_jax.copyattack import runner
from pfcdr_jax.infra import figures

plt = figures.pyplot()

_METRICS = ("HR@20", "NDCG@20")


def _grouped_bars(rows: list[dict], key, labels: dict, path: Path, *,
                  figsize: tuple, xlabel: str, title: str,
                  rotation: int = 0) -> None:
  """Bars of each method side by side per ``key`` value, one panel a metric."""
  fig, axes = plt.subplots(1, 2, figsize=figsize)
  methods = list(dict.fromkeys(r.get("method", "CopyAttack") for r in rows))
  xs = list(dict.fromkeys(r[key] for r in rows))
  width = 0.8 / len(methods)
  for ax, m in zip(axes, _METRICS):
    for j, name in enumerate(methods):
      val = {r[key]: r[m] for r in rows
             if r.get("method", "CopyAttack") == name}
      ax.bar([i + j * width for i in range(len(xs))],
             [val.get(x, 0.0) for x in xs], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(xs))])
    ax.set_xticklabels([labels.get(x, str(x)) for x in xs],
                       rotation=rotation)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(m)
  axes[0].legend(fontsize=7)
  fig.suptitle(title)
  figures.save_png(fig, path)


def plot_depth(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 3: HR@20 and NDCG@20 of CopyAttack (and untrained) vs. depth.

  Args:
    rows: [{"depth": d, "method": name, "HR@20": ..., "NDCG@20": ...}].
    path: output PNG.
    dataset: name in the title.
  """
  labels = {r["depth"]: f"{r['depth']} (c={r.get('branching', '?')})"
            for r in rows}
  _grouped_bars(rows, "depth", labels, path, figsize=(9, 3.2),
                xlabel="depth d of the clustering tree",
                title=f"Effect of depth ({dataset})")


def plot_popularity(rows: list[dict], path: Path,
                    dataset: str = "ML100K-ML1M") -> None:
  """Figure 4: HR@20 / NDCG@20 by target-item popularity decile.

  Args:
    rows: [{"group": g, "method": name, "HR@20": ..., "NDCG@20": ...}],
      g = 0 most popular.
    path: output PNG.
    dataset: name in the title.
  """
  labels = {r["group"]: f"{10 * r['group']}-{10 * (r['group'] + 1)}%"
            for r in rows}
  _grouped_bars(rows, "group", labels, path, figsize=(10, 3.4),
                xlabel="item popularity group (most popular first)",
                title=f"Effect of item popularity ({dataset})", rotation=60)


def plot_budget(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 5: HR@20 / NDCG@20 of each method vs. the budget.

  Args:
    rows: [{"budget": b, "method": name, "HR@20": ..., "NDCG@20": ...}].
    path: output PNG.
    dataset: name in the title.
  """
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
  methods = list(dict.fromkeys(r["method"] for r in rows))
  for ax, m in zip(axes, _METRICS):
    for name in methods:
      pts = sorted((r["budget"], r[m]) for r in rows if r["method"] == name)
      ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
              label=name)
    ax.set_xlabel("budget (copied profiles)")
    ax.set_ylabel(m)
  axes[0].legend(fontsize=7)
  fig.suptitle(f"Effect of budget ({dataset})")
  figures.save_png(fig, path)


def plot_training_curves(curves: dict, path: Path,
                         dataset: str = "ML100K-ML1M",
                         per_seed: dict | None = None,
                         smooth: int = 8) -> None:
  """Mean reward per REINFORCE update of each learned method.

  Args:
    curves: method -> list of the mean episode reward of each update.
    path: output PNG.
    dataset: name in the title.
    per_seed: method -> [curve per seed]; when given (and > 1 seed), a
      moving average over ``smooth`` updates with a 95 % band over seeds.
    smooth: moving-average window of the banded curves.
  """
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, c in curves.items():
    # Seeds stopped by the plateau rule end early: NaN past their end.
    seeds = runner.pad_curves((per_seed or {}).get(name, []))
    if len(seeds) > 1 and seeds.shape[1] >= smooth:
      kernel = np.ones(smooth) / smooth
      sm = np.stack([np.convolve(x, kernel, mode="valid") for x in seeds])
      n = (~np.isnan(sm)).sum(0)
      keep = n >= 2
      sm, n = sm[:, keep], n[keep]
      mean = np.nanmean(sm, 0)
      half = 1.96 * np.nanstd(sm, 0, ddof=1) / np.sqrt(n)
      x = np.arange(smooth, seeds.shape[1] + 1)[keep]
      ax.plot(x, mean, label=f"{name} ({len(seeds)} seeds)", lw=1)
      ax.fill_between(x, mean - half, mean + half, alpha=0.2)
      continue
    ax.plot(range(1, len(c) + 1), c, label=name, lw=1)
  ax.set_xlabel("REINFORCE update")
  ax.set_ylabel("mean episode reward (pretend score gain)")
  ax.legend(fontsize=7)
  fig.suptitle(f"CopyAttack training curves ({dataset})")
  figures.save_png(fig, path)


def plot_spend_curves(curves: dict, path: Path,
                      dataset: str = "ML100K-ML1M") -> None:
  """HR@20 against the queries spent per target item, with 95 % intervals
  over items: each learned method untrained and at its training checkpoints,
  and the best-of-trials baseline after 0, 1, 3, 7, ... trials.

  Args:
    curves: ``runner.spend_curve`` records per method.
    path: output PNG.
    dataset: name in the title.
  """
  fig, ax = plt.subplots(figsize=(6, 3.8))
  for name, pts in curves.items():
    q = [p["queries"] for p in pts]
    h = np.asarray([p["HR@20"] for p in pts])
    lo, hi = (np.asarray([p["HR@20_ci95"][j] for p in pts]) for j in (0, 1))
    ax.errorbar(q, h, yerr=[h - lo, hi - h], label=name, marker="o", ms=3,
                lw=1, capsize=2)
  ax.set_xscale("symlog", linthresh=20)
  ax.set_xlabel("queries spent per target item (training + final attack)")
  ax.set_ylabel("HR@20 (test items)")
  ax.legend(fontsize=7)
  fig.suptitle(f"Promotion against queries spent ({dataset})")
  figures.save_png(fig, path)


def plot_detection(result: dict, path: Path,
                   dataset: str = "ML100K-ML1M") -> None:
  """Detection study: each detector's AUC per attack beside its HR@20.

  Args:
    result: ``detection_study.run_detection``'s dict.
    path: output PNG.
    dataset: name in the title.
  """
  names = list(result["attacks"])
  dets = result["detectors"]
  auc = [[result["attacks"][n]["detection"][d]["auc"] for d in dets]
         for n in names]
  fig, (ax_auc, ax_hr) = plt.subplots(
      1, 2, figsize=(11, 0.45 * len(names) + 1.8),
      gridspec_kw={"width_ratios": (3, 1)})
  im = ax_auc.imshow(auc, vmin=0.0, vmax=1.0, cmap="RdYlGn_r", aspect="auto")
  for i, row in enumerate(auc):
    for j, v in enumerate(row):
      ax_auc.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
  ax_auc.set_xticks(range(len(dets)))
  ax_auc.set_xticklabels(dets, rotation=30)
  ax_auc.set_yticks(range(len(names)))
  ax_auc.set_yticklabels(names, fontsize=8)
  ax_auc.set_title("detection ROC AUC (injected vs genuine)", fontsize=9)
  fig.colorbar(im, ax=ax_auc, fraction=0.03)
  ax_hr.barh(range(len(names)), [result["attacks"][n]["hr20"] for n in names])
  ax_hr.axvline(result["without_attack_hr20"], color="k", ls="--", lw=1,
                label="without attack")
  ax_hr.set_yticks(range(len(names)))
  ax_hr.set_yticklabels([])
  ax_hr.set_ylim(len(names) - 0.5, -0.5)
  ax_hr.set_xlabel("HR@20")
  ax_hr.legend(fontsize=7)
  fig.suptitle(f"Promotion vs detection of copied and fake profiles "
               f"({dataset})")
  figures.save_png(fig, path)
