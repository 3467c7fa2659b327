"""pfcdr_jax.privacy.frontier (intervals, Pareto marks, aggregation over seeds),
privacy.units (one user-level unit) and experiments/frontier.py (quick run, resume,
bad input)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pfcdr_jax.privacy import frontier
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.privacy import units

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def test_ci95_is_the_t_interval():
  v = [0.1, 0.3, 0.2, 0.25]
  want = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) / 2.0
  assert frontier.ci95(v) == pytest.approx(want)
  assert math.isnan(frontier.ci95([0.1]))


def _pt(name, mae, leak):
  return {"name": name, "mae": {"mean": mae}, "leakage_max": leak}


def test_pareto_marks_and_names_the_dominating_points():
  pts = frontier.mark_pareto([_pt("a", 0.70, 0.5), _pt("b", 0.72, 0.1), _pt("c", 0.75, 0.0),
                              _pt("d", 0.73, 0.2), _pt("e", 0.70, 0.5)])
  by = {p["name"]: p for p in pts}
  assert [p["name"] for p in pts if p["pareto"]] == ["a", "b", "c", "e"]   # ties: both
  assert by["d"]["dominated_by"] == ["b"]
  assert by["a"]["dominated_by"] == [] and by["e"]["dominated_by"] == []


def _row(name, mae, adv_emb, adv_n, eps=None):
  q = {"embedding": {"attacker": "ridge=1", "score": adv_emb, "chance": 0.0,
                     "advantage": adv_emb, "control": 0.0},
       "n_ratings": {"attacker": "gbt", "score": adv_n, "chance": 0.0,
                     "advantage": adv_n, "control": 0.0}}
  unit = units.unit_of(name, {} if eps is None else {"epsilon": eps})._asdict()
  return {"name": name, "mae": mae, "unit": unit,
          "leakage": {"quantities": q, "leakage_max": max(adv_emb, adv_n)}}


def test_aggregate_takes_the_per_seed_maximum_then_the_mean():
  recs = [{"seed": 0, "rows": [_row("PFCDR", 0.73, 0.1, 0.3), _row("EMCDR", 0.75, 1.0, 0.2)]},
          {"seed": 1, "rows": [_row("PFCDR", 0.72, 0.4, 0.35), _row("EMCDR", 0.74, 1.0, 0.1)]}]
  pts = {p["name"]: p for p in frontier.aggregate(recs)}
  pf = pts["PFCDR"]
  assert pf["leakage_max"] == pytest.approx(0.35)          # mean of (0.3, 0.4)
  assert pf["leakage_max_per_seed"] == [0.3, 0.4]
  assert pf["leakage"]["embedding"]["advantage"] == pytest.approx(0.25)
  assert pf["leakage_argmax"] == "n_ratings"
  assert pf["mae"]["mean"] == pytest.approx(0.725) and pf["mae"]["per_seed"] == [0.73, 0.72]
  assert pf["pareto"] and pts["EMCDR"]["dominated_by"] == ["PFCDR"]
  assert pf["epsilon"] == math.inf and pf["unit"] == "user"


def test_paired_contrast():
  a, b = [0.70, 0.71, 0.69, 0.705], [0.72, 0.725, 0.71, 0.73]
  t = frontier.paired(a, b)
  assert t["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
  assert t["a_lower"] == 4 and t["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_units_put_every_method_at_the_user_level():
  dp = units.unit_of("DP-EMCDR(eps=1)", {"epsilon": 1.0})
  assert (dp.native, dp.user_epsilon, dp.user_delta) == ("user", 1.0, 1e-5)
  plus = units.unit_of("PFCDR+(eps=1)", {"epsilon": 1.0})
  assert plus.native == "rating" and plus.user_epsilon == math.inf   # counts released
  assert units.unit_of("PFCDR", {}).user_epsilon == math.inf
  # PriCDR-S: the same sigma at the user-level sensitivity gives a larger epsilon.
  sigma = mechanisms.classic_gaussian_sigma(0.5, 1e-5, 4.0)
  # A user who is added may rate all 400 items: that, not the largest published profile
  # (100), sets the user-level sensitivity.
  pr = units.unit_of("PriCDR-S", {"epsilon": 0.5, "sigma": sigma}, n_items=400,
                     max_ratings=100, phi_norm=3.0)
  sens = min(400 * 2.0, 20 * 2.0 * 3.0)
  assert pr.user_epsilon == pytest.approx(mechanisms.gaussian_epsilon(sigma, 1e-5, sens))
  seen = mechanisms.gaussian_epsilon(sigma, 1e-5, min(100 * 2.0, 10 * 2.0 * 3.0))
  assert pr.user_epsilon > seen > 0.5
  with pytest.raises(ValueError, match="n_items"):
    units.unit_of("PriCDR-S", {"epsilon": 0.5, "sigma": sigma})


def test_gaussian_epsilon_inverts_the_analytic_sigma():
  for eps in (0.3, 1.0, 8.0):
    sigma = mechanisms.analytic_gaussian_sigma(eps, 1e-5, 2.0)
    assert mechanisms.gaussian_epsilon(sigma, 1e-5, 2.0) == pytest.approx(eps, rel=1e-6)
  assert mechanisms.gaussian_epsilon(0.0, 1e-5, 1.0) == math.inf


def _run(*args):
  return subprocess.run([sys.executable, str(ROOT / "experiments" / "frontier.py"), *args],
                        capture_output=True, text=True, timeout=900, env=ENV)


@pytest.mark.slow   # two tiny seeds in a subprocess: ~1 min on 2 loaded cores
def test_quick_run_writes_the_frontier_and_resumes(tmp_path):
  args = ("--task=synthetic", "--scale=0.002", "--epochs=1", "--quick",
          f"--workdir={tmp_path / 'f'}", f"--cache_dir={tmp_path / 'c'}")
  proc = _run(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads((tmp_path / "f" / "frontier.json").read_text())
  names = [p["name"] for p in out["points"]]
  assert {"PFCDR", "PFCDR-Bilinear", "EMCDR", "DP-EMCDR(eps=1)", "PFCDR-DP(eps=1)",
          "PFCDR+", "PFCDR+(eps=1)", "PFCDR-Bilinear-DP(eps=1)",
          "ItemMean (no transfer)"} <= set(names)
  for p in out["points"]:
    assert {"method", "epsilon", "unit", "mae", "leakage", "leakage_max", "pareto",
            "dominated_by"} <= set(p)
    assert set(p["mae"]) >= {"mean", "ci95"} and len(p["mae"]["per_seed"]) == 2
    for v in p["leakage"].values():
      assert {"attacker", "score", "chance", "advantage", "ci95"} <= set(v)
    assert p["leakage_max"] == pytest.approx(np.mean(p["leakage_max_per_seed"]))
  by = {p["name"]: p for p in out["points"]}
  assert by["PFCDR-Bilinear"]["leakage_max_per_seed"] == by["PFCDR"]["leakage_max_per_seed"]
  assert by["EMCDR"]["leakage"]["embedding"]["advantage"] > 0.99   # it sends U_i
  assert by["PFCDR+"]["leakage"]["n_ratings"]["attacker"] == "kappa_ratio"
  assert by["ItemMean (no transfer)"]["leakage_max"] < 0.2   # noise, end to end
  assert by["PFCDR+"]["leakage"]["n_ratings"]["advantage"] > 0.95
  ids = [c["id"] for c in out["claims"]]
  assert ids[:4] == ["ours_vs_pfcdr", "ours_vs_pfcdr:PFCDR-Bilinear-DP(eps=1)",
                     "ours_dp_vs_itemmean:PFCDR-Bilinear-DP(eps=1)",
                     "acceptance_pareto_and_better"]
  ours = [c for c in out["claims"] if c["id"].startswith("ours_vs_pfcdr")]
  assert all(c["family"] == 2 and c["p_holm"] >= c["p_ttest"] for c in ours)
  floor = [c for c in out["claims"] if c["id"].startswith("ours_dp_vs_itemmean")]
  assert len(floor) == 1 and floor[0]["family"] == 1 and "ItemMean" in floor[0]["text"]
  bdp = by["PFCDR-Bilinear-DP(eps=1)"]
  assert bdp["unit"] == "user" and bdp["epsilon"] == 1.0
  assert (tmp_path / "f" / "frontier.png").stat().st_size > 0
  long = (tmp_path / "f" / "frontier_long.csv").read_text().splitlines()
  assert long[0] == "task,beta,method,seed,metric,value" and len(long) > 50
  # Resume: the seed files are reused, the outputs are the same.
  before = (tmp_path / "f" / "frontier.json").read_text()
  proc = _run(*args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  after = json.loads((tmp_path / "f" / "frontier.json").read_text())
  assert after["points"] == json.loads(before)["points"]
  # A worker on seed 1 only, reusing the leakage of the first run's seed files: it
  # attacks nothing again (bit-identical MAEs) and writes no aggregate.
  proc = _run(*args[:-2], f"--workdir={tmp_path / 'g'}", f"--cache_dir={tmp_path / 'c'}",
              f"--reuse_leakage={tmp_path / 'f' / 'seeds'}", "--only_seeds=1")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(p.name for p in (tmp_path / "g" / "seeds").iterdir()) == ["seed1.json"]
  assert not (tmp_path / "g" / "frontier.json").exists()
  new = json.loads((tmp_path / "g" / "seeds" / "seed1.json").read_text())["rows"]
  old = json.loads((tmp_path / "f" / "seeds" / "seed1.json").read_text())["rows"]
  assert [r["name"] for r in new] == [r["name"] for r in old]
  assert all(r.get("leakage_reused") for r in new if r["name"] != "PFCDR-Bilinear")
  assert [r["leakage"] for r in new] == [r["leakage"] for r in old]


def test_carry_recomputes_the_named_rows_and_reproduces_the_full_run(tmp_path):
  """--carry --rows=FedCDR: FedCDR computed afresh per seed, the other rows rebuilt from
  a committed frontier's _long.csv; a full seed file present is checked against them.
  Both ways the points equal the full run's."""
  args = ("--task=synthetic", "--scale=0.002", "--epochs=1", "--quick",
          f"--cache_dir={tmp_path / 'c'}")
  proc = _run(*args, f"--workdir={tmp_path / 'f'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  committed = tmp_path / "docs"
  committed.mkdir()
  for a, b in (("frontier.json", "frontier_x.json"), ("frontier_long.csv", "frontier_x_long.csv")):
    (committed / b).write_text((tmp_path / "f" / a).read_text())
  full = json.loads((tmp_path / "f" / "frontier.json").read_text())
  (tmp_path / "h" / "seeds").mkdir(parents=True)
  (tmp_path / "h" / "seeds" / "seed0.json").write_text(
      (tmp_path / "f" / "seeds" / "seed0.json").read_text())
  proc = _run(*args, f"--workdir={tmp_path / 'h'}",
              f"--carry={committed / 'frontier_x.json'}", "--rows=FedCDR")
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads((tmp_path / "h" / "frontier.json").read_text())
  assert out["points"] == full["points"] and out["claims"] == full["claims"]
  assert out["carried"]["seeds_run_in_full"] == [0]
  assert (tmp_path / "h" / "rows" / "seed1.json").exists()
  assert not (tmp_path / "h" / "rows" / "seed0.json").exists()
  # A carried row that a full seed file contradicts is refused.
  long = committed / "frontier_x_long.csv"
  lines = long.read_text().splitlines()
  i = next(k for k, l in enumerate(lines) if ',"EMCDR",0,mae,' in l)
  lines[i] = lines[i].rsplit(",", 1)[0] + ",0.5"
  long.write_text("\n".join(lines) + "\n")
  proc = _run(*args, f"--workdir={tmp_path / 'h'}",
              f"--carry={committed / 'frontier_x.json'}", "--rows=FedCDR")
  assert proc.returncode == 1
  assert "EMCDR differs from the carried one" in proc.stderr.strip().splitlines()[-1]
  proc = _run(*args, f"--workdir={tmp_path / 'h'}",
              f"--carry={committed / 'frontier_x.json'}", "--rows=PFCDR")
  assert proc.returncode == 1
  assert "cannot be computed alone" in proc.stderr.strip().splitlines()[-1]


def test_bad_epsilons_end_in_one_error_line(tmp_path):
  proc = _run("--epsilons=0", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == "error: --epsilons=0: budgets must be > 0"


def test_bad_carry_flags_end_in_one_error_line(tmp_path):
  proc = _run(f"--carry={tmp_path / 'none.json'}", "--rows=FedCDR", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: --carry={tmp_path / 'none.json'}: no such file {tmp_path / 'none.json'}")
  proc = _run("--rows=FedCDR", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: --rows needs --carry")


def test_points_say_which_seeds_reused_an_earlier_leakage():
  reused = dict(_row("PFCDR", 0.73, 0.1, 0.3), leakage_reused=True)
  recs = [{"seed": 0, "rows": [reused, _row("EMCDR", 0.75, 1.0, 0.2)]},
          {"seed": 1, "rows": [_row("PFCDR", 0.72, 0.4, 0.35), _row("EMCDR", 0.74, 1.0, 0.1)]}]
  pts = {p["name"]: p for p in frontier.aggregate(recs)}
  assert pts["PFCDR"]["leakage_reused_seeds"] == [0]
  assert pts["EMCDR"]["leakage_reused_seeds"] == []
