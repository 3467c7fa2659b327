"""Named tasks: one call from a task name to two universal frames plus provenance.

``load_task`` returns ``(source_df, target_df, info)``; the frames are
deduplicated (policy of :func:`interactions.deduplicate`) and non-empty, and
``info`` always has ``task``, ``synthetic``, ``source_name``, ``target_name``,
``files`` (each with its path and sha256) and ``n_duplicates_dropped``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from absl import logging
import numpy as np
import pandas as pd

from pfcdr_jax.data import amazon
from pfcdr_jax.data import download as dl
from pfcdr_jax.data import movielens
from pfcdr_jax.data import synthetic
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import STAR_RANGE, deduplicate, read_interaction_table

TASK_NAMES = ("comedy2drama", "book2movie", "book2music", "music2movie", "custom", "synthetic",
              "action2romance", "ml100k_comedy2drama")
# Tasks whose data (not only the split) depends on the seed.
SEEDED_TASKS = ("synthetic",)

# MovieLens genre tasks: name -> (variant, source genre, target genre). Each domain
# keeps the movies of its genre that lack the other one (``movielens.genre_domains``),
# so the item sets are disjoint and the users shared, as in comedy2drama.
GENRE_TASKS = {"comedy2drama": ("ml-1m", "Comedy", "Drama"),
               "action2romance": ("ml-1m", "Action", "Romance"),
               "ml100k_comedy2drama": ("ml-100k", "Comedy", "Drama")}


def _finish(task: str, source: pd.DataFrame, target: pd.DataFrame, info: dict
            ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Deduplicates, checks for empty domains and fills the common info fields."""
  source, dup_s = deduplicate(source, name=f"{task} source ({info['source_name']})")
  target, dup_t = deduplicate(target, name=f"{task} target ({info['target_name']})")
  for label, df in (("source", source), ("target", target)):
    if len(df) == 0:
      raise DataError(info.get(f"{label}_name", task), f"empty {label} domain: no ratings")
  info = dict(info)
  previous = info.get("n_duplicates_dropped", {})
  info["n_duplicates_dropped"] = {
      "source": int(previous.get("source", 0)) + dup_s,
      "target": int(previous.get("target", 0)) + dup_t,
  }
  info["counts"] = {
      label: {"users": int(df["user"].nunique()), "items": int(df["item"].nunique()),
              "ratings": int(len(df))}
      for label, df in (("source", source), ("target", target))}
  info["counts"]["n_overlap"] = len(set(source["user"]).intersection(target["user"]))
  logging.info("task %s: source %s, target %s, %d overlapping users", info["task"],
               info["counts"]["source"], info["counts"]["target"], info["counts"]["n_overlap"])
  return source, target, info


def _checked_range(rating_range) -> Optional[tuple[float, float]]:
  if rating_range is None:
    return None
  lo, hi = (float(x) for x in rating_range)
  if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
    raise ValueError(f"--rating_range={lo:g},{hi:g}: expected two finite numbers lo < hi")
  return lo, hi


def _warn_outside_stars(frame: pd.DataFrame, path: Path, rating_range) -> None:
  if rating_range is not None:
    return
  r = frame["rating"].to_numpy()
  outside = int(np.sum((r < STAR_RANGE[0]) | (r > STAR_RANGE[1])))
  if outside:
    logging.warning("%s: %d rating(s) outside the paper's %g-%g stars (seen %g to %g); "
                    "pass --rating_range=lo,hi to declare the scale", path, outside,
                    *STAR_RANGE, r.min(), r.max())


