"""Figure 4's panels: t-SNE (scikit-learn) of ground-truth vs transferred embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pfcdr_jax.infra import figures


def embed(true: np.ndarray, transferred: np.ndarray, seed: int) -> np.ndarray:
  """2-D t-SNE of the pooled ``[true; transferred]`` points: [2n, 2]."""
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  X = np.concatenate([true, transferred]).astype(np.float64)
  perplexity = float(min(30.0, max(2.0, (len(X) - 1) / 3.0)))
  return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
              ).fit_transform(X)


def figure4(panels: dict[str, tuple[np.ndarray, np.ndarray]], stats: dict, path: str | Path,
            *, seed: int = 0, title: str = "") -> Path:
  """One panel per method: truth (blue) and transferred (orange) in one t-SNE each."""
  plt = figures.pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.3), squeeze=False)
  for ax, (name, (true, moved)) in zip(axes[0], panels.items()):
    xy = embed(true, moved, seed)
    n = len(true)
    ax.scatter(xy[:n, 0], xy[:n, 1], s=4, c="tab:blue", label="target (ground truth)")
    ax.scatter(xy[n:, 0], xy[n:, 1], s=4, c="tab:orange", label="transferred")
    s = stats[name]
    ax.set_title(f"{name}\nmean dist {s['mean_distance']:.3f}, MMD² {s['mmd2']:.3f}",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="lower right")
  return figures.save_png(fig, path, title)
