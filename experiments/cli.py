"""The flags the PFCDR scripts share, and the one way they become a config: flag groups
defined at import, :func:`pfcdr_config` (precedence, flag -> path: ``configs/pfcdr.py``),
:func:`run` around ``main`` (output set-up, compile cache, bad input as one ``error:`` line)."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any, Callable

from absl import app, flags

from configs import flag_paths
from configs import pfcdr as presets
from pfcdr_jax.harness import comparison
from pfcdr_jax.harness import contrasts as contrasts_lib
from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import inversion_objective
from pfcdr_jax.infra import progress
from pfcdr_jax.infra import xla_cache
from pfcdr_jax.data import synthetic
from pfcdr_jax.data import tasks
from pfcdr_jax.data.errors import DataError
from pfcdr_jax.models import train

FLAGS = flags.FLAGS


def _value(name: str, v: Any) -> Any:
  """A flag's value as its config field holds it (lists of numbers -> tuples of floats)."""
  special = {"no_cache": lambda: not v, "patience": lambda: None if v == 0 else v}
  if name in special or not isinstance(v, list):
    return special[name]() if name in special else v
  try:
    return tuple(float(x) for x in v)
  except ValueError:
    raise ValueError(f"--{name}={','.join(v)}: expected comma-separated numbers") from None


def define_data_flags() -> None:
  """--task and what each task's loader reads."""
  flags.DEFINE_enum("task", "comedy2drama", list(tasks.TASK_NAMES), "CDR task.")
  flags.DEFINE_string("data_dir", None, "Data dir ($PFCDR_DATA_DIR or ~/.cache/pfcdr_jax).")
  flags.DEFINE_float("scale", 0.01, "Size of --task=synthetic relative to its template "
                     "(the paper's task; sparse/longtail: 1.0 is their real size).")
  flags.DEFINE_enum("like", "music2movie", list(synthetic.TEMPLATES),
                    "Template of --task=synthetic: a paper task's sizes, or the shape of a "
                    "sparse / long-tailed real pair.")
  flags.DEFINE_float("signal", 1.0, "--task=synthetic: weight of the planted shared "
                     "user-item interaction (0: none).")
  flags.DEFINE_float("bias_std", None, "--task=synthetic: std of planted user biases "
                     "(shared by both domains) and item biases (default: the template's, 0.5; "
                     "0 gives the paper tasks' data of before 2026-12-05).")
  flags.DEFINE_float("tail", 1.0, "--task=synthetic: multiplier of the log-normal sigma of "
                     "user activity and item popularity.")
  flags.DEFINE_float("density", 1.0, "--task=synthetic: multiplier of the number of "
                     "ratings at fixed users and items.")
  flags.DEFINE_float("mean_rating", None, "--task=synthetic: centre of the planted ratings "
                     "before rounding/clipping (default: the template's).")
  flags.DEFINE_float("thin", None, "Any task: fraction of each domain's ratings kept, in "
                     "(0, 1], seeded by --seed (default: all).")
  flags.DEFINE_float("thin_tail", 0.0, "With --thin: log-normal sigma of per-user and "
                     "per-item keep weights (0: uniform; > 0: long-tailed).")
  flags.DEFINE_string("source_file", None, "Source interactions (--task=custom).")
  flags.DEFINE_string("target_file", None, "Target interactions (--task=custom).")
  flags.DEFINE_list("rating_range", None, "lo,hi: --task=custom's rating scale (default: "
                    "any finite rating; warned outside 1-5).")
  flags.DEFINE_bool("misalign", False, "Negative control: shuffle the overlapping users' "
                    "source profiles among them (no transfer signal left).")


