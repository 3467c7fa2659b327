r"""What each method's transferred vectors reveal, and what the privacy costs in MAE.

  python experiments/privacy.py --task=comedy2drama          # the committed table
  python experiments/privacy.py --quick --workdir=/tmp/p      # smoke run (CI)

On one run (task, beta, seed, base model; the stage cache is shared with Table 1 via
--cache_dir), rebuilds what PFCDR, EMCDR, DP-EMCDR(eps), PriCDR-S and PFCDR-DP(eps)
send across domains, attacks them and controls that carry no user information
(``pfcdr_jax.privacy``: threat model A / B / C in its docstring), and writes
privacy.json, privacy.md and privacy.png (cold-start MAE against leakage) in
--workdir.
"""

from pathlib import Path

from absl import flags

import cli
from pfcdr_jax.privacy import study

cli.define_data_flags()
cli.define_pretrain_flags()
cli.define_method_flags()
flags.DEFINE_float("beta", 0.2, "Fraction of overlap users made cold-start (test).")
flags.DEFINE_integer("seed", 0, "Seed of the run (split, models, noise).", lower_bound=0)
flags.DEFINE_list("epsilons", ["0.5", "1", "5", "10", "100", "1000"],
                  "Privacy budgets of DP-EMCDR and PFCDR-DP (delta = 1e-5); Table 1 "
                  "runs 0.5-10, the larger ones show where the noise stops mattering.")
flags.DEFINE_bool("quick", False, "Short pretraining, quick baselines, linear decoders "
                  "only, two budgets (smoke run).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/privacy-<task>"
                    "[-quick]).")
flags.DEFINE_string("cache_dir", "runs/cache", "Stage cache (shared with Table 1).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  epsilons = cli.epsilons(FLAGS.epsilons)
  if FLAGS.quick and not FLAGS["epsilons"].present:
    epsilons = (1.0, 10.0)
  cfg = cli.pfcdr_config()
  workdir = FLAGS.workdir or f"runs/privacy-{cfg.data.task}" + ("-quick" if FLAGS.quick else "")
  out = study.run_privacy(cfg, workdir, epsilons=epsilons, seed=cfg.seed,
                          nonlinear=not FLAGS.quick, quick=FLAGS.quick)
  print(Path(workdir, "privacy.md").read_text())
  print(f"timings (s): {out['timings_s']}")
  print(f"outputs: {workdir}/ (privacy.json, privacy.md, privacy.png)")


if __name__ == "__main__":
  cli.run(main)
