r"""Which (lr, epoch) each early-stop rule selects, and how many lr-epochs it trains,
replayed exactly on one recorded pretraining per seed and domain.

  python experiments/early_stop_replay.py --task=comedy2drama --num_seeds=10 \
      --out=docs/results/early_stop_replay_comedy2drama.json
  python experiments/early_stop_replay.py --task=synthetic --like=music2movie --scale=1.0 \
      --num_seeds=10 --out=docs/results/early_stop_replay_music2movie_scale1.json

Per seed (the split and the stage keys of ``stages.prepare``, β = 0.2) each domain is
pretrained once under ``--record_rule`` (the default rule) without grid extension,
keeping every lr's held-out curve. The stacked lrs do not interact and stopping one
changes no number of another (tests/models/test_train_fast_paths.py), so a rule that
stops every lr no later than the recorded one trains exactly the recorded values up to
its own stops: ``early_stop.replay`` reads its run off the curve, and the selection
(argmin over what it trained) is the one a real run under that rule makes. Output: per
seed and domain each rule's (lr, epoch, held-out MSE), its lr-epochs (rating visits =
lr-epochs x the domain's training ratings) and epochs run; per rule whether it selects
the same as the recorded rule in every case. A selected lr at an edge of the grid,
where the real run would also train ``grid_extend`` more lrs, is flagged.
"""
import json
import sys
import time
from pathlib import Path

from absl import flags
import numpy as np

import cli
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import pretraining
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.models import early_stop
from pfcdr_jax.models import train as train_lib
from pfcdr_jax.pfcdr import method as method_lib

cli.define_data_flags()
cli.define_pretrain_flags()
flags.DEFINE_integer("num_seeds", 10, "Seeds 0..n-1.", lower_bound=1)
flags.DEFINE_float("beta", 0.2, "Fraction of overlap users made cold-start (test).")
flags.DEFINE_string("record_rule", "per_lr_reach_geometric", "The rule of the recorded "
                    "run; every rule replayed must stop each lr no later than it.")
flags.DEFINE_list("rules", ["per_lr_reach_geometric", "per_lr_reach_rise"],
                  "Per-lr rules to replay on the recorded curves.")
flags.DEFINE_string("out", None, "Write the JSON here.", required=True)
FLAGS = flags.FLAGS


def selection(curve: np.ndarray, lrs) -> dict:
  """(lr, epoch, held-out MSE) of the argmin of a replayed [E, L] curve (first on ties,
  lr-major as ``train``'s pick) and what was trained."""
  c = np.where(np.isnan(curve), np.inf, curve)
  best = np.min(c, axis=0)                       # [L]
  li = int(np.argmin(best))
  epoch = int(np.argmin(c[:, li])) + 1
  return {"lr": float(lrs[li]), "epoch": epoch, "heldout_mse": float(best[li]),
          "lr_epochs": int(np.sum(~np.isnan(curve))), "epochs_run": int(curve.shape[0]),
          "at_edge": li in (0, len(lrs) - 1)}


def main(argv):
  del argv
  for flag, names in (("rules", FLAGS.rules), ("record_rule", [FLAGS.record_rule])):
    for r in names:
      if r not in early_stop.PER_LR:
        raise ValueError(f"--{flag}: {r!r} is not a per-lr rule "
                         f"({', '.join(early_stop.PER_LR)})")
  base = cli.pfcdr_config()
  base = config_lib.override(base, {"split.beta": FLAGS.beta,
                                    "pretrain.early_stop": FLAGS.record_rule,
                                    "pretrain.grid_extend": 0})
  records = []
  for seed in range(FLAGS.num_seeds):
    cfg = config_lib.override(base, {"seed": seed})
    tcfg = config_lib.train_config(cfg)
    data, _, _ = run_inputs.load_split(cfg)
    keys = method_lib.StageKeys.from_seed(seed)
    scorer = pretraining.scorer_of(cfg)
    for name, domain, key in (("source", data.source, keys.pretrain_source),
                              ("target", data.target_train, keys.pretrain_target)):
      t0 = time.perf_counter()
      res = train_lib.train_scorer(scorer, domain, tcfg, key)
      seconds = time.perf_counter() - t0
      curve = np.asarray(res.curve, np.float64).T          # [E, L]
      rec = {"seed": seed, "domain": name, "ratings": int(domain.rating.size),
             "recorded_seconds": round(seconds, 3),
             "recorded": {"lr": res.lr, "epoch": res.epoch, "heldout_mse": res.heldout_mse},
             "curve": curve.T.tolist(), "rules": {}}
      for rule in FLAGS.rules:
        try:
          out, _ = early_stop.replay(curve, rule, tcfg.patience, tcfg.epochs)
        except ValueError as e:   # it would train beyond the recording: the rule matters
          rec["rules"][rule] = {"not_replayable": str(e)}
          continue
        rec["rules"][rule] = selection(out, tcfg.lrs)
      rec_sel = rec["rules"].get(FLAGS.record_rule) or selection(curve, tcfg.lrs)
      assert (rec_sel["lr"], rec_sel["epoch"]) == (res.lr, res.epoch), (rec_sel, res.lr, res.epoch)
      print(f"seed {seed} {name}: " + "; ".join(
          f"{r} not replayable" if "not_replayable" in v else
          f"{r} lr {v['lr']:g} epoch {v['epoch']} mse {v['heldout_mse']:.4f} "
          f"{v['lr_epochs']} lr-epochs" for r, v in rec["rules"].items()), flush=True)
      records.append(rec)
  summary = {}
  for rule in FLAGS.rules:
    got = [(r, r["rules"][rule]) for r in records]
    ok = [(r, v) for r, v in got if "not_replayable" not in v]
    same = [(v["lr"], v["epoch"]) == (r["recorded"]["lr"], r["recorded"]["epoch"])
            for r, v in ok]
    summary[rule] = {
        "same_selection": f"{sum(same)}/{len(got)}",
        "not_replayable": len(got) - len(ok),
        "lr_epochs": int(sum(v["lr_epochs"] for _, v in ok)),
        "rating_visits": int(sum(v["lr_epochs"] * r["ratings"] for r, v in ok)),
        "at_edge": int(sum(v["at_edge"] for _, v in ok))}
  ref = summary.get(FLAGS.record_rule)
  for rule, s in summary.items():
    if ref:
      s["rating_visits_vs_recorded"] = round(s["rating_visits"] / ref["rating_visits"], 4)
    print(f"{rule}: same selection {s['same_selection']} ({s['not_replayable']} not "
          f"replayable), {s['lr_epochs']} lr-epochs, "
          f"rating visits {s['rating_visits']:,}"
          + (f" ({s['rating_visits_vs_recorded']:.3f} of the recorded rule)" if ref else "")
          + f", selected lr at a grid edge {s['at_edge']}")
  out = {"command": cli.command_line(), "task": base.data.task, "beta": FLAGS.beta,
         "record_rule": FLAGS.record_rule, "patience": base.pretrain.patience,
         "seeds": list(range(FLAGS.num_seeds)), "summary": summary, "records": records}
  cache_lib.atomic_write_text(Path(FLAGS.out), json.dumps(cache_lib.jsonable(out), indent=1))
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