def define_pretrain_flags(*, base_model: bool = True) -> None:
  """The base scorer and its training (presets fill what is not given)."""
  if base_model:
    flags.DEFINE_enum("base_model", "mf", ["mf", "gmf", "dnn"], "Base scorer.")
  flags.DEFINE_integer("epochs", None, "Max pretraining epochs (preset).", lower_bound=1)
  flags.DEFINE_integer("batch_size", None, "Pretraining batch (preset).", lower_bound=1)
  flags.DEFINE_list("lrs", None, "Pretraining lr grid (default: the paper's).")
  flags.DEFINE_enum("optimizer", None, list(train.OPTIMIZERS), "auto (default: deferred_adam for large tables, else adam), adam "
                    "(dense), deferred_adam (dense Adam's trajectory at row-sparse cost) "
                    "or lazy_adam.")
  flags.DEFINE_enum("shuffle", None, list(train.SHUFFLES), "Epoch orders: numpy or jax.")
  flags.DEFINE_integer("patience", None, "Stop after N epochs, no held-out gain (0: never).",
                       lower_bound=0)
  flags.DEFINE_enum("early_stop", None, list(train.EARLY_STOPS), "Early-stop rule.")
  flags.DEFINE_enum("dnn_tower", "linear", ["linear", "mlp"], "DNN user tower: Linear d->d or MLP.")
  flags.DEFINE_enum("offsets", None, ["none", "global", "bias"], "Scorer rating offsets: "
                    "mu + b_u + c_j (bias, default), mu (global) or none (the paper's).")
  flags.DEFINE_integer("grid_extend", None, "Extra lrs tried beyond an edge of --lrs while "
                       "the best lr sits on it (default 2; 0: never).", lower_bound=0)
  flags.DEFINE_bool("shard_tables", None, "Shard the pretraining tables by rows over every "
                    "device (of every process with --coordinator_address): same result, "
                    "memory split (models/sharded_tables.py).")
  flags.DEFINE_bool("strict", False, "A learned stage that fails its sanity gate (held-out "
                    "MSE / validation MAE not below its floor) ends the run with exit 1.")


def define_method_flags() -> None:
  """PFCDR's own stages: inversion, bridge, top-k."""
  flags.DEFINE_float("target_rating", 5.0, "Inversion target rating r.")
  flags.DEFINE_integer("inversion_steps", 300, "Inversion steps.", lower_bound=1)
  flags.DEFINE_enum("inversion_method", "auto", ["auto", "iterative", "closed_form"], "auto ="
                    " closed form for scorers linear in b.")
  flags.DEFINE_enum("b0_draw", None, list(inversion_objective.B0_DRAWS),
                    "Normals of b0: hash or jax.")
  flags.DEFINE_enum("inversion_loss", "mse", ["mse", "bce"], "Inversion loss.")
  flags.DEFINE_float("eps", None, "Early-stop threshold of the inversion loss.")
  flags.DEFINE_integer("bridge_epochs", None, "Bridge / EMCDR map epochs (200).", lower_bound=1)
  flags.DEFINE_string("topk", "auto", "K: a count (500), a fraction of the trained target "
                      "users (0.1), or 'auto' (chosen on the validation users).")
  flags.DEFINE_bool("include_untrained", False, "Top-k may pick untrained target users.")
  flags.DEFINE_enum("method", "pfcdr", ["pfcdr", "pfcdr_plus"], "pfcdr_plus: PFCDR+ too.")


def define_sweep_flags(*, default_workdir: str) -> None:
  """Seeds, --quick, the shared cache and the seed stack of the table scripts."""
  flags.DEFINE_integer("num_seeds", 10, "Independent runs, seeds 0..N-1.", lower_bound=1)
  flags.DEFINE_bool("quick", False, "1 seed, few epochs, one setting per baseline (smoke).")
  flags.DEFINE_string("workdir", None, f"Output root ({default_workdir}; +'-quick').")
  flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache shared by all cells.")
  flags.DEFINE_enum("seed_stack", "auto", list(comparison.SEED_STACK_MODES), "Pretrain "
                    "unfinished seeds as one vmapped stack (auto: on an accelerator only).")


