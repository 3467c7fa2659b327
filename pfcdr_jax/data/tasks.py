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
import pandas as pd

from pfcdr_jax.data import amazon
from pfcdr_jax.data import download as dl
from pfcdr_jax.data import movielens
from pfcdr_jax.data import synthetic
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import deduplicate, read_interaction_table

TASK_NAMES = ("comedy2drama", "book2movie", "book2music", "music2movie", "custom", "synthetic")
# Tasks whose data (not only the split) depends on the seed.
SEEDED_TASKS = ("synthetic",)

# MovieLens genre tasks: name -> (variant, source genre, target genre).
GENRE_TASKS = {"comedy2drama": ("ml-1m", "Comedy", "Drama")}


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


def load_task(task: str, *, data_dir: Optional[PathLike] = None, seed: int = 0,
              scale: float = 0.01, like: str = "music2movie",
              source_file: Optional[PathLike] = None, target_file: Optional[PathLike] = None,
              download: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Loads a named cross-domain task.

  Args:
    task: One of :data:`TASK_NAMES`:
      ``comedy2drama`` (MovieLens-1M, Comedy-not-Drama -> Drama-not-Comedy),
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

  Returns:
    ``(source_df, target_df, info)``; see the module docstring.

  Raises:
    ValueError: unknown task or missing/extra arguments.
    DownloadError: data files missing and not downloadable.
    DataError: bad content, an empty domain.
  """
  if task not in TASK_NAMES:
    raise ValueError(f"unknown task {task!r}; expected one of {TASK_NAMES}")
  if task != "custom" and (source_file is not None or target_file is not None):
    raise ValueError(f"source_file/target_file are only used by task 'custom', not {task!r}")
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
      frames.append(read_interaction_table(path))
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
