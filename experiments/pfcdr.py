r"""Runs PFCDR and its baselines on one task, beta and seed.

  python experiments/pfcdr.py                         # comedy2drama, beta=0.2
  python experiments/pfcdr.py --task=music2movie --data_dir=D
  python experiments/pfcdr.py --task=custom --source_file=a.tsv --target_file=b.tsv
  python experiments/pfcdr.py --task=synthetic --like=music2movie --scale=0.05

Writes config.json, metrics.jsonl, results.json and split_manifest.json in
--workdir and prints a MAE/RMSE table.
"""

import logging
import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pfcdr_jax import pipeline  # noqa: E402
from pfcdr_jax.data import tasks  # noqa: E402
from pfcdr_jax.data.errors import DataError  # noqa: E402

TASKS = pipeline.TASK_PRESETS   # per-task presets; flags override them

_TASK = flags.DEFINE_enum("task", "comedy2drama", list(tasks.TASK_NAMES), "CDR task.")
_BETA = flags.DEFINE_float("beta", 0.2, "Fraction of overlap users made cold-start (test).")
_BASE = flags.DEFINE_enum("base_model", "mf", ["mf", "gmf", "dnn"], "Base scorer.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every random choice of the run.")
_TOPK = flags.DEFINE_string(
    "topk", "auto", "K of top-k matching: a count (e.g. 500), a fraction of the trained "
    "target users (e.g. 0.1), or 'auto' to choose on the validation users.")
_TARGET_RATING = flags.DEFINE_float("target_rating", 5.0, "Inversion target rating r.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Data directory (default $PFCDR_DATA_DIR or ~/.cache/pfcdr_jax).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default runs/<task>-b<beta>-"
                               "<model>-s<seed>).")
_SOURCE_FILE = flags.DEFINE_string("source_file", None, "Source interactions (--task=custom).")
_TARGET_FILE = flags.DEFINE_string("target_file", None, "Target interactions (--task=custom).")
_SCALE = flags.DEFINE_float("scale", 0.01, "Size of --task=synthetic relative to the paper.")
_LIKE = flags.DEFINE_enum("like", "music2movie", ["music2movie", "book2movie", "book2music"],
                          "Paper task whose sizes --task=synthetic mimics.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Max pretraining epochs (preset if unset).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Pretraining batch size (preset if unset).")
_LRS = flags.DEFINE_list("lrs", ["0.001", "0.005", "0.01", "0.02", "0.1"],
                         "Pretraining learning-rate grid (paper's grid), searched jointly.")
_INV_STEPS = flags.DEFINE_integer("inversion_steps", 300, "Inversion steps.")
_INV_METHOD = flags.DEFINE_enum("inversion_method", "auto", ["auto", "iterative", "closed_form"],
                                "auto = closed form for scorers linear in b.")
_INV_LOSS = flags.DEFINE_enum("inversion_loss", "mse", ["mse", "bce"], "Inversion loss.")
_EPS = flags.DEFINE_float("eps", None, "Early-stop threshold of the inversion loss.")
_INCLUDE_UNTRAINED = flags.DEFINE_bool(
    "include_untrained", False, "Let top-k pick target users without training ratings "
    "(parity with the public code; off by default).")
_NO_CACHE = flags.DEFINE_bool("no_cache", False, "Recompute every stage.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Stage cache (default <workdir>/cache).")


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  preset = TASKS[_TASK.value]
  cfg = pipeline.PFCDRConfig(
      task=_TASK.value, beta=_BETA.value, seed=_SEED.value, base_model=_BASE.value,
      data_dir=_DATA_DIR.value, scale=_SCALE.value, like=_LIKE.value,
      source_file=_SOURCE_FILE.value, target_file=_TARGET_FILE.value,
      lrs=tuple(float(x) for x in _LRS.value),
      epochs=_EPOCHS.value or preset["epochs"],
      batch_size=_BATCH.value or preset["batch_size"],
      target_rating=_TARGET_RATING.value, inversion_steps=_INV_STEPS.value,
      inversion_method=_INV_METHOD.value, inversion_loss=_INV_LOSS.value,
      inversion_eps=_EPS.value, topk=_TOPK.value,
      include_untrained=_INCLUDE_UNTRAINED.value, use_cache=not _NO_CACHE.value,
      cache_dir=_CACHE_DIR.value)
  workdir = _WORKDIR.value or os.path.join(
      "runs", f"{cfg.task}-b{cfg.beta}-{cfg.base_model}-s{cfg.seed}")
  try:
    results = pipeline.run_pfcdr(cfg, workdir)
  except DataError as e:
    # Bad or missing input: the message names the file, line and what was expected.
    sys.exit(f"error: {e}")
  print(pipeline.format_table(results))
  print(f"results: {os.path.join(workdir, 'results.json')}")
  print("timings (s): " + ", ".join(f"{k}={v}" for k, v in results["timings_s"].items()))


if __name__ == "__main__":
  app.run(main)
