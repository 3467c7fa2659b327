"""Smoke tests of benchmarks.suite (and experiments/bench.py) at a tiny size.

No timing is asserted (the machine is shared): the output's keys and structure, and
that the exact selections agree with the numpy reference.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import suite as benchmarks
from benchmarks import pipeline as benchmark_pipeline
from pfcdr_jax.pfcdr import method
from pfcdr_jax.pfcdr import topk as topk_lib

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["data", "pretrain_source", "pretrain_target", "inversion_source",
          "inversion_target", "bridge", "topk", "evaluate"]
TOPK_ENTRY_KEYS = {"k", "method", "s", "numpy_s", "ratio_to_numpy", "sorted_s",
                   "numpy_sorted_s", "sorted_ratio_to_numpy", "same_set_sorted_and_unsorted",
                   "overlap_with_numpy", "top_k_kernel_s", "approx_min_k_s_extrapolated",
                   "approx_min_k_recall", "reps", "s_median", "numpy_s_median",
                   "median_ratio_to_numpy"}
CFG = benchmarks.BenchConfig(scale=0.002, epochs=1, iter_users=8, iter_chunk=8,
                             topk_ks=(3, 100_000), sample_users=4, topk_reps=2,
                             full_job=False)


@pytest.fixture(scope="module")
def pipeline():
  return benchmarks.pipeline_report(CFG, method.StageKeys.from_seed(CFG.seed))


def test_pipeline_report_has_every_stage_and_the_result(pipeline):
  report, run = pipeline
  assert list(report["stages"]) == STAGES
  assert report["total_s"] >= 0 and report["peak_rss_gb_after_pipeline"] > 0
  res = report["result"]
  assert set(res) == {"mae", "rmse", "k", "val_mae_by_k"}
  assert 0 < res["mae"] <= res["rmse"]
  # K was chosen on the validation users among the candidates tried.
  assert res["val_mae_by_k"][str(res["k"])] == min(res["val_mae_by_k"].values())
  n_cold = len(run.data.val_users) + len(run.data.test_users)
  assert run.P_hat.shape == (n_cold, run.W_t.shape[1])
  assert len(run.source_users) == len(run.data.train_users) + n_cold


def test_inversion_comparison_structure(pipeline):
  _, run = pipeline
  inv = benchmarks.inversion_comparison(run, CFG)
  assert inv["iterative_users"] == 8 and inv["closed_form_users"] == len(run.source_users)
  assert inv["n_items"] == run.V_s.shape[0] and inv["dim"] == run.V_s.shape[1]
  # The closed form is the iterative algorithm's prototype, to float noise.
  assert inv["max_rel_err"] < 1e-2
  for key in ("speedup", "roofline_ratio", "roofline_draw_b0_s", "roofline_dots_s",
              "closed_form_chunk", "iterative_chunk", "steps"):
    assert key in inv


def test_topk_comparison_agrees_with_numpy(pipeline):
  _, run = pipeline
  out = benchmarks.topk_comparison(run, CFG)
  assert out["cold_users"] == len(run.data.test_users)
  assert out["valid_targets"] == int(np.sum(np.asarray(run.valid)))
  assert "lax_sort_s_extrapolated" in out
  assert out["100000"]["k"] == out["valid_targets"]   # K clipped to the candidates
  for k in ("3", "100000"):
    e = out[k]
    assert TOPK_ENTRY_KEYS <= set(e), TOPK_ENTRY_KEYS - set(e)
    assert e["overlap_with_numpy"] == 1.0 and e["same_set_sorted_and_unsorted"]
    assert e["approx_min_k_recall"] > 0.5
  table = benchmarks.format_table(
      {"command": "test", "machine": benchmarks.machine_info(), "topk": out,
       "inversion": benchmarks.inversion_comparison(run, CFG),
       "pipeline": pipeline[0], "peak_rss_gb": benchmarks.peak_rss_gb()})
  assert "pipeline total" in table and "lax.sort selection" in table
  assert sum(line.split()[0] in ("3", "100000") for line in table.splitlines() if line) == 2


@pytest.mark.parametrize("k", [1, 7, 40])
def test_library_and_xla_selections_match_numpy(k):
  rng = np.random.default_rng(0)
  P = rng.normal(size=(9, 4)).astype(np.float32)
  W = rng.normal(size=(40, 4)).astype(np.float32)
  valid = rng.random(40) < 0.8
  k = min(k, int(valid.sum()))
  ref = benchmarks.numpy_topk(P, W, valid, 5.0, k, sort=True, block=4)
  lib = np.asarray(topk_lib.select_neighbors(P, W, valid, r=5.0, k=k, sorted=True))
  np.testing.assert_array_equal(lib, ref)
  unsorted = benchmarks.numpy_topk(P, W, valid, 5.0, k, sort=False)
  np.testing.assert_array_equal(np.sort(unsorted, 1), np.sort(ref, 1))
  srt = benchmarks.sort_topk(jnp.asarray(P), jnp.asarray(W), jnp.asarray(valid),
                             jnp.float32(5.0), k=k)
  np.testing.assert_array_equal(np.asarray(srt), ref)
  assert benchmarks.recall(ref, ref) == 1.0
  assert np.all(valid[ref])


def test_roofline_draws_as_many_users_as_given():
  V = jax.random.normal(jax.random.PRNGKey(1), (30, 4))
  W = jax.random.normal(jax.random.PRNGKey(2), (5, 4))
  cfg = benchmarks.BenchConfig(inversion_chunk=2).inversion()
  draw_s, dots_s, cs = benchmarks.roofline(W, V, np.arange(5), jax.random.PRNGKey(0), cfg)
  assert cs == 2 and draw_s >= 0 and dots_s >= 0


def test_bench_script_writes_the_keys(tmp_path):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "bench.py"), "--scale=0.002", "--epochs=1",
       "--iter_users=8", "--iter_chunk=8", "--topk_ks=3,50", "--sample_users=4",
       "--topk_reps=2", "--scaling=0.002,0.003", "--scaling_also=book2movie:0.001",
       "--job_flag=--epochs=2",
       "--job_flag=--lrs=0.01", "--job_flag=--bridge_epochs=5", f"--out={out}"],
      capture_output=True, text=True, timeout=600,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert {"command", "like", "scale", "machine", "pipeline", "inversion", "topk",
          "peak_rss_gb"} <= set(res)
  assert list(res["pipeline"]["stages"]) == STAGES and "total_s" in res["pipeline"]
  assert TOPK_ENTRY_KEYS <= set(res["topk"]["3"]) and TOPK_ENTRY_KEYS <= set(res["topk"]["50"])
  assert "pipeline total" in proc.stdout
  full = res["pipeline_full"]
  assert {"total_s", "stages", "peak_rss_gb", "ratings", "users", "pfcdr_mae"} <= set(full)
  assert {"data", "pretrain_source", "pretrain_target", "pfcdr"} <= set(full["stages"])
  assert full["peak_rss_gb"] > 0 and "--epochs=2" in full["command"]
  if os.path.exists(f"/proc/{os.getpid()}/status"):
    assert full["peak_rss_source"] == "VmHWM"   # the child's own peak, not the parent's
  runs = res["scaling"]["runs"]
  assert [r["scale"] for r in runs] == [0.002, 0.003] and runs[0]["ratings"] < runs[1]["ratings"]
  assert set(res["scaling"]["growth_exponents"]) == set(runs[0]["stages"])
  assert list(res["scaling"]["pairwise_exponents"]) == ["0.002->0.003"]
  (also,) = res["scaling"]["also"]
  assert also["like"] == "book2movie" and also["scale"] == 0.001
  assert "--like=book2movie" in also["command"] and "--epochs=2" in also["command"]


def test_vm_hwm_reads_this_process_and_none_for_a_missing_one():
  if not os.path.exists(f"/proc/{os.getpid()}/status"):
    pytest.skip("no /proc on this system")
  mine = benchmark_pipeline.vm_hwm_gb(os.getpid())
  assert mine is not None and 0 < mine <= benchmarks.peak_rss_gb() * 1.01
  assert benchmark_pipeline.vm_hwm_gb(2 ** 22 + 7) is None     # beyond pid_max


def test_growth_exponents_recover_planted_powers():
  rows = [{"ratings": n, "users": n // 10, "items": 50 * f, "cold_users": n // 100,
           "stages": {"pretrain_source": 1e-4 * n, "inversion_source": 1e-5 * (n // 10) * 50 * f,
                      "pfcdr": 2e-6 * (n // 100) * (n // 10)}}
          for n, f in ((10_000, 1), (30_000, 3), (100_000, 10))]
  g = benchmark_pipeline.growth_exponents(rows)
  assert g["pretrain_source"]["vs_ratings"] == pytest.approx(1.0, abs=1e-3)
  assert g["inversion_source"]["vs_work"] == pytest.approx(1.0, abs=1e-3)
  assert g["inversion_source"]["vs_ratings"] == pytest.approx(2.0, abs=1e-2)
  assert g["pfcdr"]["work"] == "users_x_users"
  assert g["pfcdr"]["vs_ratings"] == pytest.approx(2.0, abs=1e-2)
  assert benchmark_pipeline.growth_exponents(rows[:1]) == {}


def _fake_cell(root, name, mae, rmse, epoch, secs):
  d = root / "cells" / name
  d.mkdir(parents=True)
  pre = {f"pretrain_{k}": {"lr": 0.001, "epoch": epoch, "heldout_mse": 0.8 + 0.001 * epoch}
         for k in ("source", "target")}
  (d / "results.json").write_text(json.dumps({
      "methods": {"PFCDR": {"mae": mae, "rmse": rmse}}, "selected": {"pretrain": pre},
      "timings_s": {"pretrain_source": secs, "pretrain_target": secs}}))


def test_compare_cell_dirs_is_a_paired_t_test_over_common_cells(tmp_path):
  from scipy import stats
  a_mae, b_mae = [0.73, 0.74, 0.72, 0.75], [0.731, 0.742, 0.719, 0.753]
  for i, (x, y) in enumerate(zip(a_mae, b_mae)):
    _fake_cell(tmp_path / "a", f"s{i}", x, x + 0.2, 40 + i, 30.0)
    _fake_cell(tmp_path / "b", f"s{i}", y, y + 0.2, 20 + i, 10.0)
  _fake_cell(tmp_path / "a", "only_in_a", 0.9, 1.0, 1, 1.0)
  res = benchmark_pipeline.compare_cell_dirs(str(tmp_path / "a"), str(tmp_path / "b"))
  assert res["n"] == 4 and "only_in_a" not in res["cells"]
  row = res["rows"]["PFCDR_mae"]
  assert row["diff_mean"] == pytest.approx(np.mean(np.subtract(b_mae, a_mae)), abs=1e-4)
  assert row["t_test_p"] == pytest.approx(stats.ttest_rel(b_mae, a_mae).pvalue, abs=1e-4)
  assert res["rows"]["source_epoch"]["diff_mean"] == -20
  assert res["rows"]["pretrain_s"]["b_mean"] == 20.0
  with pytest.raises(ValueError, match="no cells/ directory"):
    benchmark_pipeline.compare_cell_dirs(str(tmp_path / "a"), str(tmp_path / "a" / "cells" / "s0"))
  _fake_cell(tmp_path / "c", "s0", 0.7, 0.9, 3, 1.0)
  with pytest.raises(ValueError, match="need >= 2 cells"):
    benchmark_pipeline.compare_cell_dirs(str(tmp_path / "a"), str(tmp_path / "c"))


def test_topk_paths_script_times_three_paths_and_checks_bad_ks(tmp_path):
  out = tmp_path / "paths.json"
  script = str(ROOT / "experiments" / "bench_topk_paths.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--cold_users=20", "--targets=600",
                         "--ks=5,300", "--reps=1", f"--out={out}"],
                        capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert set(res["k"]) == {"5", "300"}
  for entry in res["k"].values():
    assert set(entry["median_s"]) == {"threshold", "partition", "numpy"}
    assert entry["partition_equals_threshold"] is True
  bad = subprocess.run([sys.executable, script, "--ks=x", f"--out={out}"],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: --ks")


def test_bench_pretrain_writes_both_optimizers_on_one_trajectory(tmp_path):
  # Tiny sizes (the dense path is faster there; no timing is asserted): the script runs
  # end to end, and the two optimizers' held-out MSE after the timed epoch agree.
  out = tmp_path / "bench_pretrain.json"
  proc = subprocess.run(
      [sys.executable, str(ROOT / "experiments" / "bench_pretrain.py"),
       "--scales=0.003,0.01", "--epochs=1", f"--out={out}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  res = json.loads(out.read_text())
  assert [r["scale"] for r in res["rows"]] == [0.003, 0.01]
  for row in res["rows"]:
    assert row["ratings"] > 0 and row["adam"]["epoch_s"] > 0
    np.testing.assert_allclose(row["deferred_adam"]["heldout_mse"],
                               row["adam"]["heldout_mse"], rtol=1e-3)
  assert set(res["exponents"]["0.003->0.01"]) == {"adam", "deferred_adam"}
  bad = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_pretrain.py"),
                        "--optimizers=sgd"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert bad.returncode != 0 and "unknown ['sgd']" in bad.stderr


def test_data_stage_bench_writes_medians_and_exponents(tmp_path):
  out = tmp_path / "data.json"
  script = str(ROOT / "experiments" / "bench_data_stage.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--scales=0.002,0.006", "--reps=2",
                         f"--out={out}"], capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  small, large = res["runs"]
  assert len(small["data_stage_s"]) == len(large["data_stage_s"]) == 2
  med = [float(np.median(r["data_stage_s"])) for r in (small, large)]
  assert small["data_stage_median_s"] == pytest.approx(med[0], abs=6e-4)
  assert large["ratings"] > small["ratings"]
  want = np.log(med[1] / med[0]) / np.log(large["ratings"] / small["ratings"])
  assert res["data_stage_exponent"] == pytest.approx(want, abs=2e-3)
  assert set(res["passes_exponent"]) == set(res["passes_s"]["0.002"]) == {
      "astype_float64", "bincount_sorted_users", "bincount_random_items",
      "argsort_grouped_keys", "argsort_random_keys", "choice_by_popularity",
      "guide_table_draw"}
  # Both heap settings, interleaved; data_stage_s is the main job's (default).
  assert res["heap"] == "default"
  for r in res["runs"]:
    assert r["heap_default"]["data_stage_s"] == r["data_stage_s"]
    assert len(r["heap_reuse"]["data_stage_s"]) == 2
  assert res["data_stage_exponent_by_heap"]["default"] == res["data_stage_exponent"]
  other = [float(np.median(r["heap_reuse"]["data_stage_s"])) for r in (small, large)]
  want = np.log(other[1] / other[0]) / np.log(large["ratings"] / small["ratings"])
  assert res["data_stage_exponent_by_heap"]["reuse"] == pytest.approx(want, abs=2e-3)
  assert set(res["passes_exponent_heap_reuse"]) == set(res["passes_exponent"])
  for flag in ("--scales=1", "--scales=x,1", "--scales=1,1", "--heap=default,default",
               "--heap=fast"):
    bad = subprocess.run([sys.executable, script, flag, f"--out={out}"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith(f"error: {flag}")


def test_compile_probe_counts_a_scripts_compiles(tmp_path):
  script = tmp_path / "two_kernels.py"
  script.write_text("import jax, jax.numpy as jnp\n"
                    "jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()\n"
                    "jax.jit(lambda x: x * 2)(jnp.ones(5)).block_until_ready()\n")
  out = tmp_path / "compiles.txt"
  probe = str(ROOT / "experiments" / "compile_probe.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PFCDR_XLA_CACHE": "0"}
  proc = subprocess.run([sys.executable, probe, f"--out={out}", str(script)],
                        capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  first = out.read_text().splitlines()[0]
  assert first.startswith("total ") and int(first.split(", ")[1].split()[0]) >= 2
  bad = subprocess.run([sys.executable, probe, f"--out={out}", str(tmp_path / "none.py")],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error:")


def test_early_stop_replay_writes_each_rules_selection(tmp_path):
  out = tmp_path / "replay.json"
  script = str(ROOT / "experiments" / "early_stop_replay.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--task=synthetic", "--scale=0.005",
                         "--num_seeds=1", "--epochs=8", f"--out={out}"],
                        capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert [r["domain"] for r in res["records"]] == ["source", "target"]
  for r in res["records"]:
    ref, rise = r["rules"]["per_lr_reach_geometric"], r["rules"]["per_lr_reach_rise"]
    # The recorded rule replayed on its own curve is the recorded run.
    assert (ref["lr"], ref["epoch"]) == (r["recorded"]["lr"], r["recorded"]["epoch"])
    assert ref["lr_epochs"] == int(np.sum(np.isfinite(np.asarray(r["curve"], float))))
    if "not_replayable" not in rise:
      assert rise["lr_epochs"] <= ref["lr_epochs"]
  s = res["summary"]["per_lr_reach_geometric"]
  assert s["same_selection"] == "2/2" and s["rating_visits_vs_recorded"] == 1.0
  bad = subprocess.run([sys.executable, script, "--task=synthetic", "--scale=0.005",
                        "--rules=any_lr", f"--out={out}"],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0
  assert "not a per-lr rule" in bad.stderr.strip().splitlines()[-1]
  bad = subprocess.run([sys.executable, script, "--task=synthetic", "--scale=0.005",
                        "--record_rule=any_lr", f"--out={out}"],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --record_rule: 'any_lr'")


def test_bench_cmf_writes_both_optimizers_and_refuses_bad_scales(tmp_path):
  # Tiny sizes, no timing asserted: both optimizers ran one epoch from the same start
  # and their predictions are close (the deferred trajectory is dense Adam's).
  out = tmp_path / "bench_cmf.json"
  script = str(ROOT / "experiments" / "bench_cmf.py")
  proc = subprocess.run([sys.executable, script, "--scales=0.003,0.01", "--epochs=1",
                         f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  res = json.loads(out.read_text())
  assert [r["scale"] for r in res["rows"]] == [0.003, 0.01]
  for row in res["rows"]:
    assert row["adam"]["epoch_s"] > 0 and row["deferred_adam"]["epoch_s"] > 0
    assert row["max_abs_pred_diff"] < 0.05
  assert set(res["rows"][1]["exponent_vs_ratings"]) == {"adam", "deferred_adam"}
  bad = subprocess.run([sys.executable, script, "--scales=-1"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(
      "error: --scales")


def test_compare_commits_reads_existing_runs_and_reports_identity(tmp_path):
  # Both arms' results.json already in the workdir (a resumed run): nothing is rerun;
  # one method differs in one seed, and the report says so.
  for arm, mae in (("old", 0.70), ("new", 0.71)):
    for s in range(2):
      d = tmp_path / "w" / arm / f"s{s}"
      d.mkdir(parents=True)
      m = mae if s == 1 else 0.70
      (d / "results.json").write_text(json.dumps({
          "methods": {"PFCDR": {"mae": m, "rmse": 0.9}, "ItemMean": {"mae": 0.8, "rmse": 1.0}},
          "selected": {"topk": 5}, "timings_s": {"total": 1.0}}))
  out = tmp_path / "cmp.json"
  proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare_commits.py"),
                         "--old=HEAD", "--num_seeds=2", f"--workdir={tmp_path / 'w'}",
                         f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  res = json.loads(out.read_text())
  assert res["methods"]["ItemMean"]["mae"]["identical"] == 2
  assert res["methods"]["PFCDR"]["mae"]["identical"] == 1
  assert res["methods"]["PFCDR"]["mae"]["max_abs_diff"] == pytest.approx(0.01)
  assert res["selected_identical"] == 2
  bad = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare_commits.py"),
                        "--old=no-such-commit", f"--workdir={tmp_path / 'w2'}",
                        f"--out={out}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: git")


def test_bench_common_checks_and_exponent(tmp_path):
  from benchmarks import common
  assert common.parse_scales(["1", "3"], at_least=2) == [1.0, 3.0]
  for bad, match in ((["x"], "must be numbers"), (["0"], "must be > 0"),
                     (["1", "1"], "at least 2 different")):
    with pytest.raises(ValueError, match=match):
      common.parse_scales(bad, at_least=2)
  with pytest.raises(ValueError, match="--like=nowhere"):
    common.check_like("nowhere")
  with pytest.raises(ValueError, match="its directory does not exist"):
    common.check_out(str(tmp_path / "none" / "x.json"))
  assert common.growth_exponent(1.0, 9.0, 10, 30) == pytest.approx(2.0)
  ids = common.popular_ids(np.random.default_rng(0), 50, 1000)
  assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 50
  calls = []
  times = common.interleaved_times({"a": lambda: calls.append("a"),
                                    "b": lambda: calls.append("b")}, reps=3)
  assert calls == ["a", "b"] * 3 and all(len(v) == 3 for v in times.values())
  assert common.spread([3.0, 1.0, 2.0]) == {"median_s": 2.0, "min_s": 1.0, "max_s": 3.0}
  out = tmp_path / "x.json"
  common.write_json(str(out), {"k": 1})
  assert json.loads(out.read_text()) == {"k": 1} and not (tmp_path / "x.json.tmp").exists()


def test_bench_floors_writes_medians_and_exponents(tmp_path):
  out = tmp_path / "floors.json"
  script = str(ROOT / "experiments" / "bench_floors.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--scales=0.003,0.009", "--reps=3",
                         f"--out={out}"], capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert set(res["floors"]) == {"GlobalMean", "ItemMean", "BiasFloor"}
  r = res["ratings"]
  for entry in res["floors"].values():
    small, large = entry["runs"]["0.003"], entry["runs"]["0.009"]
    assert len(small["seconds"]) == len(large["seconds"]) == 3
    assert small["median_s"] == pytest.approx(float(np.median(small["seconds"])), abs=1e-4)
    want = np.log(large["median_s"] / small["median_s"]) / np.log(r["0.009"] / r["0.003"])
    assert entry["exponent_of_medians"] == pytest.approx(want, abs=0.05)
    lo, mid, hi = (entry["exponent_per_round"][k] for k in ("min", "median", "max"))
    assert lo <= mid <= hi
  bad = subprocess.run([sys.executable, script, "--scales=1", f"--out={out}"],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --scales needs at least 2")


def test_bench_k_grid_times_both_paths_and_they_agree(tmp_path):
  out = tmp_path / "k_grid.json"
  script = str(ROOT / "experiments" / "bench_k_grid.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--cold_users=40", "--targets=3000",
                         "--reps=2", f"--out={out}"], capture_output=True, text=True,
                        timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert set(res["paths"]) == {"host_sort", "device"}
  assert all(len(p["seconds"]) == 2 for p in res["paths"].values())
  assert len(res["ks"]) > 3 and max(res["ks"]) <= res["shape"]["valid"]
  assert res["max_abs_diff"] < 2e-6 and res["same_means_tied"] is True
  bad = subprocess.run([sys.executable, script, f"--out={tmp_path}/none/x.json"],
                       capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --out=")


def test_cmf_optimizers_pairs_the_two_over_seeds(tmp_path):
  out = tmp_path / "cmf.json"
  script = str(ROOT / "experiments" / "cmf_optimizers.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--task=synthetic", "--scale=0.002",
                         "--num_seeds=2", f"--out={out}"], capture_output=True, text=True,
                        timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert [r["seed"] for r in res["per_seed"]] == [0, 1] and res["synthetic"] is True
  mae = res["summary"]["mae"]
  diffs = [r["deferred_adam"]["mae"] - r["adam"]["mae"] for r in res["per_seed"]]
  assert mae["deferred_minus_adam"]["mean_diff"] == pytest.approx(np.mean(diffs), abs=1e-9)
  lo, hi = mae["deferred_minus_adam"]["ci95"]
  assert lo <= mae["deferred_minus_adam"]["mean_diff"] <= hi
  assert abs(mae["deferred_minus_adam"]["mean_diff"]) < 1e-3
  bad = subprocess.run([sys.executable, script, "--task=synthetic", "--like=nowhere",
                        f"--out={out}"], capture_output=True, text=True, timeout=300, env=env)
  assert bad.returncode != 0
  assert bad.stderr.strip().splitlines()[-1].startswith("error: --like=nowhere")


def test_bench_main_jobs_times_cold_and_warm_runs(tmp_path):
  out = tmp_path / "jobs.json"
  script = str(ROOT / "experiments" / "bench_main_jobs.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--jobs=synthetic:music2movie:0.003",
                         "--repeats=1", f"--out={out}"], capture_output=True, text=True,
                        timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  job = res["jobs"]["synthetic:music2movie:0.003"]
  assert set(job) == {"cold", "warm"}
  for cond in job.values():
    assert len(cond["wall_s"]) == 1 and cond["wall"]["median_s"] == cond["wall_s"][0]
    assert "--scale=0.003" in cond["command"] and "pretrain_source" in cond["stages_median_s"]
  # The cache holds the same executables: the runs' results are the same.
  assert job["cold"]["pfcdr_mae"] == job["warm"]["pfcdr_mae"]
  for jobs, says in (("nowhere", "error: --jobs: 'nowhere'"),
                     ("synthetic:music2movie", "error: --jobs: 'synthetic:music2movie'")):
    bad = subprocess.run([sys.executable, script, f"--jobs={jobs}", f"--out={out}"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(says)


def test_bench_concurrent_domains_gives_the_same_outputs_both_ways(tmp_path):
  out = tmp_path / "conc.json"
  script = str(ROOT / "experiments" / "bench_concurrent_domains.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--task=synthetic", "--scale=0.003",
                         "--epochs=3", "--reps=2", f"--out={out}"], capture_output=True,
                        text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert res["task"] == "synthetic"
  for stage in ("pretraining", "inversion"):
    entry = res[stage]
    assert set(entry["ways"]) == {"sequential", "concurrent"}
    assert all(len(w["seconds"]) == 2 for w in entry["ways"].values())
    assert entry["same_outputs"] is True
    med = {w: float(np.median(v["seconds"])) for w, v in entry["ways"].items()}
    assert entry["concurrent_over_sequential"] == pytest.approx(
        med["concurrent"] / med["sequential"], abs=2e-3)


def test_scaling_repeats_interleave_and_report_medians(monkeypatch):
  calls = []

  def fake_job(like, scale, extra=()):
    calls.append(scale)
    k = sum(1 for c in calls if c == scale)          # this scale's k-th run
    secs = scale * (1.0 + 0.1 * k)
    return {"scale": scale, "wall_s": secs + 1, "total_s": secs, "peak_rss_gb": k,
            "stages": {"data": secs}, "ratings": int(scale * 1000), "users": 10,
            "items": 10, "cold_users": 1}

  monkeypatch.setattr(benchmark_pipeline, "run_main_job", fake_job)
  res = benchmark_pipeline.scaling("music2movie", [1.0, 3.0], repeats=3)
  assert calls == [1.0, 3.0] * 3
  lo, hi = res["runs"]
  assert lo["repeats"] == 3 and lo["stages"]["data"] == pytest.approx(1.2)
  assert hi["wall_s_runs"] == pytest.approx([4.3, 4.6, 4.9]) and hi["peak_rss_gb"] == 3
  assert res["growth_exponents"]["data"]["vs_ratings"] == pytest.approx(1.0, abs=1e-3)


def test_scaling_adds_pairwise_exponents_and_the_other_templates_runs(monkeypatch):
  calls = []

  def fake_job(like, scale, extra=()):
    calls.append((like, scale))
    return {"scale": scale, "wall_s": scale + 1, "total_s": scale, "peak_rss_gb": 1,
            "stages": {"data": scale}, "ratings": int(scale * 1000), "users": 10,
            "items": 10, "cold_users": 1}

  monkeypatch.setattr(benchmark_pipeline, "run_main_job", fake_job)
  res = benchmark_pipeline.scaling("music2movie", [0.3, 1.0, 3.0],
                                   also=[("book2movie", 1.0)])
  assert calls == [("music2movie", 0.3), ("music2movie", 1.0), ("music2movie", 3.0),
                   ("book2movie", 1.0)]
  assert list(res["pairwise_exponents"]) == ["0.3->1", "1->3"]
  assert res["pairwise_exponents"]["1->3"]["data"]["vs_ratings"] == pytest.approx(1.0)
  assert [r["like"] for r in res["also"]] == ["book2movie"]
  assert "also" not in benchmark_pipeline.scaling("music2movie", [1.0])


@pytest.mark.parametrize("item,match", [("book2movie", "expected <like>:<scale>"),
                                        ("book2movie:x", "expected <like>:<scale>"),
                                        ("book2movie:0", "must be > 0"),
                                        ("nope:1", "unknown template")])
def test_parse_also_names_the_flag_and_the_problem(item, match):
  assert benchmark_pipeline.parse_also(["book2movie:1", "sparse:0.5"]) == [
      ("book2movie", 1.0), ("sparse", 0.5)]
  with pytest.raises(ValueError, match=match) as e:
    benchmark_pipeline.parse_also([item], "--scaling_also")
  assert str(e.value).startswith(f"--scaling_also={item}")


def test_hugepages_bench_probes_both_settings_and_checks_its_flags(tmp_path):
  """The allocation probe alone (no main job: ``--scales=``), then bad flags."""
  out = tmp_path / "hp.json"
  script = str(ROOT / "experiments" / "bench_hugepages.py")
  proc = subprocess.run([sys.executable, script, "--scales=", "--arrays=3", "--array_mb=1",
                         f"--out={out}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(out.read_text())
  assert set(res["allocations"]) == {"on", "off"} and res["jobs"] == {}
  for probe in res["allocations"].values():
    assert len(probe["ms"]) == 3 and all(ms > 0 for ms in probe["ms"])
    assert probe["last_median_ms"] == pytest.approx(float(np.median(probe["ms"][-1:])))
  for flag in ("--settings=on,sometimes", "--settings=on,on", "--scales=x", "--scales=1,1.0"):
    bad = subprocess.run([sys.executable, script, flag, f"--out={out}"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "error:" in bad.stderr, bad.stderr[-500:]


def test_heap_bench_pairs_both_settings_with_equal_maes(tmp_path):
  out = tmp_path / "heap.json"
  script = str(ROOT / "experiments" / "bench_heap.py")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  proc = subprocess.run([sys.executable, script, "--like=music2movie", "--scales=0.002",
                         "--repeats=1", f"--out={out}"], capture_output=True, text=True,
                        timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  cell = json.loads(out.read_text())["jobs"]["0.002"]
  assert cell["same_mae"] and cell["default"]["pfcdr_mae"] == cell["reuse"]["pfcdr_mae"]
  for setting in ("default", "reuse"):
    assert len(cell[setting]["wall_s"]) == 1 and cell[setting]["peak_median_gb"] > 0
  want = cell["reuse"]["data_s"][0] / cell["default"]["data_s"][0]
  assert cell["reuse_vs_default"]["data_ratio"] == [pytest.approx(want, abs=1e-3)]
  for flag in ("--scales=x", "--scales=1,1.0", "--like=nope"):
    bad = subprocess.run([sys.executable, script, flag, f"--out={out}"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "error:" in bad.stderr, bad.stderr[-500:]


@pytest.mark.parametrize("args,says", [
    (["--scaling=1", "--scaling_repeats=0"], "error: --scaling_repeats=0"),
    (["--scaling=1", "--scaling_also=nope:1"], "error: --scaling_also=nope:1"),
    (["--scaling_also=book2movie:1"], "error: --scaling_also / --scaling_repeats")])
def test_bench_script_refuses_bad_scaling_flags_before_work(tmp_path, args, says):
  out = tmp_path / "bench.json"
  bad = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench.py"), *args,
                        f"--out={out}"], capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(says)
  assert not out.exists()
