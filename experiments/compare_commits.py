r"""The main job at two commits, seed by seed: are the results the same, and how fast?

  python experiments/compare_commits.py --old=a5c7f8a --task=comedy2drama \
      --num_seeds=10 --workdir=runs/cmp_c2d --out=runs/cmp_c2d.json

Runs ``experiments/pfcdr.py <args> --seed=<s> --no_cache`` once per seed at ``--old``
(checked out with ``git worktree`` under the workdir, its own package on
``PYTHONPATH`` and its own XLA cache) and at this checkout, all seeds of the current
code first, then the old ones, and compares every method's MAE and RMSE and the
selections (``results.json["selected"]``) seed by seed: how many are bit-identical, the
largest difference, and the paired mean difference. Seeds already run in the workdir
are read, not rerun (so a killed run resumes); the worktree is removed at the end. Also reports each arm's in-process
seconds (``timings_s["total"]``): one run per seed, arms one after another, so a
speed figure, not a controlled benchmark.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_string("old", None, "The commit to compare against.", required=True)
flags.DEFINE_string("task", "comedy2drama", "--task of the main job.")
flags.DEFINE_list("args", [], "Further flags of the main job, e.g. like=music2movie,scale=1.0.")
flags.DEFINE_integer("num_seeds", 10, "Seeds 0..n-1.", lower_bound=1)
flags.DEFINE_string("workdir", None, "Where the runs and the old worktree go.", required=True)
flags.DEFINE_string("out", None, "Output JSON.", required=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(arm: str, code_dir: str, seed: int, env: dict) -> dict:
  # Absolute: the old arm runs in its worktree, not here.
  out = os.path.join(os.path.abspath(FLAGS.workdir), arm, f"s{seed}")
  results = os.path.join(out, "results.json")
  if not os.path.exists(results):
    cmd = [sys.executable, "experiments/pfcdr.py", f"--task={FLAGS.task}",
           *(f"--{a}" for a in FLAGS.args), f"--seed={seed}", "--no_cache",
           f"--workdir={out}"]
    proc = subprocess.run(cmd, cwd=code_dir, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
      tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
      raise RuntimeError(f"{arm} seed {seed} failed ({proc.returncode}): {tail}")
  if not os.path.exists(results):
    raise RuntimeError(f"{arm} seed {seed} wrote no {results}")
  with open(results) as f:
    return json.load(f)


def main(argv):
  del argv
  if not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.out))):
    sys.exit(f"error: --out={FLAGS.out}: its directory does not exist")
  os.makedirs(FLAGS.workdir, exist_ok=True)
  old_dir = os.path.join(os.path.abspath(FLAGS.workdir), "old_tree")
  try:
    old_sha = subprocess.run(["git", "rev-parse", FLAGS.old], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    new_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    if not os.path.isdir(old_dir):
      subprocess.run(["git", "worktree", "add", "--detach", old_dir, old_sha], cwd=ROOT,
                     check=True, capture_output=True, text=True)
  except subprocess.CalledProcessError as e:
    first = ((e.stderr or "").strip().splitlines() or [str(e)])[0]
    sys.exit(f"error: git: {first} (--old={FLAGS.old})")
  env_new = dict(os.environ)
  env_old = dict(os.environ, PYTHONPATH=old_dir,
                 PFCDR_XLA_CACHE=os.path.join(os.path.abspath(FLAGS.workdir), "xla_old"))
  seeds = range(FLAGS.num_seeds)
  try:
    new = [_run("new", ROOT, s, env_new) for s in seeds]
    old = [_run("old", old_dir, s, env_old) for s in seeds]
  except RuntimeError as e:
    sys.exit(f"error: {e}")
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", old_dir], cwd=ROOT,
                   capture_output=True, check=False)
  methods = {}
  for m in new[0]["methods"]:
    for metric in ("mae", "rmse"):
      x = np.array([r["methods"][m][metric] for r in old], np.float64)
      y = np.array([r["methods"][m][metric] for r in new], np.float64)
      methods.setdefault(m, {})[metric] = {
          "old": x.tolist(), "new": y.tolist(), "identical": int(np.sum(x == y)),
          "max_abs_diff": float(np.abs(x - y).max()), "mean_diff": float(np.mean(y - x))}
  report = {
      "command": "python experiments/compare_commits.py " + " ".join(sys.argv[1:]),
      "old": old_sha, "new": new_sha, "task": FLAGS.task, "args": FLAGS.args,
      "seeds": list(seeds), "methods": methods,
      "selected_identical": int(sum(a["selected"] == b["selected"] for a, b in zip(old, new))),
      "total_s": {"old": [r["timings_s"]["total"] for r in old],
                  "new": [r["timings_s"]["total"] for r in new]},
  }
  for m, v in methods.items():
    print(f"{m:12s} MAE identical {v['mae']['identical']}/{len(seeds)}, "
          f"max |diff| {v['mae']['max_abs_diff']:.2e}")
  print(f"selections identical {report['selected_identical']}/{len(seeds)}; in-process "
        f"s median old {np.median(report['total_s']['old']):.1f}, new "
        f"{np.median(report['total_s']['new']):.1f}")
  tmp = FLAGS.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(report, f, indent=1)
  os.replace(tmp, FLAGS.out)


if __name__ == "__main__":
  app.run(main)
