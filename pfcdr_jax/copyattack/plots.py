"""PNG plots of the model analyses (Figures 3-5 of the paper).

Each figure is written to a temporary file beside ``path`` and renamed onto
it, so a reader never sees a half-written PNG.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_METRICS = ("HR@20", "NDCG@20")


def _save(fig, path: Path) -> None:
  """Saves ``fig`` as PNG at ``path`` atomically and closes it."""
  path = Path(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                             suffix=".tmp")
  os.close(fd)
  try:
    fig.tight_layout()
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    if os.path.exists(tmp):
      os.unlink(tmp)


def _bar_panels(labels: list[str], rows: list[dict], path: Path, *,
                figsize: tuple, color: str, xlabel: str, title: str,
                rotation: int = 0) -> None:
  """One bar chart per metric of ``_METRICS``, side by side."""
  fig, axes = plt.subplots(1, 2, figsize=figsize)
  for ax, m in zip(axes, _METRICS):
    ax.bar(labels, [r[m] for r in rows], color=color)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(m)
    if rotation:
      ax.tick_params(axis="x", rotation=rotation)
  fig.suptitle(title)
  _save(fig, path)


def plot_depth(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 3: HR@20 and NDCG@20 of CopyAttack vs. tree depth.

  Args:
    rows: [{"depth": d, "HR@20": ..., "NDCG@20": ...}].
    path: output PNG.
    dataset: name in the title.
  """
  _bar_panels([str(r["depth"]) for r in rows], rows, path, figsize=(8, 3),
              color="tab:blue", xlabel="depth d of the clustering tree",
              title=f"Effect of depth ({dataset})")


def plot_popularity(rows: list[dict], path: Path,
                    dataset: str = "ML100K-ML1M") -> None:
  """Figure 4: HR@20 / NDCG@20 by target-item popularity decile.

  Args:
    rows: [{"group": g, "HR@20": ..., "NDCG@20": ...}], g = 0 most popular.
    path: output PNG.
    dataset: name in the title.
  """
  labels = [f"{10 * r['group']}-{10 * (r['group'] + 1)}%" for r in rows]
  _bar_panels(labels, rows, path, figsize=(9, 3), color="tab:orange",
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
  _save(fig, path)
