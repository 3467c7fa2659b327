r"""Regenerates the paper's Table 3: training time, testing time and storage per method.

  python experiments/table3.py --task=comedy2drama --cache_dir=/tmp/pfcdr_stage_cache
  python experiments/table3.py --quick                               # minutes

One run (--seed, --beta, --base_model) of every Table 1 method on this machine
(pfcdr_jax/studies/cost.py); the device is recorded, and on an accelerator the same
command runs unchanged. The split and the pretrained scorers come from the stage cache
for the methods; pretraining itself is timed from scratch (--time_pretraining).
Writes <workdir>/table3.json, table3.md and table3.png.
"""

import json
import os
import time

from absl import flags

import cli
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import stages
from pfcdr_jax.baselines import registry
from pfcdr_jax.studies import cost
from pfcdr_jax.studies import plots
from pfcdr_jax.harness import records
from pfcdr_jax.studies import reports

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
flags.DEFINE_bool("quick", False, "Short training, one setting per baseline (smoke).")
flags.DEFINE_string("workdir", None, "Output root (runs/table3/<task>; +'-quick').")
flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache (shared with table1.py).")
flags.DEFINE_float("beta", 0.2, "Cold-start fraction.")
flags.DEFINE_integer("seed", 0, "The run's seed.")
flags.DEFINE_list("baselines", list(registry.NAMES), "Methods beyond the main ones.")
flags.DEFINE_bool("time_pretraining", True, "Also time both pretrainings from scratch.")
flags.DEFINE_bool("loaded", False, "Say in the table that the machine was loaded.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  task = FLAGS.task
  cfg = cli.pfcdr_config(baselines=tuple(FLAGS.baselines), overrides={
      "split.beta": FLAGS.beta, "seed": FLAGS.seed})
  root = FLAGS.workdir or os.path.join("runs", "table3", task + ("-quick" if FLAGS.quick else ""))
  t0 = time.perf_counter()
  run = stages.prepare(cfg, root)
  result = {"task": task, "beta": FLAGS.beta, "seed": FLAGS.seed,
            "base_model": cfg.pretrain.base_model, "command": cli.command_line(),
            "device": records.device_info(), "loaded": FLAGS.loaded,
            **cost.table(run, cfg, cfg.baselines.names,
                         time_pretraining=FLAGS.time_pretraining)}
  if FLAGS.quick:
    result["notes"] = ["QUICK MODE: short training; a smoke test, not a result."]
  result["seconds"] = round(time.perf_counter() - t0, 1)
  cache_lib.atomic_write_text(os.path.join(root, "table3.json"),
                              json.dumps(cache_lib.jsonable(result), indent=1))
  md = os.path.join(root, "table3.md")
  cache_lib.atomic_write_text(md, reports.table3_markdown(result))
  png = plots.table3(result["methods"], os.path.join(root, "table3.png"),
                     title=f"{task}, β = {FLAGS.beta:g}, {cfg.pretrain.base_model}, "
                           f"{result['device']['backend']}")
  print(open(md).read())
  print(f"wrote {png}, {md} in {result['seconds']:.0f}s")


if __name__ == "__main__":
  cli.run(main)
