"""Named tasks: one call from a task name to two universal frames plus provenance.

``load_task`` returns ``(source_df, target_df, info)``; the frames are
deduplicated (policy of :func:`interactions.deduplicate`) and non-empty, and
``info`` always has ``task``, ``synthetic``, ``source_name``, ``target_name``,
``files`` (each with its path and sha256), ``n_duplicates_dropped``, ``thin``
(None, or how the ratings were thinned: :func:`thin_frames`) and ``counts`` (of
the frames returned, after thinning).
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
from pfcdr_jax.data.checksums import sha256_file
from pfcdr_jax.data.custom_tables import read_interaction_table
from pfcdr_jax.data.errors import DataError, PathLike
from pfcdr_jax.data.interactions import STAR_RANGE, deduplicate, used_codes

TASK_NAMES = ("comedy2drama", "book2movie", "book2music", "music2movie", "custom", "synthetic",
              "action2romance", "ml100k_comedy2drama")
# Tasks whose data (not only the split) depends on the seed; any task does when thinned
# (:func:`depends_on_seed`).
SEEDED_TASKS = ("synthetic",)
# Generator knobs of ``synthetic`` (make_synthetic_cdr) and their defaults.
SYNTHETIC_KNOBS = {"signal": 1.0, "bias_std": None, "tail": 1.0, "density": 1.0,
                   "mean_rating": None}
# Entropy tag of the thinning's random stream (next to the data seed).
_THIN_STREAM = 0x7448

# MovieLens genre tasks: name -> (variant, source genre, target genre). Each domain
# keeps the movies of its genre that lack the other one (``movielens.genre_domains``),
# so the item sets are disjoint and the users shared, as in comedy2drama.
GENRE_TASKS = {"comedy2drama": ("ml-1m", "Comedy", "Drama"),
               "action2romance": ("ml-1m", "Action", "Romance"),
               "ml100k_comedy2drama": ("ml-100k", "Comedy", "Drama")}


def depends_on_seed(task: str, thin: Optional[float] = None, misalign: bool = False) -> bool:
  """Whether the frames of ``task`` (not only its split) depend on the data seed."""
  return task in SEEDED_TASKS or thin is not None or misalign


def _check_thin(thin: Optional[float], thin_tail: float) -> None:
  if thin is not None and not (np.isfinite(thin) and 0 < thin <= 1):
    raise ValueError(f"--thin={thin:g}: expected a fraction of the ratings kept, 0 < thin <= 1")
  if not (np.isfinite(thin_tail) and thin_tail >= 0):
    raise ValueError(f"--thin_tail={thin_tail:g}: expected a log-normal sigma >= 0")
  if thin is None and thin_tail != 0:
    raise ValueError(f"--thin_tail={thin_tail:g} needs --thin (the fraction kept)")


def _lognormal_weights(rng: np.random.Generator, keys: pd.Series, sigma: float
                       ) -> np.ndarray:
  """One log-normal(0, sigma) weight per distinct key (in sorted key order), per row."""
  codes, uniques = pd.factorize(keys, sort=True)
  return rng.lognormal(0.0, sigma, len(uniques))[codes]


def _keep_rows(rng: np.random.Generator, weights: np.ndarray, n_keep: int) -> np.ndarray:
  """Sorted row indices of a weighted sample without replacement (exponential keys)."""
  keys = rng.exponential(size=len(weights)) / weights
  return np.sort(np.argpartition(keys, n_keep - 1)[:n_keep])


def thin_frames(source: pd.DataFrame, target: pd.DataFrame, *, thin: float,
                thin_tail: float = 0.0, seed: int = 0
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
  """Keeps ``round(thin * n)`` of each domain's ``n`` ratings (at least one), seeded.

  ``thin_tail`` = 0 keeps a uniform random subset. Above 0 a rating's weight is a
  log-normal(0, thin_tail) weight of its user (one per user, shared by both domains)
  times one of its item, and the kept subset is a weighted sample without replacement,
  so the thinned data is long-tailed in users and items. Row order is kept.

  Args:
    source, target: Universal frames.
    thin: Fraction of each domain's ratings kept, in (0, 1].
    thin_tail: Log-normal sigma of the user and item weights (>= 0).
    seed: The data seed (a stream of its own is derived from it).

  Returns:
    ``(source, target)`` thinned, with a fresh index.
  """
  _check_thin(thin, thin_tail)
  rng = np.random.default_rng([int(seed), _THIN_STREAM])
  users = pd.concat([source["user"], target["user"]], ignore_index=True)
  user_w = _lognormal_weights(rng, users, thin_tail)
  out = []
  for df, w_user in ((source, user_w[:len(source)]), (target, user_w[len(source):])):
    weights = w_user * _lognormal_weights(rng, df["item"], thin_tail)
    rows = _keep_rows(rng, weights, max(1, round(thin * len(df))))
    out.append(df.iloc[rows].reset_index(drop=True))
  return out[0], out[1]


def _counts(source: pd.DataFrame, target: pd.DataFrame) -> dict:
  users = {label: _IdColumn(df["user"]) for label, df in (("source", source),
                                                          ("target", target))}
  counts = {label: {"users": users[label].n_distinct(),
                    "items": _IdColumn(df["item"]).n_distinct(), "ratings": int(len(df))}
            for label, df in (("source", source), ("target", target))}
  counts["n_overlap"] = users["source"].n_shared(users["target"])
  return counts


class _IdColumn:
  """An id column's distinct ids; of a categorical without missing values, from its
  codes (:func:`interactions.used_codes`, no string hashed)."""

  def __init__(self, column: pd.Series):
    self.column = column
    self.used = None
    if isinstance(column.dtype, pd.CategoricalDtype):
      codes = column.array.codes
      if not len(codes) or codes.min() >= 0:
        self.used = used_codes(codes, len(column.array.categories))

  def n_distinct(self) -> int:
    if self.used is not None:
      return int(np.count_nonzero(self.used))
    return int(self.column.nunique())

  def distinct(self) -> pd.Index:
    if self.used is not None:
      return self.column.array.categories[self.used]
    return pd.Index(self.column.dropna().unique())

  def n_shared(self, other: "_IdColumn") -> int:
    """Distinct ids in both columns: by the categories in use where both are
    categoricals over the very same categories (the generator's two domains), else an
    Index intersection (a hash join, not a Python set built row by row)."""
    if (self.used is not None and other.used is not None
        and self.column.array.categories is other.column.array.categories):
      return int(np.count_nonzero(self.used & other.used))
    return len(self.distinct().intersection(other.distinct()))


def _finish(task: str, source: pd.DataFrame, target: pd.DataFrame, info: dict, *,
            thin: Optional[float] = None, thin_tail: float = 0.0, seed: int = 0,
            distinct_pairs: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """Deduplicates, checks for empty domains, thins and fills the common info fields.

  ``distinct_pairs``: the frames hold each (user, item) pair once by construction (the
  synthetic generator draws distinct items per user; tested), so the deduplication pass
  is skipped. The split still finds and drops any repeat, with a warning.
  """
  dup_s = dup_t = 0
  if not distinct_pairs:
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
  info["thin"] = None
  if thin is not None:
    before = _counts(source, target)
    source, target = thin_frames(source, target, thin=thin, thin_tail=thin_tail, seed=seed)
    info["thin"] = {"fraction": float(thin), "tail": float(thin_tail), "seed": int(seed),
                    "counts_before": before}
  info["counts"] = _counts(source, target)
  if thin is not None and info["counts"]["n_overlap"] == 0:
    raise DataError(task, f"thin={thin:g} (thin_tail={thin_tail:g}) leaves no overlapping "
                    f"user (of {info['thin']['counts_before']['n_overlap']}); expected a "
                    "larger thin")
  logging.info("task %s: source %s, target %s, %d overlapping users%s", info["task"],
               info["counts"]["source"], info["counts"]["target"], info["counts"]["n_overlap"],
               f" (thinned to {thin:g})" if thin is not None else "")
  return source, target, info


def misalign_overlap(source: pd.DataFrame, target: pd.DataFrame, seed: int
                     ) -> tuple[pd.DataFrame, dict]:
  """The negative control of transfer: the overlapping users' source profiles shuffled.

  Each overlapping user's source ratings are handed to an overlapping user drawn by a
  seeded random permutation of their ids (source-only users keep theirs), so the two domains still share users and sizes but a user's source profile
  no longer says anything about the same user's target ratings. A cross-domain method
  that works must lose its gain over the target-only floors on such data.

  Returns:
    ``(source with permuted overlap ids, {"seed", "n_users_moved"})``.
  """
  overlap = np.array(sorted(set(source["user"]).intersection(target["user"])), dtype=object)
  rng = np.random.default_rng([int(seed), 0x4D15A11])
  perm = rng.permutation(len(overlap))
  mapping = dict(zip(overlap, overlap[perm]))
  source = source.copy()
  source["user"] = source["user"].map(lambda u: mapping.get(u, u))
  return source, {"seed": int(seed), "n_users_moved": int(np.sum(perm != np.arange(len(perm))))}


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
              download: bool = True, rating_range: Optional[tuple[float, float]] = None,
              signal: float = 1.0, bias_std: Optional[float] = None, tail: float = 1.0,
              density: float = 1.0, mean_rating: Optional[float] = None,
              thin: Optional[float] = None, thin_tail: float = 0.0, misalign: bool = False
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
    seed: The data seed: of ``synthetic`` and of the thinning (the split has its own
      seed).
    scale: Size multiplier for ``synthetic``.
    like: Template for ``synthetic`` (``synthetic.TEMPLATES``).
    source_file: Source interactions for ``custom``.
    target_file: Target interactions for ``custom``.
    download: Allow downloads of missing files.
    rating_range: ``custom`` only: inclusive (lo, hi) scale, a rating outside is a
      DataError naming its line; None accepts any finite rating and warns (with the
      count and the range seen) when some fall outside the paper's 1-5 stars.
    signal, bias_std, tail, density, mean_rating: ``synthetic`` only: the generator's
      knobs (:func:`synthetic.make_synthetic_cdr`).
    thin: Any task: fraction of each domain's ratings kept after deduplication, in
      (0, 1]; None keeps all (:func:`thin_frames`).
    thin_tail: With ``thin``: log-normal sigma of the per-user and per-item keep
      weights (0: uniform).
    misalign: Any task: the overlapping users' source profiles shuffled among them, last
      (:func:`misalign_overlap`; ``info["misaligned"]`` says how, else None).

  Returns:
    ``(source_df, target_df, info)``; see the module docstring.

  Raises:
    ValueError: unknown task, missing/extra or bad arguments.
    DownloadError: data files missing and not downloadable.
    DataError: bad content, an empty domain, no overlapping user left by ``thin``.
  """
  if task not in TASK_NAMES:
    raise ValueError(f"unknown task {task!r}; expected one of {TASK_NAMES}")
  if task != "custom" and (source_file is not None or target_file is not None
                           or rating_range is not None):
    raise ValueError("source_file/target_file/rating_range are only used by task 'custom', "
                     f"not {task!r}")
  knobs = {"signal": signal, "bias_std": bias_std, "tail": tail, "density": density,
           "mean_rating": mean_rating}
  changed = [k for k, v in knobs.items() if v != SYNTHETIC_KNOBS[k]]
  if task != "synthetic" and changed:
    raise ValueError(f"{'/'.join(changed)} only used by task 'synthetic', not {task!r}")
  _check_thin(thin, thin_tail)
  data_dir = Path(data_dir).expanduser() if data_dir is not None else dl.default_data_dir()
  if task == "synthetic":
    frames = synthetic.make_synthetic_cdr(seed, like=like, scale=scale, **knobs)
  else:
    frames = _read_task(task, data_dir, source_file=source_file, target_file=target_file,
                        download=download, rating_range=rating_range)
  source, target, info = _finish(task, *frames, thin=thin, thin_tail=thin_tail, seed=seed,
                                 distinct_pairs=task == "synthetic")
  info["misaligned"] = None
  if misalign:
    source, info["misaligned"] = misalign_overlap(source, target, seed)
    logging.warning("task %s: --misalign: the overlapping users' source profiles are "
                    "shuffled among them (a negative control: no transfer signal is left)",
                    task)
  return source, target, info


def _read_task(task: str, data_dir: Path, *, source_file: Optional[PathLike],
               target_file: Optional[PathLike], download: bool,
               rating_range: Optional[tuple[float, float]]
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
  """(source, target, info) of a task read from files, before :func:`_finish`."""
  if task == "custom":
    if source_file is None or target_file is None:
      raise ValueError("task 'custom' needs source_file and target_file")
    frames, files = [], []
    for role, path in (("source", source_file), ("target", target_file)):
      path = Path(path)
      frames.append(read_interaction_table(path, rating_range=_checked_range(rating_range)))
      _warn_outside_stars(frames[-1], path, rating_range)
      files.append({"role": role, "path": str(path), "sha256": sha256_file(path)})
    info = {"task": "custom", "synthetic": False, "source_name": Path(source_file).stem,
            "target_name": Path(target_file).stem, "files": files}
    return frames[0], frames[1], info

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
    return source, target, info

  src_cat, tgt_cat = amazon.AMAZON_TASKS[task]
  paths = amazon.locate_amazon_files([src_cat, tgt_cat], data_dir, download=download)
  source, src_prov = amazon.load_amazon_file(paths[src_cat])
  target, tgt_prov = amazon.load_amazon_file(paths[tgt_cat])
  info = {"task": task, "synthetic": False, "source_name": src_cat, "target_name": tgt_cat,
          "files": [dict(src_prov, role="source"), dict(tgt_prov, role="target")]}
  return source, target, info