def define_contrast_flags() -> None:
  """--contrasts: the file of planned contrasts the tables test and Holm-correct."""
  flags.DEFINE_string("contrasts", str(presets.PLANNED_CONTRASTS), "JSON file of the "
                      "planned contrasts (pairs of methods declared before the runs; "
                      "default: experiments/configs/planned_contrasts.json).")


def planned_contrasts() -> contrasts_lib.PlannedContrasts:
  """The --contrasts file, read and checked (shown relative to the repository)."""
  path = os.path.abspath(FLAGS.contrasts)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  inside = os.path.commonpath([path, root]) == root
  return contrasts_lib.load_contrasts(
      path, shown_as=os.path.relpath(path, root) if inside else FLAGS.contrasts)


def pfcdr_config(task: str | None = None, *, baselines: tuple[str, ...] = (),
                 overrides: dict | None = None) -> config_lib.PFCDRConfig:
  """The run's config from the defined flags (``configs.pfcdr.get_config``)."""
  if "method" in FLAGS and FLAGS.method == "pfcdr_plus" and "PFCDR+" not in baselines:
    baselines = tuple(baselines) + ("PFCDR+",)   # a registry entry (baselines.registry)
  return presets.get_config(
      task or FLAGS.task, quick="quick" in FLAGS and FLAGS.quick, baselines=baselines,
      defaults=flag_paths.from_flags(FLAGS, presets.FLAG_PATHS, _value, given=False),
      given=flag_paths.from_flags(FLAGS, presets.FLAG_PATHS, _value, given=True),
      overrides=overrides)


def epsilons(values: list[str]) -> tuple[float, ...]:
  """A ``--epsilons`` list flag as positive numbers (ValueError naming the flag)."""
  text = ",".join(values)
  try:
    out = tuple(float(e) for e in values)
  except ValueError:
    raise ValueError(f"--epsilons={text}: expected numbers") from None
  if not out or not min(out) > 0:
    raise ValueError(f"--epsilons={text}: budgets must be > 0")
  return out


def command_line() -> str:
  """The command as typed (the tables' "Command:" line)."""
  return "python " + " ".join(shlex.quote(a) for a in sys.argv)


# Several hosts: every process runs the same command with its own --process_id.
flags.DEFINE_string("coordinator_address", None, "host:port of process 0: start "
                    "jax.distributed with --num_processes and --process_id (several hosts; "
                    "process 0 writes the outputs).")
flags.DEFINE_integer("num_processes", None, "Processes of a jax.distributed run.",
                     lower_bound=1)
flags.DEFINE_integer("process_id", None, "This process's index in 0..num_processes-1.",
                     lower_bound=0)


def _start_distributed() -> None:
  """``jax.distributed.initialize`` from the three flags (all or none must be given)."""
  given = [FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id]
  if all(v is None for v in given):
    return
  if any(v is None for v in given):
    raise ValueError("--coordinator_address, --num_processes and --process_id go together")
  if FLAGS.process_id >= FLAGS.num_processes:
    raise ValueError(f"--process_id={FLAGS.process_id}: expected 0..{FLAGS.num_processes - 1}")
  import jax  # pylint: disable=import-outside-toplevel
  # Collectives between CPU processes (no effect on accelerator backends); set before
  # anything starts a backend.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                             num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)


def run(main: Callable[[list[str]], None]) -> None:
  """``app.run(main)`` with the output set up and bad input as one ``error:`` line."""
  def wrapped(argv):
    try:
      _start_distributed()
    except ValueError as e:
      sys.exit(f"error: {e}")
    progress.configure_output(FLAGS.verbosity)
    xla_cache.enable()   # compiled kernels kept on disk between runs ($PFCDR_XLA_CACHE=0: off)
    try:
      main(argv)
    except (DataError, ValueError) as e:
      sys.exit(f"error: {e}")

  app.run(wrapped)
