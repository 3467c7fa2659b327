r"""Benchmark of PFCDR at the paper's scale: inversion, top-k, whole pipeline, memory.

  python experiments/bench.py --like=music2movie --scale=1.0 --out=bench.json

Synthetic data of the Table 2 sizes times --scale. Every comparison is measured
side by side in this one process (the machine may be shared, so ratios are what
count); what each part measures is documented in ``benchmarks/suite.py``:

* pipeline: PFCDR stage by stage (``pfcdr_jax.pfcdr.method``), with the test MAE;
* inversion: iterative vs closed form, their prototypes' error, the roofline;
* top-k: the library's selection vs numpy ``argpartition`` for each K (set and
  sorted), the lax.top_k kernel, and lax.sort / lax.approx_min_k on a sample;
* peak resident memory of the process;
* pipeline_full: the real main job (``experiments/pfcdr.py --task=synthetic``) at
  --scale in a child process, stage by stage, with its peak memory;
* scaling (--scaling=0.3,1,3, --scaling_repeats=3 for medians, --scaling_also=book2movie:1
  for the paper's largest task): the same at several sizes, with each stage's growth
  exponent over all of them and between consecutive ones (``benchmarks/pipeline.py``).

Writes --out (JSON) and prints a table.
"""
from __future__ import annotations

import json
import sys

from absl import app
from absl import flags
from absl import logging

import os  # pylint: disable=g-import-not-at-top
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/
from benchmarks import pipeline as benchmarks_pipeline  # pylint: disable=g-import-not-at-top
from benchmarks import suite as benchmarks  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("like", "music2movie", "Table 2 template of the synthetic data.")
flags.DEFINE_float("scale", 1.0, "Multiplier of every Table 2 count.")
flags.DEFINE_string("out", "bench.json", "Output JSON path.")
flags.DEFINE_integer("seed", 0, "Seed of data, split and keys.")
flags.DEFINE_float("beta", 0.2, "Share of overlap users made cold-start test users.")
flags.DEFINE_float("lr", 0.01, "The single pretraining learning rate.")
flags.DEFINE_integer("epochs", 5, "Pretraining epochs.")
flags.DEFINE_integer("batch_size", 4096, "Pretraining batch size.")
flags.DEFINE_integer("inversion_chunk", None,
                     "Users per chunk of the closed form (None: inversion.chunk_size_for).")
flags.DEFINE_integer("iter_users", 128, "Users in the iterative-inversion sample.")
flags.DEFINE_integer("iter_chunk", 128, "Users per chunk of the iterative path.")
flags.DEFINE_list("topk_ks", ["100", "10000", "70000"], "K values of the top-k benchmark.")
flags.DEFINE_list("pipeline_topk_grid", ["0.001", "0.01", "0.1"],
                  "Fractions of the valid target users tried for K on the val users.")
flags.DEFINE_integer("topk_chunk", None,
                     "Cold users per chunk of the top-k kernel (None: topk.DEFAULT_CHUNK).")
flags.DEFINE_integer("sample_users", 128, "Cold users in the lax.sort / approx_min_k sample.")
flags.DEFINE_bool("topk_extras", True,
                  "Also time the lax.top_k kernel at every K, lax.sort and approx_min_k.")
flags.DEFINE_integer("topk_reps", 5, "Repetitions of the top-k set timings (medians).",
                     lower_bound=1)
flags.DEFINE_bool("full_job", True, "pipeline_full: also run the real main job at --scale.")
flags.DEFINE_list("scaling", [], "scaling: run the real main job at these scales "
                  "(e.g. 0.3,1,3).")
flags.DEFINE_integer("scaling_repeats", 1, "scaling: runs of each scale, interleaved; the "
                     "rows hold the medians (>= 1).")
flags.DEFINE_list("scaling_also", [], "scaling: single runs of other templates, "
                  "<like>:<scale> each (e.g. book2movie:1).")
flags.DEFINE_multi_string("job_flag", [], "A flag of those main jobs (repeatable), e.g. "
                          "--job_flag=--epochs=10.")


def _scales() -> tuple[float, ...]:
  try:
    scales = tuple(float(x) for x in FLAGS.scaling)
  except ValueError:
    raise ValueError(f"--scaling={','.join(FLAGS.scaling)}: expected comma-separated "
                     "numbers > 0") from None
  if any(not 0 < x < float("inf") for x in scales):
    raise ValueError(f"--scaling={','.join(FLAGS.scaling)}: every scale must be > 0")
  return scales


def bench_config() -> benchmarks.BenchConfig:
  """The benchmark's config from the flags (bad values: ValueError, before any work)."""
  if FLAGS.scaling_repeats < 1:
    raise ValueError(f"--scaling_repeats={FLAGS.scaling_repeats}: expected an integer >= 1")
  if not FLAGS.scaling and (FLAGS.scaling_also or FLAGS.scaling_repeats != 1):
    raise ValueError("--scaling_also / --scaling_repeats belong to --scaling, which is "
                     "empty; expected --scaling=<scales> with them")
  return benchmarks.BenchConfig(
      like=FLAGS.like, scale=FLAGS.scale, seed=FLAGS.seed, beta=FLAGS.beta, lr=FLAGS.lr,
      epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
      inversion_chunk=FLAGS.inversion_chunk, iter_users=FLAGS.iter_users,
      iter_chunk=FLAGS.iter_chunk, topk_ks=tuple(int(k) for k in FLAGS.topk_ks),
      pipeline_topk_grid=tuple(float(f) for f in FLAGS.pipeline_topk_grid),
      topk_chunk=FLAGS.topk_chunk, sample_users=FLAGS.sample_users,
      topk_extras=FLAGS.topk_extras, topk_reps=FLAGS.topk_reps, full_job=FLAGS.full_job,
      scaling_scales=_scales(), scaling_repeats=FLAGS.scaling_repeats,
      scaling_also=tuple(benchmarks_pipeline.parse_also(FLAGS.scaling_also,
                                                        "--scaling_also")),
      job_flags=tuple(FLAGS.job_flag))


def main(argv):
  del argv
  try:
    cfg = bench_config()
    out = benchmarks.run(cfg, " ".join(["python"] + sys.argv), log=logging.info)
  except (ValueError, RuntimeError) as e:   # bad flags; a main job that failed
    sys.exit(f"error: {e}")
  with open(FLAGS.out, "w") as f:
    json.dump(out, f, indent=2)
  print(benchmarks.format_table(out))


if __name__ == "__main__":
  app.run(main)
