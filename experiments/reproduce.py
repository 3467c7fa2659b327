r"""Regenerates the committed results under docs/results/, target by target.

  python experiments/reproduce.py --list                       # targets, commands, outputs
  python experiments/reproduce.py --targets=table3,privacy --dry_run
  python experiments/reproduce.py --targets=table3             # runs it, copies into docs/results/

Each target is the list of shell commands that made its files (taken from the files
themselves, BUILD_NOTES.md and README.md), run one after another from the repository
root, ``python`` being this interpreter. Scripts write under ``runs/``; ``cp`` lines put
the committed names in place; ``--collect`` lines (this script) rebuild the JSON files
that were assembled from several run directories. A failing command stops the run with
one ``error:`` line and exit status 1.

Targets marked ``stale`` were made before the scorers' rating offsets became the default
(docs/results/STALE.md): their commands now give numbers under the new defaults. With
``--old_defaults`` every pretraining script of a stale target gets ``--offsets=none
--grid_extend=0`` (STALE.md's recipe for the old numbers; a target's note names any
further flag its committed numbers need). After regenerating a stale target, drop it
from STALE.md and the banner at the top of its markdown goes away by itself.

Times are rough wall times on the project's 2-CPU-core machine as recorded in
BUILD_NOTES.md ("loaded": other jobs shared the cores); "not recorded" where none was.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import typing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = "docs/results"


class Target(typing.NamedTuple):
  commands: tuple[str, ...]
  outputs: tuple[str, ...]      # files under docs/results/ this target writes
  time: str                     # rough wall time on 2 CPU cores, or "not recorded"
  stale: bool                   # listed in docs/results/STALE.md
  note: str = ""


def _cp(src: str, *pairs: tuple[str, str]) -> tuple[str, ...]:
  """``cp <src>/<a> docs/results/<b>`` for each (a, b)."""
  return tuple(f"cp {src}/{a} {RESULTS}/{b}" for a, b in pairs)


def _table1_copy(workdir: str, stem: str) -> tuple[str, ...]:
  return _cp(workdir, ("table1.md", f"{stem}.md"), ("table1.csv", f"{stem}.csv"))


def _seeds(workdir: str, out: str) -> str:
  return f"python experiments/reproduce.py --collect=seeds --src={workdir} --out={RESULTS}/{out}"


def _long(stem: str) -> str:
  """The long per-seed CSV (task,beta,method,seed,metric,value) of ``<stem>_seeds.json``."""
  return (f"python experiments/long_csv.py --seeds={RESULTS}/{stem}_seeds.json "
          f"--out={RESULTS}/{stem}_long.csv")


C2D_B02 = "python experiments/table1.py --task=comedy2drama --betas=0.2 --num_seeds=10"
M2M1 = ("python experiments/table1.py --task=synthetic --like=music2movie --scale=1.0 "
        "--betas=0.2 --num_seeds=10 --baselines=")
M2M03 = ("python experiments/table1.py --task=synthetic --like=music2movie --scale=0.3 "
         "--betas=0.2 --num_seeds=10 --baselines=")
# The early-stop comparison (early_stop_geometric): workdir tag, table1 command.
_ES_ARMS = (("c2d", f"{C2D_B02} --baselines="), ("m2m", M2M1),
            *((t, f"python experiments/table1.py --task={t} --betas=0.2 --num_seeds=10 "
                  "--baselines=") for t in ("action2romance", "ml100k_comedy2drama")))
_ES_NAMES = ("comedy2drama", "music2movie_scale1", "action2romance", "ml100k_comedy2drama")
_ES_REPLAY = (("--task=comedy2drama --num_seeds=10", "comedy2drama"),
              ("--task=synthetic --like=music2movie --scale=1.0 --num_seeds=10",
               "music2movie_scale1"),
              ("--task=action2romance --num_seeds=10", "action2romance"),
              ("--task=ml100k_comedy2drama --num_seeds=10", "ml100k_comedy2drama"),
              ("--task=synthetic --like=sparse --scale=0.1 --num_seeds=5", "sparse_scale0.1"),
              ("--task=comedy2drama --thin=0.05 --thin_tail=1.0 --num_seeds=5",
               "comedy2drama_thin0.05"))
OFFSETS_METHODS = "PFCDR,EMCDR,PTUPCDR,PFCDR+,TGT"
OFFSETS_COMMAND = (
    "python experiments/compare_pretrain.py --a=runs/table1/c2d_none --b=runs/table1/c2d_bias "
    "--method=M  (a, b made by: python experiments/table1.py --task=comedy2drama --betas=0.2 "
    "--num_seeds=10 --baselines=TGT,PTUPCDR --method=pfcdr_plus --offsets=none --grid_extend=0 "
    "--workdir=runs/table1/c2d_none  /  the same with --offsets=bias --grid_extend=2 "
    "--workdir=runs/table1/c2d_bias)")

# The seed-0 checks of docs/results/checks_sparse_and_planted.json (sparse, planted and
# thinned data; docs/RESULTS.md (b)): name -> the command as recorded.
CHECK_RUNS = {
    "sparse_b0_none": "python experiments/pfcdr.py --task=synthetic --like=sparse --scale=1.0 "
                      "--bias_std=0 --offsets=none --grid_extend=0",
    "sparse_b0_none_ext": "python experiments/pfcdr.py --task=synthetic --like=sparse "
                          "--scale=1.0 --bias_std=0 --offsets=none",
    "sparse_b0_bias": "python experiments/pfcdr.py --task=synthetic --like=sparse --scale=1.0 "
                      "--bias_std=0",
    # --bias_std=0: the Table 2 templates' default when these ran (0.5 since 2026-12-05;
    # the file records the command without it).
    "planted_d8_mis_false": "python experiments/pfcdr.py --task=synthetic --like=music2movie "
                            "--scale=0.01 --density=8 --signal=1.5 --bias_std=0 --epochs=40 "
                            "--batch_size=512 --bridge_epochs=100",
    "planted_d8_mis_true": "python experiments/pfcdr.py --task=synthetic --like=music2movie "
                           "--scale=0.01 --density=8 --signal=1.5 --bias_std=0 --epochs=40 "
                           "--batch_size=512 --bridge_epochs=100 --misalign",
    "c2d_thin002_bias": "python experiments/pfcdr.py --task=comedy2drama --thin=0.02 "
                        "--thin_tail=1.0",
    "c2d_thin002_none": "python experiments/pfcdr.py --task=comedy2drama --thin=0.02 "
                        "--thin_tail=1.0 --offsets=none --grid_extend=0",
}

TARGETS: dict[str, Target] = {
    # ---------------------------------------------------------------- PFCDR, Table 1
    "table1_comedy2drama": Target(
        ("python experiments/table1.py --task=comedy2drama --num_seeds=10 --method=pfcdr_plus "
         "--cache_dir=runs/cache_c2d --workdir=runs/table1/comedy2drama",)
        + _table1_copy("runs/table1/comedy2drama", "table1_comedy2drama")
        + (_seeds("runs/table1/comedy2drama", "table1_comedy2drama_seeds.json"),
           _long("table1_comedy2drama")),
        (f"{RESULTS}/table1_comedy2drama.md", f"{RESULTS}/table1_comedy2drama.csv",
         f"{RESULTS}/table1_comedy2drama_seeds.json", f"{RESULTS}/table1_comedy2drama_long.csv"),
        "about 40 min per beta (beta = 0.5 and 0.8 ran side by side in 53 min, loaded)", False,
        "every registry method, 3 betas x 10 seeds; the committed table joins the cells of "
        "table1_comedy2drama_b02 (beta = 0.2) with beta = 0.5 / 0.8 run in their own workdirs"),
    "table1_comedy2drama_b02": Target(
        (f"{C2D_B02} --method=pfcdr_plus --cache_dir=runs/cache_c2d "
         "--workdir=runs/table1/comedy2drama_b02",)
        + _table1_copy("runs/table1/comedy2drama_b02", "table1_comedy2drama_b0.2")
        + (_seeds("runs/table1/comedy2drama_b02", "table1_comedy2drama_b0.2_seeds.json"),
           _long("table1_comedy2drama_b0.2")),
        (f"{RESULTS}/table1_comedy2drama_b0.2.md", f"{RESULTS}/table1_comedy2drama_b0.2.csv",
         f"{RESULTS}/table1_comedy2drama_b0.2_seeds.json",
         f"{RESULTS}/table1_comedy2drama_b0.2_long.csv"),
        "39 min", False, "every registry method at beta = 0.2 with the current defaults"),
    "offsets_bias_vs_none": Target(
        (f"{C2D_B02} --baselines=TGT,PTUPCDR --method=pfcdr_plus --offsets=bias --grid_extend=2 "
         "--workdir=runs/table1/c2d_bias --cache_dir=runs/cache_c2d",
         f"{C2D_B02} --baselines=TGT,PTUPCDR --method=pfcdr_plus --offsets=none --grid_extend=0 "
         "--workdir=runs/table1/c2d_none --cache_dir=runs/cache_c2d")
        + _table1_copy("runs/table1/c2d_bias", "table1_comedy2drama_b0.2_main_offsets_bias")
        + _table1_copy("runs/table1/c2d_none", "table1_comedy2drama_b0.2_main_offsets_none")
        + (_seeds("runs/table1/c2d_bias", "table1_comedy2drama_b0.2_main_offsets_bias_seeds.json"),
           _seeds("runs/table1/c2d_none", "table1_comedy2drama_b0.2_main_offsets_none_seeds.json"),
           _long("table1_comedy2drama_b0.2_main_offsets_bias"),
           _long("table1_comedy2drama_b0.2_main_offsets_none"),
           "python experiments/reproduce.py --collect=by_method --a=runs/table1/c2d_none "
           f"--b=runs/table1/c2d_bias --methods={OFFSETS_METHODS} "
           f"--out={RESULTS}/offsets_bias_vs_none_comedy2drama.json"),
        tuple(f"{RESULTS}/table1_comedy2drama_b0.2_main_offsets_{o}{ext}"
              for o in ("bias", "none") for ext in (".md", ".csv", "_seeds.json", "_long.csv"))
        + (f"{RESULTS}/offsets_bias_vs_none_comedy2drama.json",),
        "not recorded (pretraining 15-23 s a seed)", False,
        "the rating offsets against the paper's bare product, paired over 10 seeds"),
    "table1_action2romance": Target(
        ("python experiments/table1.py --task=action2romance --num_seeds=10 --method=pfcdr_plus "
         "'--baselines=PTUPCDR,PFCDR+(eps=1),PFCDR+(eps=5)' --cache_dir=runs/cache "
         "--workdir=runs/table1/action2romance",)
        + _table1_copy("runs/table1/action2romance", "table1_action2romance"),
        (f"{RESULTS}/table1_action2romance.md", f"{RESULTS}/table1_action2romance.csv"),
        "about 40 min (made in two runs: 17 min, then 36 min loaded for the two eps columns)",
        True),
    "table1_ml100k_comedy2drama": Target(
        ("python experiments/table1.py --task=ml100k_comedy2drama --num_seeds=10 "
         "--method=pfcdr_plus '--baselines=PTUPCDR,PFCDR+(eps=1),PFCDR+(eps=5)' "
         "--cache_dir=runs/cache --workdir=runs/table1/ml100k_comedy2drama",)
        + _table1_copy("runs/table1/ml100k_comedy2drama", "table1_ml100k_comedy2drama"),
        (f"{RESULTS}/table1_ml100k_comedy2drama.md", f"{RESULTS}/table1_ml100k_comedy2drama.csv"),
        "about 30 min (made in two runs: 13 min, then 18 min for the two eps columns)", True),
    "table1_synthetic_sparse": Target(
        ("python experiments/table1.py --task=synthetic --like=sparse --scale=1.0 --betas=0.2 "
         "--num_seeds=5 --method=pfcdr_plus --baselines=PTUPCDR,FedCDR "
         "--workdir=runs/table1/sparse --cache_dir=runs/cache_sparse",)
        + _table1_copy("runs/table1/sparse", "table1_synthetic_sparse")
        + (_seeds("runs/table1/sparse", "table1_synthetic_sparse_seeds.json"),
           _long("table1_synthetic_sparse")),
        (f"{RESULTS}/table1_synthetic_sparse.md", f"{RESULTS}/table1_synthetic_sparse.csv",
         f"{RESULTS}/table1_synthetic_sparse_seeds.json",
         f"{RESULTS}/table1_synthetic_sparse_long.csv"),
        "not recorded", False, "the reported sparse pair's shape, synthetic, 5 seeds"),
    "checks_sparse_and_planted": Target(
        tuple(f"{cmd} --workdir=runs/checks/{name}" for name, cmd in CHECK_RUNS.items())
        + (f"python experiments/reproduce.py --collect=checks "
           f"--out={RESULTS}/checks_sparse_and_planted.json",),
        (f"{RESULTS}/checks_sparse_and_planted.json",),
        "not recorded (7 main jobs, seconds to minutes each)", False,
        "seed-0 checks: sparse shape with and without offsets, planted transfer and its "
        "misaligned control, ML-1M thinned to 2 %"),
    # --------------------------------------------------------- PFCDR, other analyses
    "figure2": Target(
        ("python experiments/figure2.py --task=comedy2drama --num_seeds=10 --method=pfcdr_plus "
         "--cache_dir=runs/cache --workdir=runs/figure2/comedy2drama",)
        + _cp("runs/figure2/comedy2drama", ("figure2.md", "figure2_comedy2drama.md"),
              ("figure2.csv", "figure2_comedy2drama.csv"),
              ("figure2.png", "figure2_comedy2drama.png")),
        tuple(f"{RESULTS}/figure2_comedy2drama.{e}" for e in ("md", "csv", "png")),
        "34 min loaded, with the MF cells' pretraining cached by table1_comedy2drama", True),
    "figure3": Target(
        ("python experiments/figure3.py --task=comedy2drama --num_seeds=3 "
         "--cache_dir=/tmp/pfcdr_stage_cache --workdir=runs/figure3/comedy2drama",)
        + _cp("runs/figure3/comedy2drama", *((f"figure3.{e}", f"figure3_comedy2drama.{e}")
                                               for e in ("json", "md", "png"))),
        tuple(f"{RESULTS}/figure3_comedy2drama.{e}" for e in ("json", "md", "png")),
        "62 min loaded", True,
        "committed numbers (made 2026-12-02 01:43) also need --optimizer=adam --shuffle=device --patience=0 --b0_draw=threefry"),
    "figure4": Target(
        ("python experiments/figure4.py --task=comedy2drama --num_seeds=3 "
         "--cache_dir=/tmp/pfcdr_stage_cache --workdir=runs/figure4/comedy2drama",)
        + _cp("runs/figure4/comedy2drama", *((f"figure4.{e}", f"figure4_comedy2drama.{e}")
                                               for e in ("json", "md", "png"))),
        tuple(f"{RESULTS}/figure4_comedy2drama.{e}" for e in ("json", "md", "png")),
        "10 min loaded", True,
        "committed numbers (made 2026-12-02 01:43) also need --optimizer=adam --shuffle=device --patience=0 --b0_draw=threefry"),
    "table3": Target(
        ("python experiments/table3.py --task=comedy2drama --method=pfcdr_plus "
         "--cache_dir=runs/cache --workdir=runs/table3/comedy2drama",)
        + _cp("runs/table3/comedy2drama", *((f"table3.{e}", f"table3_comedy2drama.{e}")
                                              for e in ("json", "md", "png"))),
        tuple(f"{RESULTS}/table3_comedy2drama.{e}" for e in ("json", "md", "png")),
        "3 min (quiet)", True, "timings are of the machine it runs on"),
    "privacy": Target(
        ("python experiments/privacy.py --task=comedy2drama --method=pfcdr_plus "
         "--workdir=runs/privacy-comedy2drama --cache_dir=runs/cache",)
        + _cp("runs/privacy-comedy2drama", *((f"privacy.{e}", f"privacy_comedy2drama.{e}")
                                               for e in ("json", "md", "png"))),
        tuple(f"{RESULTS}/privacy_comedy2drama.{e}" for e in ("json", "md", "png")),
        "6.5 min from an empty cache (loaded); 1.6 min with Table 1's stages cached", True),
    # ---------------------------------------------- privacy-utility frontier (issue 29)
    **{f"frontier_{task}": Target(
        (f"python experiments/frontier.py --task={task} --num_seeds={n} --method=pfcdr_plus "
         f"--workdir=runs/frontier-{task} --cache_dir={cache}",)
        + _cp(f"runs/frontier-{task}", *((f"frontier.{e}", f"frontier_{task}.{e}")
                                          for e in ("json", "md", "png")),
              ("frontier_long.csv", f"frontier_{task}_long.csv")),
        tuple(f"{RESULTS}/frontier_{task}.{e}" for e in ("json", "md", "png"))
        + (f"{RESULTS}/frontier_{task}_long.csv",),
        time, False, "per-seed JSONs in <workdir>/seeds/ make it resumable")
       for task, n, cache, time in (
           ("comedy2drama", 10, "runs/cache_c2d",
            "about 5 min a seed with Table 1's stages cached (loaded)"),
           ("ml100k_comedy2drama", 5, "runs/cache_frontier", "not recorded"),
           ("action2romance", 5, "runs/cache_frontier", "not recorded"))},
    "ablate_plus_comedy2drama": Target(
        ("python experiments/ablate_plus.py --task=comedy2drama --num_seeds=10 "
         "--cache_dir=runs/cache_c2d --out=runs/ablate_plus/comedy2drama.json",
         f"cp runs/ablate_plus/comedy2drama.json {RESULTS}/ablate_plus_comedy2drama.json"),
        (f"{RESULTS}/ablate_plus_comedy2drama.json",), "not recorded", False,
        "BUILD_NOTES section 4's ablation, per seed; reuses table1_comedy2drama_b02's cache"),
    "bridge_epochs": Target(
        ("python experiments/bridge_epochs.py --task=comedy2drama --seed=0 "
         "--out=runs/bridge_epochs.json",
         f"cp runs/bridge_epochs.json {RESULTS}/bridge_epochs_comedy2drama_s0.json"),
        (f"{RESULTS}/bridge_epochs_comedy2drama_s0.json",),
        "not recorded (reuses table1_comedy2drama's stage cache in runs/cache when present)",
        True, "committed numbers (made 2026-11-25) also need --optimizer=adam --shuffle=device --patience=0 --b0_draw=threefry"),
    # ------------------------------------------------------ speed and pretraining paths
    "pretrain_paths_comedy2drama": Target(
        (f"{C2D_B02} --baselines= --optimizer=adam --shuffle=device --patience=0 "
         "--workdir=runs/t1_old --cache_dir=runs/t1cache",
         f"{C2D_B02} --baselines= --workdir=runs/t1_new --cache_dir=runs/t1cache",
         f"{C2D_B02} --baselines= --optimizer=lazy_adam --workdir=runs/t1_lazy "
         "--cache_dir=runs/t1cache",
         "python experiments/compare_pretrain.py --a=runs/t1_old --b=runs/t1_new "
         f"--out={RESULTS}/pretrain_paths_old_vs_new_comedy2drama.json",
         "python experiments/compare_pretrain.py --a=runs/t1_new --b=runs/t1_lazy "
         f"--out={RESULTS}/pretrain_paths_new_vs_lazy_comedy2drama.json"),
        (f"{RESULTS}/pretrain_paths_old_vs_new_comedy2drama.json",
         f"{RESULTS}/pretrain_paths_new_vs_lazy_comedy2drama.json"),
        "not recorded (pretraining 84-183 s a seed per arm, loaded)", True,
        "committed numbers also need --early_stop=any_lr --b0_draw=threefry on all three runs"),
    "early_stop_and_b0_comedy2drama": Target(
        (f"{C2D_B02} --baselines= --early_stop=any_lr --b0_draw=threefry "
         "--workdir=runs/t1_anylr --cache_dir=runs/t1cache",
         f"{C2D_B02} --baselines= --early_stop=per_lr_reach --b0_draw=threefry "
         "--workdir=runs/t1_reach --cache_dir=runs/t1cache",
         f"{C2D_B02} --baselines= --early_stop=per_lr_reach --b0_draw=hash "
         "--workdir=runs/t1_hash --cache_dir=runs/t1cache",
         "python experiments/compare_pretrain.py --a=runs/t1_anylr --b=runs/t1_reach "
         f"--out={RESULTS}/pretrain_paths_anylr_vs_reach_comedy2drama.json",
         "python experiments/compare_pretrain.py --a=runs/t1_reach --b=runs/t1_hash "
         f"--out={RESULTS}/b0_threefry_vs_hash_comedy2drama.json"),
        (f"{RESULTS}/pretrain_paths_anylr_vs_reach_comedy2drama.json",
         f"{RESULTS}/b0_threefry_vs_hash_comedy2drama.json"),
        "not recorded (pretraining 21-27 s a seed)", True),
    "early_stop_geometric": Target(
        tuple(f"{base} --early_stop={rule} --workdir=runs/es_{t}_{rule} "
              f"--cache_dir=runs/es_{t}_{rule}/cache"
              for t, base in _ES_ARMS for rule in ("per_lr_reach", "per_lr_reach_geometric"))
        + tuple(f"python experiments/compare_pretrain.py --a=runs/es_{t}_per_lr_reach "
                f"--b=runs/es_{t}_per_lr_reach_geometric "
                f"--out={RESULTS}/pretrain_reach_vs_geometric_{name}.json"
                for (t, _), name in zip(_ES_ARMS, _ES_NAMES)),
        tuple(f"{RESULTS}/pretrain_reach_vs_geometric_{name}.json" for name in _ES_NAMES),
        "comedy2drama / action2romance 3 + 3 min, ml100k 1 + 1 min, music2movie 30 + 30 min "
        "(its two arms side by side on the 2 cores)", False,
        "each arm its own stage cache, so every pretraining is timed"),
    "music2movie_scale03": Target(
        (f"{M2M03} --early_stop=any_lr --b0_draw=threefry --workdir=runs/m2m03_old "
         "--cache_dir=runs/m2m03cache",
         f"{M2M03} --workdir=runs/m2m03_new --cache_dir=runs/m2m03cache",
         "python experiments/compare_pretrain.py --a=runs/m2m03_old --b=runs/m2m03_new "
         f"--out={RESULTS}/pretrain_b0_old_vs_new_music2movie_scale03.json"),
        (f"{RESULTS}/pretrain_b0_old_vs_new_music2movie_scale03.json",),
        "not recorded", True, "synthetic data of the paper's music2movie counts x 0.3"),
    "music2movie_scale1": Target(
        (f"{M2M1} --cache_dir=runs/m2m1cache --workdir=runs/table1/m2m_s1_new",
         f"{M2M1} --early_stop=any_lr --b0_draw=threefry --cache_dir=runs/m2m1cache "
         "--workdir=runs/table1/m2m_s1_old",
         "python experiments/compare_pretrain.py --a=runs/table1/m2m_s1_old "
         f"--b=runs/table1/m2m_s1_new --out={RESULTS}/pretrain_b0_old_vs_new_music2movie_scale1.json",
         f"{M2M1} --shuffle=device --patience=0 --early_stop=any_lr --b0_draw=threefry "
         "--cache_dir=runs/m2m1cache --workdir=runs/table1/m2m_s1_orig",
         "python experiments/compare_pretrain.py --a=runs/table1/m2m_s1_orig "
         f"--b=runs/table1/m2m_s1_new --out={RESULTS}/pretrain_orig_vs_new_music2movie_scale1.json")
        + _table1_copy("runs/table1/m2m_s1_new", "table1_synthetic_music2movie_scale1"),
        (f"{RESULTS}/table1_synthetic_music2movie_scale1.md",
         f"{RESULTS}/table1_synthetic_music2movie_scale1.csv",
         f"{RESULTS}/pretrain_b0_old_vs_new_music2movie_scale1.json",
         f"{RESULTS}/pretrain_orig_vs_new_music2movie_scale1.json"),
        "about 2 h (arms of 23, 49 and 51 min)", True,
        "synthetic data of the paper's music2movie counts, for timing"),
    "table1_synthetic_music2movie_signal": Target(
        (f"{M2M1} --workdir=runs/table1/m2m_s1_signal",
         _seeds("runs/table1/m2m_s1_signal",
                "table1_synthetic_music2movie_scale1_signal_seeds.json"),
         _long("table1_synthetic_music2movie_scale1_signal"))
        + _table1_copy("runs/table1/m2m_s1_signal", "table1_synthetic_music2movie_scale1_signal"),
        (f"{RESULTS}/table1_synthetic_music2movie_scale1_signal.md",
         f"{RESULTS}/table1_synthetic_music2movie_scale1_signal.csv",
         f"{RESULTS}/table1_synthetic_music2movie_scale1_signal_seeds.json",
         f"{RESULTS}/table1_synthetic_music2movie_scale1_signal_long.csv"),
        "13 min", False,
        "music2movie-size synthetic data with the planted biases: a signal to transfer"),
    "pretrain_adam_vs_auto_music2movie": Target(
        (f"{M2M1} --optimizer=adam --workdir=runs/table1/m2m_s1_signal_adam",
         f"{M2M1} --workdir=runs/table1/m2m_s1_signal",
         "python experiments/compare_pretrain.py --a=runs/table1/m2m_s1_signal_adam "
         f"--b=runs/table1/m2m_s1_signal --out={RESULTS}/pretrain_adam_vs_auto_music2movie_scale1.json"),
        (f"{RESULTS}/pretrain_adam_vs_auto_music2movie_scale1.json",),
        "24 + 13 min (the second is table1_synthetic_music2movie_signal's run)", False,
        "dense vs deferred Adam (auto) at music2movie size, 10 seeds paired"),
    "bench_scaling": Target(
        ("python experiments/bench_scaling.py --like=music2movie --scales=0.3,1,3 "
         f"--repeats=3 --also=book2movie:1 --out={RESULTS}/bench_scaling_music2movie.json",),
        (f"{RESULTS}/bench_scaling_music2movie.json",), "17 min", False,
        "the main job at 0.3 / 1 / 3 x music2movie (medians of 3 interleaved runs) and at "
        "book2movie size, cold XLA cache"),
    # The early-stop rule of 2026-12-06: each rule replayed on one recorded pretraining
    # per seed and domain (experiments/early_stop_replay.py).
    "early_stop_rise": Target(
        tuple(f"python experiments/early_stop_replay.py {args} "
              f"--out={RESULTS}/early_stop_replay_{name}.json"
              for args, name in _ES_REPLAY),
        tuple(f"{RESULTS}/early_stop_replay_{name}.json" for _, name in _ES_REPLAY),
        "comedy2drama / action2romance 3 min, ml100k 1 min, music2movie 10 min, the two "
        "other shapes 2 min", False,
        "per seed and domain the (lr, epoch) and lr-epochs of per_lr_reach_geometric and "
        "per_lr_reach_rise, replayed on one per_lr_reach_geometric run"),
    "bench_data_stage": Target(
        ("python experiments/bench_data_stage.py --like=music2movie --scales=1,3 --reps=3 "
         f"--out={RESULTS}/bench_data_stage_music2movie.json",),
        (f"{RESULTS}/bench_data_stage_music2movie.json",), "2 min", False,
        "the data stage's growth 1 -> 3 x music2movie (medians of interleaved runs, with "
        "and without glibc's heap reuse) beside the machine's own growth for single numpy "
        "passes of the same sizes"),
    "bench_heap": Target(
        ("python experiments/bench_heap.py --like=book2movie --scales=1 --repeats=3 "
         f"--out={RESULTS}/bench_heap_book2movie.json",),
        (f"{RESULTS}/bench_heap_book2movie.json",), "20 min", False,
        "book2movie's main job with and without glibc's heap reuse in the data stage: "
        "wall, data stage, peak memory, paired ratios, equal MAEs"),
    "bench_pretrain": Target(
        ("python experiments/bench_pretrain.py --like=music2movie --scales=0.3,1,3 --epochs=2 "
         f"--out={RESULTS}/bench_pretrain_music2movie.json",
         "python experiments/bench_pretrain.py --like=book2movie --scales=1 --epochs=1 "
         f"--out={RESULTS}/bench_pretrain_book2movie.json",
         "python experiments/bench_pretrain.py --like=music2movie --scales=0.3,0.5,0.7 "
         f"--epochs=2 --out={RESULTS}/bench_pretrain_breakeven.json"),
        (f"{RESULTS}/bench_pretrain_music2movie.json", f"{RESULTS}/bench_pretrain_book2movie.json",
         f"{RESULTS}/bench_pretrain_breakeven.json"),
        "3 + 9 + 1 min", False, "one pretraining epoch, dense vs deferred Adam, side by side"),
    "compare_a5c7f8a": Target(
        ("python experiments/compare_commits.py --old=a5c7f8a --task=comedy2drama "
         f"--num_seeds=10 --workdir=runs/cmp_c2d --out={RESULTS}/compare_a5c7f8a_comedy2drama.json",
         "python experiments/compare_commits.py --old=a5c7f8a --task=synthetic "
         "--args=like=music2movie,scale=1.0 --num_seeds=10 --workdir=runs/cmp_m2m "
         f"--out={RESULTS}/compare_a5c7f8a_music2movie_scale1.json"),
        (f"{RESULTS}/compare_a5c7f8a_comedy2drama.json",
         f"{RESULTS}/compare_a5c7f8a_music2movie_scale1.json"), "4 + 19 min", False,
        "main job at the 2026-12-06 session's start vs now, 10 seeds: same results?"),
    "compare_10eb0b8": Target(
        ("python experiments/compare_commits.py --old=10eb0b8 --task=comedy2drama "
         "--num_seeds=10 --workdir=runs/cmp10_c2d "
         f"--out={RESULTS}/compare_10eb0b8_comedy2drama.json",
         "python experiments/compare_commits.py --old=10eb0b8 --task=synthetic "
         "--args=like=music2movie,scale=1.0 --num_seeds=3 --workdir=runs/cmp10_m2m "
         f"--out={RESULTS}/compare_10eb0b8_music2movie_scale1.json"),
        (f"{RESULTS}/compare_10eb0b8_comedy2drama.json",
         f"{RESULTS}/compare_10eb0b8_music2movie_scale1.json"), "4 + 6 min", False,
        "main job at the fourth 2026-12-06 session's start vs now (concurrent pretraining, "
        "ItemMean's chunked sums): same results?"),
    "bench_cmf": Target(
        ("python experiments/bench_cmf.py --like=music2movie --scales=0.1,0.3,1 --epochs=2 "
         f"--out={RESULTS}/bench_cmf_music2movie.json",),
        (f"{RESULTS}/bench_cmf_music2movie.json",), "not recorded", False,
        "one CMF training epoch, dense vs deferred Adam, side by side"),
    "bench_main_jobs": Target(
        ("python experiments/bench_main_jobs.py --jobs=comedy2drama,synthetic:music2movie:1 "
         f"--repeats=3 --out={RESULTS}/bench_main_jobs.json",),
        (f"{RESULTS}/bench_main_jobs.json",), "12 min", False,
        "the main jobs' wall time, cold (an empty XLA cache) and warm, 3 interleaved runs "
        "each; needs an otherwise idle machine"),
    "bench_hugepages": Target(
        ("python experiments/bench_hugepages.py --like=music2movie --scales=1,3 --repeats=3 "
         f"--out={RESULTS}/bench_hugepages_music2movie.json",),
        (f"{RESULTS}/bench_hugepages_music2movie.json",), "22 min", False,
        "numpy's huge-page advice on and off: fresh 32 MB fills, and the main job at 1 and "
        "3 x music2movie, 3 interleaved rounds; needs an otherwise idle machine"),
    "bench_concurrent_domains": Target(
        ("python experiments/bench_concurrent_domains.py --task=synthetic "
         "--like=music2movie --scale=1 --reps=3 "
         f"--out={RESULTS}/bench_concurrent_domains_music2movie.json",),
        (f"{RESULTS}/bench_concurrent_domains_music2movie.json",), "5 min", False,
        "both domains' pretraining, then inversion, one after the other vs at the same "
        "time, cold, 3 rounds"),
    "bench_floors": Target(
        ("python experiments/bench_floors.py --like=music2movie --scales=1,3 --reps=7 "
         f"--out={RESULTS}/bench_floors_music2movie.json",),
        (f"{RESULTS}/bench_floors_music2movie.json",), "1 min", False,
        "the floors' growth 1 -> 3 x music2movie: medians of 7 interleaved runs, and the "
        "range of the per-round exponents"),
    "bench_k_grid": Target(
        (f"python experiments/bench_k_grid.py --out={RESULTS}/bench_k_grid_music2movie.json",),
        (f"{RESULTS}/bench_k_grid_music2movie.json",), "1 min", False,
        "the K grid's neighbour means, host sort vs device search, random arrays of the "
        "main job's validation shape"),
    "cmf_optimizers": Target(
        ("python experiments/cmf_optimizers.py --task=comedy2drama --num_seeds=5 "
         f"--out={RESULTS}/cmf_optimizers_comedy2drama.json",),
        (f"{RESULTS}/cmf_optimizers_comedy2drama.json",), "not recorded", False,
        "CMF's cold-start MAE under dense and deferred Adam, 5 seeds paired"),
    "bench_music2movie": Target(
        ("python experiments/bench.py --like=music2movie --scale=1.0 --scaling=0.3,1,3 "
         "--scaling_repeats=3 --scaling_also=book2movie:1 --out=runs/bench_scale1.json",
         f"cp runs/bench_scale1.json {RESULTS}/bench_music2movie_scale1.json"),
        (f"{RESULTS}/bench_music2movie_scale1.json",), "35 min (quiet)", True,
        "timings are of the machine it runs on; the bench process peaks near 12 GB"),
    "bench_topk": Target(
        ("python experiments/bench.py --like=music2movie --scale=1.0 --full_job=false "
         "--topk_extras=false --out=runs/bench_topk_scale1.json",
         f"cp runs/bench_topk_scale1.json {RESULTS}/bench_topk_music2movie_scale1.json"),
        (f"{RESULTS}/bench_topk_music2movie_scale1.json",), "5 min (quiet)", True),
    "bench_topk_paths": Target(
        ("python experiments/bench_topk_paths.py --out=runs/bench_topk_paths_quiet.json",
         "yes > /dev/null & LOAD=$!; python experiments/bench_topk_paths.py "
         "--out=runs/bench_topk_paths_loaded.json; RC=$?; kill $LOAD; exit $RC",
         f"cp runs/bench_topk_paths_quiet.json {RESULTS}/bench_topk_paths_quiet.json",
         f"cp runs/bench_topk_paths_loaded.json {RESULTS}/bench_topk_paths_loaded.json"),
        (f"{RESULTS}/bench_topk_paths_quiet.json", f"{RESULTS}/bench_topk_paths_loaded.json"),
        "not recorded (a few minutes each)", True,
        "random arrays (no data); 'quiet' needs an otherwise idle machine, 'loaded' starts "
        "one busy process (`yes`) beside the bench and stops it after"),
    "bench_seeds": Target(
        ("python experiments/bench_seeds.py --task=comedy2drama --num_seeds=3 "
         "--out=runs/bench_seeds.json",
         f"cp runs/bench_seeds.json {RESULTS}/bench_seeds_comedy2drama_cpu.json"),
        (f"{RESULTS}/bench_seeds_comedy2drama_cpu.json",), "5.5 min loaded", True,
        "committed numbers (made 2026-11-25) also need --shuffle=device --patience=0"),
    # ------------------------------------------------------------------- CopyAttack
    "copyattack_select": Target(
        ("python experiments/copyattack_select.py --workdir=runs/ca_select",)
        + _cp("runs/ca_select", ("selection.json", "copyattack_selection.json")),
        (f"{RESULTS}/copyattack_selection.json",), "23 min (the test suite ran beside it)", False,
        "CopyAttack's training settings chosen on 20 validation items, 2 seeds"),
    "copyattack_select_stop": Target(
        ("python experiments/copyattack_select.py --stage=stop --workdir=runs/ca_select",)
        + _cp("runs/ca_select", ("selection_stop.json", "copyattack_selection_stop.json")),
        (f"{RESULTS}/copyattack_selection_stop.json",), "3.2 min", False,
        "when CopyAttack's training stops (budget or plateau), at stage 1's choice"),
    "copyattack_table2": Target(
        ("python experiments/copyattack.py --workdir=runs/ca50",)
        + _cp("runs/ca50", ("results.json", "copyattack_results.json"),
              ("table1.md", "copyattack_table1.md"), ("table2.md", "copyattack_table2.md"),
              ("metrics.jsonl", "copyattack_metrics.jsonl"),
              ("training_curves.png", "copyattack_training_curves.png"),
              ("queries.png", "copyattack_queries.png")),
        tuple(f"{RESULTS}/copyattack_{n}" for n in (
            "results.json", "table1.md", "table2.md", "metrics.jsonl", "training_curves.png",
            "queries.png")),
        "10.8 min", False, "50 test items, 3 seeds, query budget 1000 per item"),
    "copyattack_table2_10items": Target(
        ("python experiments/copyattack.py --num_target_items=10 --workdir=runs/ca10",)
        + _cp("runs/ca10", ("results.json", "copyattack_results_10items.json"),
              ("table2.md", "copyattack_table2_10items.md"),
              ("metrics.jsonl", "copyattack_metrics_10items.jsonl"),
              ("training_curves.png", "copyattack_training_curves_10items.png")),
        tuple(f"{RESULTS}/copyattack_{n}" for n in (
            "results_10items.json", "table2_10items.md", "metrics_10items.jsonl",
            "training_curves_10items.png")),
        "3.5 min", False),
    "copyattack_table2_5items": Target(
        ("python experiments/copyattack.py --num_target_items=5 --workdir=runs/ca5",)
        + _cp("runs/ca5", ("results.json", "copyattack_results_5items.json"),
              ("table2.md", "copyattack_table2_5items.md")),
        (f"{RESULTS}/copyattack_results_5items.json", f"{RESULTS}/copyattack_table2_5items.md"),
        "2.9 min from a fresh clone (set-up included), 2 cores", False),
    "copyattack_headroom": Target(
        ("python experiments/copyattack_headroom.py --num_target_items=5 "
         "--workdir=runs/copyattack_headroom",
         f"cp runs/copyattack_headroom/results.json {RESULTS}/copyattack_headroom.json"),
        (f"{RESULTS}/copyattack_headroom.json",), "1 min", False),
    "copyattack_popularity": Target(
        ("python experiments/copyattack.py --analysis=popularity --workdir=runs/ca_pop",)
        + _cp("runs/ca_pop", ("popularity.json", "copyattack_popularity.json"),
              ("popularity.png", "copyattack_popularity.png"),
              ("popularity_tests.json", "copyattack_popularity_tests.json")),
        tuple(f"{RESULTS}/copyattack_popularity{n}"
              for n in (".json", ".png", "_tests.json")),
        "2.5 min", False, "Figure 4: 5 items per popularity decile, 3 seeds"),
    "copyattack_detection": Target(
        ("python experiments/copyattack.py --analysis=detection --num_target_items=10 "
         "--n_seeds=3 --workdir=runs/ca_detection",)
        + _cp("runs/ca_detection", *((f"detection.{e}", f"copyattack_detection.{e}")
                                     for e in ("json", "md", "png"))),
        tuple(f"{RESULTS}/copyattack_detection.{e}" for e in ("json", "md", "png")),
        "3.3 min", False,
        "detection of copied vs generated profiles (10 test items, 3 seeds)"),
    "copyattack_depth": Target(
        ("python experiments/copyattack.py --analysis=depth --num_target_items=20 "
         "--workdir=runs/ca_depth",)
        + _cp("runs/ca_depth", ("depth.json", "copyattack_depth.json"),
              ("depth.png", "copyattack_depth.png"),
              ("depth_tests.json", "copyattack_depth_tests.json")),
        tuple(f"{RESULTS}/copyattack_depth{n}" for n in (".json", ".png", "_tests.json")),
        "4.2 min", False, "Figure 3"),
    "copyattack_budget": Target(
        ("python experiments/copyattack.py --analysis=budget --num_target_items=20 "
         "--workdir=runs/ca_budget",)
        + _cp("runs/ca_budget", ("budget.json", "copyattack_budget.json"),
              ("budget.png", "copyattack_budget.png"),
              ("budget_tests.json", "copyattack_budget_tests.json")),
        tuple(f"{RESULTS}/copyattack_budget{n}" for n in (".json", ".png", "_tests.json")),
        "6.2 min", False, "Figure 5"),
}

NOT_REGENERABLE = {
    f"{RESULTS}/STALE.md": "hand-written index of the stale files, not a result",
    f"{RESULTS}/table1_comedy2drama_paper_baselines.md":
        "made by the code of 2026-11-25 (commits a68d243, f33b434, 259403e: threefry b0, dense "
        "Adam without early stopping, pooled per-user `*`); today's table1.py renders other "
        "columns and tests; superseded by table1_comedy2drama.md. Its command (in the file) "
        "regenerates it on a checkout of those commits",
    f"{RESULTS}/table1_comedy2drama_paper_baselines.csv": "as the .md above",
}

# Scripts that take the pretraining flags (--offsets, --grid_extend): --old_defaults.
PRETRAIN_SCRIPTS = ("pfcdr", "table1", "figure2", "figure3", "figure4", "table3", "privacy",
                    "bridge_epochs", "bench_seeds", "ablate_plus")
_PYTHON = re.compile(r"(?<![\w/.-])python(?= +(?:experiments|benchmarks)/)")


def resolve(command: str, old_defaults: bool = False) -> str:
  """The command as run: ``python`` is this interpreter; --old_defaults appended."""
  if old_defaults and re.match(rf"python experiments/({'|'.join(PRETRAIN_SCRIPTS)})\.py ",
                                command):
    command += " --offsets=none --grid_extend=0"
  return _PYTHON.sub(shlex.quote(sys.executable), command)


def print_list() -> None:
  for name, t in TARGETS.items():
    print(f"{name}  [{'stale' if t.stale else 'current'}; {t.time}]")
    if t.note:
      print(f"  note: {t.note}")
    for c in t.commands:
      print(f"  $ {c}")
    for o in t.outputs:
      print(f"  writes: {o}")
    print()
  print("Not regenerable by a target:")
  for path, why in NOT_REGENERABLE.items():
    print(f"  not regenerable: {path} -- {why}")


def run_targets(names: list[str], dry_run: bool, old_defaults: bool) -> int:
  for name in names:
    t = TARGETS[name]
    commands = [resolve(c, old_defaults and t.stale) for c in t.commands]
    print(f"== {name} ({len(commands)} commands; {t.time}){' [dry run]' if dry_run else ''}",
          flush=True)
    for i, cmd in enumerate(commands, 1):
      print(f"[{name} {i}/{len(commands)}] $ {cmd}", flush=True)
      if dry_run:
        continue
      os.makedirs(os.path.join(ROOT, "runs"), exist_ok=True)
      rc = subprocess.run(cmd, shell=True, cwd=ROOT, executable="/bin/bash",
                          check=False).returncode
      if rc != 0:
        print(f"error: target {name}: command {i} of {len(commands)} exited with {rc}: {cmd}",
              file=sys.stderr)
        return 1
    for o in t.outputs:
      print(f"  {'would write' if dry_run else 'wrote'}: {o}")
  return 0


# ------------------------------------------------------------------------ collectors
def _cells(workdir: str) -> dict[str, dict]:
  cells = os.path.join(workdir, "cells")
  names = sorted(os.listdir(cells), key=lambda n: (re.sub(r"\d+$", "", n),
                                                   int(re.search(r"(\d+)$", n).group(1))))
  out = {}
  for n in names:
    with open(os.path.join(cells, n, "results.json")) as f:
      out[n] = json.load(f)
  return out


def _record(r: dict) -> dict:
  return {"sanity": r.get("sanity"), "pretrain": r["selected"]["pretrain"],
          "data_profile": r.get("data_profile"), "misaligned": r.get("misaligned")}


def collect_seeds(src: str) -> dict:
  cells = {}
  for name, r in _cells(src).items():
    m = r["methods"]
    cells[name] = {"seed": r["seed"], "mae": {k: v["mae"] for k, v in m.items()},
                   "rmse": {k: v["rmse"] for k, v in m.items()}, **_record(r)}
  return {"source": src, "cells": cells}


def collect_by_method(a: str, b: str, methods: list[str]) -> dict:
  sys.path.insert(0, ROOT)
  from benchmarks import pipeline as benchmarks_pipeline  # pylint: disable=g-import-not-at-top
  return {"command": OFFSETS_COMMAND,
          "by_method": {m: benchmarks_pipeline.compare_cell_dirs(a, b, m) for m in methods}}


def collect_checks() -> dict:
  runs = {}
  for name, cmd in CHECK_RUNS.items():
    with open(os.path.join(ROOT, "runs", "checks", name, "results.json")) as f:
      r = json.load(f)
    runs[name] = {"command": cmd, "methods": r["methods"], **_record(r)}
  return {"note": "Seed 0 each; results.json of each command (methods' test MAE/RMSE, "
                  "pretraining selections, sanity records, data profile). Made by "
                  "experiments/reproduce.py --targets=checks_sparse_and_planted.",
          "runs": runs}


def collect(args: argparse.Namespace) -> int:
  if not args.out:
    print("error: --collect needs --out", file=sys.stderr)
    return 1
  try:
    if args.collect == "seeds":
      out = collect_seeds(args.src)
    elif args.collect == "by_method":
      out = collect_by_method(args.a, args.b, args.methods.split(","))
    else:
      out = collect_checks()
  except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
    print(f"error: --collect={args.collect}: {e}", file=sys.stderr)
    return 1
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")
  return 0


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--list", action="store_true", help="print targets, commands and outputs")
  p.add_argument("--targets", default="", help="comma-separated target names, or 'all'")
  p.add_argument("--dry_run", action="store_true", help="print what would run")
  p.add_argument("--old_defaults", action="store_true",
                 help="stale targets: add --offsets=none --grid_extend=0 (STALE.md)")
  p.add_argument("--collect", choices=("seeds", "by_method", "checks"), help=argparse.SUPPRESS)
  for name in ("src", "a", "b", "methods", "out"):
    p.add_argument(f"--{name}", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.collect:
    return collect(args)
  if args.list:
    print_list()
    return 0
  if args.targets == "all" or (args.dry_run and not args.targets):
    names = list(TARGETS)
  else:
    names = [n for n in args.targets.split(",") if n]
  unknown = [n for n in names if n not in TARGETS]
  if unknown or not names:
    print(f"error: --targets={args.targets}: unknown {', '.join(unknown) or '(none given)'}; "
          f"see --list", file=sys.stderr)
    return 1
  return run_targets(names, args.dry_run, args.old_defaults)


if __name__ == "__main__":
  sys.exit(main())