def load_task(task: str, *, data_dir: Optional[PathLike] = None, seed: int = 0,
              scale: float = 0.01, like: str = "music2movie",
              source_file: Optional[PathLike] = None, target_file: Optional[PathLike] = None,
              download: bool = True, rating_range: Optional[tuple[float, float]] = None
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Loads a named cross-domain task.

  Args:
    task: One of :data:`TASK_NAMES`:
      ``comedy2drama`` (MovieLens-1M, Comedy-not-Drama -> Drama-not-Comedy),
      ``action2romance`` (MovieLens-1M, Action-not-Romance -> Romance-not-Action),
      ``ml100k_comedy2drama`` (MovieLens-100K, Comedy-not-Drama -> Drama-not-Comedy),
      ``book2movie`` / ``book2music`` / ``music2movie`` (Amazon 2014 5-core),
      ``custom`` (``source_file`` and ``target_file``, any CSV/TSV with a
      header) or ``synthetic`` (:func:`synthetic.make_synthetic_cdr`).
    data_dir: Root data directory; default ``$PFCDR_DATA_DIR`` or
      ``~/.cache/pfcdr_jax``.
    seed: Seed for ``synthetic`` (the split has its own seed).
    scale: Size multiplier for ``synthetic``.
    like: Table 2 template for ``synthetic``.
    source_file: Source interactions for ``custom``.
    target_file: Target interactions for ``custom``.
    download: Allow downloads of missing files.
    rating_range: ``custom`` only: inclusive (lo, hi) scale, a rating outside is a
      DataError naming its line; None accepts any finite rating and warns (with the
      count and the range seen) when some fall outside the paper's 1-5 stars.

  Returns:
    ``(source_df, target_df, info)``; see the module docstring.

  Raises:
    ValueError: unknown task or missing/extra arguments.
    DownloadError: data files missing and not downloadable.
    DataError: bad content, an empty domain.
  """
  if task not in TASK_NAMES:
    raise ValueError(f"unknown task {task!r}; expected one of {TASK_NAMES}")
  if task != "custom" and (source_file is not None or target_file is not None
                           or rating_range is not None):
    raise ValueError("source_file/target_file/rating_range are only used by task 'custom', "
                     f"not {task!r}")
  data_dir = Path(data_dir).expanduser() if data_dir is not None else dl.default_data_dir()

  if task == "synthetic":
    source, target, info = synthetic.make_synthetic_cdr(seed, like=like, scale=scale)
    return _finish(task, source, target, info)

  if task == "custom":
    if source_file is None or target_file is None:
      raise ValueError("task 'custom' needs source_file and target_file")
    frames, files = [], []
    for role, path in (("source", source_file), ("target", target_file)):
      path = Path(path)
      frames.append(read_interaction_table(path, rating_range=_checked_range(rating_range)))
      _warn_outside_stars(frames[-1], path, rating_range)
      files.append({"role": role, "path": str(path), "sha256": dl.sha256_file(path)})
    info = {"task": "custom", "synthetic": False, "source_name": Path(source_file).stem,
            "target_name": Path(target_file).stem, "files": files}
    return _finish(task, frames[0], frames[1], info)

  if task in GENRE_TASKS:
    variant, src_genre, tgt_genre = GENRE_TASKS[task]
    ratings, movies, prov = movielens.load_movielens(variant, data_dir, download=download)
    source, target = movielens.genre_domains(ratings, movies, src_genre, tgt_genre)
    files = [dict(f, role="ratings+movies") for f in prov["files"]]
    if "archive" in prov:
      files.append({"role": "archive", "path": prov["archive"],
                    "sha256": prov["archive_sha256"]})
    info = {"task": task, "synthetic": False, "source_name": f"{variant}:{src_genre}",
            "target_name": f"{variant}:{tgt_genre}", "files": files,
            "provenance": prov}
    return _finish(task, source, target, info)

  src_cat, tgt_cat = amazon.AMAZON_TASKS[task]
  paths = amazon.locate_amazon_files([src_cat, tgt_cat], data_dir, download=download)
  source, src_prov = amazon.load_amazon_file(paths[src_cat])
  target, tgt_prov = amazon.load_amazon_file(paths[tgt_cat])
  info = {"task": task, "synthetic": False, "source_name": src_cat, "target_name": tgt_cat,
          "files": [dict(src_prov, role="source"), dict(tgt_prov, role="target")]}
  return _finish(task, source, target, info)
