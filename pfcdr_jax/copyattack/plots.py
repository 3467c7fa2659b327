"""PNG plots of the model analyses (Figures 3-5 of the paper)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_depth(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 3: HR@20 and NDCG@20 of CopyAttack vs. tree depth.

  Args:
    rows: [{"depth": d, "HR@20": ..., "NDCG@20": ...}].
    path: output PNG.
  """
  fig, axes = plt.subplots(1, 2, figsize=(8, 3))
  x = [r["depth"] for r in rows]
  for ax, m in zip(axes, ("HR@20", "NDCG@20")):
    ax.bar([str(v) for v in x], [r[m] for r in rows], color="tab:blue")
    ax.set_xlabel("depth d of the clustering tree")
    ax.set_ylabel(m)
  fig.suptitle(f"Effect of depth ({dataset})")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_popularity(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 4: HR@20 / NDCG@20 by target-item popularity decile.

  Args:
    rows: [{"group": g, "HR@20": ..., "NDCG@20": ...}], g = 0 most popular.
    path: output PNG.
  """
  fig, axes = plt.subplots(1, 2, figsize=(9, 3))
  labels = [f"{10 * r['group']}-{10 * (r['group'] + 1)}%" for r in rows]
  for ax, m in zip(axes, ("HR@20", "NDCG@20")):
    ax.bar(labels, [r[m] for r in rows], color="tab:orange")
    ax.set_xlabel("item popularity group (most popular first)")
    ax.set_ylabel(m)
    ax.tick_params(axis="x", rotation=60)
  fig.suptitle(f"Effect of item popularity ({dataset})")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_budget(rows: list[dict], path: Path, dataset: str = "ML100K-ML1M") -> None:
  """Figure 5: HR@20 / NDCG@20 of each method vs. the budget.

  Args:
    rows: [{"budget": b, "method": name, "HR@20": ..., "NDCG@20": ...}].
    path: output PNG.
  """
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
  methods = list(dict.fromkeys(r["method"] for r in rows))
  for ax, m in zip(axes, ("HR@20", "NDCG@20")):
    for name in methods:
      pts = sorted((r["budget"], r[m]) for r in rows if r["method"] == name)
      ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
              label=name)
    ax.set_xlabel("budget (copied profiles)")
    ax.set_ylabel(m)
  axes[0].legend(fontsize=7)
  fig.suptitle(f"Effect of budget ({dataset})")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
