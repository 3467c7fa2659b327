"""Tests of the seed sweep: resume, aggregation, significance, rendering, the scripts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import cells as cells_lib
from pfcdr_jax.harness import comparison
from pfcdr_jax.harness import contrasts
from pfcdr_jax.harness import long_format
from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import sanity
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import plots
from pfcdr_jax.harness import significance
from pfcdr_jax.harness import summary
from pfcdr_jax.harness import tables
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**updates):
  """A synthetic-task config from dotted overrides (``pretrain__epochs`` = "pretrain.epochs")."""
  return config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "synthetic", **{k.replace("__", "."): v for k, v in updates.items()}})


def _with_extra(*names):
  return config_lib.MAIN_BASELINES + names


def _write_cell(workdir, cfg, user, rating, preds, baselines=None, sanity=None):
  """What run_pfcdr leaves in a workdir, from hand-made predictions (``sanity``: the
  results.json record of the sanity gates; None = a cell from before them)."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cache_lib.atomic_write_text(workdir / "config.json", json.dumps(config_lib.to_dict(cfg)))
  cache_lib.StageCache(workdir).save("predictions", "test", {
      "user": user, "item": np.zeros_like(user), "rating": rating,
      **{f"pred_{k}": np.asarray(v, np.float32) for k, v in preds.items()}})
  methods = {k: {"mae": float(np.mean(np.abs(v - rating))),
                 "rmse": float(np.sqrt(np.mean((v - rating) ** 2)))} for k, v in preds.items()}
  results = {"task": cfg.data.task, "beta": cfg.split.beta, "seed": cfg.seed,
             "base_model": cfg.pretrain.base_model,
             "methods": methods,
             "selected": {"topk": 7, "pretrain": {"pretrain_source": {"lr": 0.01, "epoch": 3}},
                          "baselines": baselines or {}}}
  if sanity is not None:
    results["sanity"] = sanity
  cache_lib.atomic_write_text(workdir / "results.json", json.dumps(results))


def _data(seed, n_users=60, per_user=5):
  rng = np.random.default_rng(seed)
  user = np.repeat(np.arange(n_users), per_user).astype(np.int32)
  rating = rng.integers(1, 6, user.size).astype(np.float32)
  return rng, user, rating


def _cells(tmp_path, *, pfcdr_noise, other_noise, n_seeds=3, same=False):
  dirs = []
  for seed in range(n_seeds):
    rng, user, rating = _data(seed)
    preds = {"PFCDR": rating + pfcdr_noise * rng.normal(size=rating.size),
             "TGT": np.zeros_like(rating),
             "EMCDR": rating + other_noise * rng.normal(size=rating.size),
             "GlobalMean": np.full_like(rating, 3.0),
             "ItemMean": np.full_like(rating, 3.1)}
    if same:
      preds["EMCDR"] = preds["PFCDR"].copy()
    cfg = _cfg(split__beta=0.2, seed=seed)
    d = tmp_path / f"s{seed}"
    _write_cell(d, cfg, user, rating, preds)
    dirs.append(d)
  return dirs


def test_per_user_errors_match_a_loop():
  rng = np.random.default_rng(0)
  user = rng.integers(0, 7, 50)
  rating, pred = rng.uniform(1, 5, 50), rng.uniform(1, 5, 50)
  users, mae, mse = significance.per_user_errors(user, rating, pred)
  for k, u in enumerate(users):
    sel = user == u
    np.testing.assert_allclose(mae[k], np.mean(np.abs(pred[sel] - rating[sel])))
    np.testing.assert_allclose(mse[k], np.mean((pred[sel] - rating[sel]) ** 2))
  with pytest.raises(ValueError):
    significance.per_user_errors(user[:3], rating, pred)


def test_aggregation_is_mean_and_sample_std_over_seeds(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.3, other_noise=1.0)
  rows = summary.summarize(dirs)
  assert [r.metric for r in rows] == ["mae", "rmse"]
  for r in rows:
    assert r.n_seeds == 3 and r.seeds == (0, 1, 2)
    for m in ("PFCDR", "EMCDR", "TGT"):
      v = [json.loads((d / "results.json").read_text())["methods"][m][r.metric] for d in dirs]
      np.testing.assert_allclose(r.mean[m], np.mean(v), rtol=1e-12)
      np.testing.assert_allclose(r.std[m], np.std(v, ddof=1), rtol=1e-12)
      assert r.per_seed[m] == tuple(v)   # what the mean, the std and the tests used
    assert r.best == "PFCDR" and r.second == "EMCDR"
  # The long CSV holds exactly those values: one row per method x seed x metric.
  records = long_format.from_rows(rows)
  assert len(records) == 5 * 3 * 2
  for rec in records:
    res = json.loads((dirs[rec.seed] / "results.json").read_text())
    assert (rec.task, rec.beta) == ("synthetic", 0.2)
    assert rec.value == res["methods"][rec.method][rec.metric]


def test_clearly_better_method_gets_a_star_with_scipy_reference(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.2, other_noise=1.0)
  rows = summary.summarize(dirs)
  for r in rows:
    assert r.test.method_b == "EMCDR" and r.test.significant and r.star == "PFCDR"
    col = 1 if r.metric == "mae" else 2
    ea, eb = [], []
    for d in dirs:  # plain reference: per-user errors, (seed, user) pairs pooled
      z = np.load(d / "predictions-test.npz")
      for name, acc in (("PFCDR", ea), ("EMCDR", eb)):
        e = z[f"pred_{name}"].astype(np.float64) - z["rating"]
        e = np.abs(e) if col == 1 else e ** 2
        acc += [e[z["user"] == u].mean() for u in np.unique(z["user"])]
    assert r.test.n_pairs == len(ea) == 180
    np.testing.assert_allclose(r.test.p_ttest, stats.ttest_rel(ea, eb).pvalue, rtol=1e-9)
    np.testing.assert_allclose(r.test.p_wilcoxon, stats.wilcoxon(ea, eb).pvalue, rtol=1e-9)
    d = np.asarray(ea) - np.asarray(eb)
    assert r.test.median_diff == pytest.approx(float(np.median(d)), abs=1e-12)
    assert r.test.share_a_better == pytest.approx(float(np.mean(d < 0)), abs=1e-12)
  md = tables.render_markdown(rows, title="t", command="cmd")
  lines = md.splitlines()
  cols = [c.strip() for c in next(l for l in lines if l.startswith("| Task")).split("|")]
  mae = [c.strip() for c in next(l for l in lines if "| 20% | MAE" in l).split("|")]
  assert mae[cols.index("PFCDR")] == f"**{rows[0].mean['PFCDR']:.4f} ± {rows[0].std['PFCDR']:.4f}*" \
      "**"
  assert "*" not in mae[cols.index("EMCDR")]


def test_mean_and_median_of_the_paired_differences_can_disagree():
  # a wins 9 users of 10 by 0.1 and loses one by 2.0: the median favours a, the mean b.
  err_b = np.ones(10)
  err_a = np.r_[np.full(9, 0.9), 3.0]
  t = significance.paired_test(err_a, err_b, "a", "b")
  assert t.median_diff == pytest.approx(-0.1) and t.share_a_better == pytest.approx(0.9)
  assert t.mean_diff == pytest.approx(0.11) and t.winner == "b"


def test_equal_methods_get_no_star(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.5, other_noise=0.5, same=True)
  for r in summary.summarize(dirs):
    assert r.test.p_ttest == 1.0 and r.test.p_wilcoxon == 1.0
    assert not r.test.significant and r.star is None
  md = tables.render_markdown(summary.summarize(dirs), title="t", command="c")
  table = [l for l in md.splitlines() if l.startswith("| synthetic")]
  assert not any("*" in c.replace("**", "") for l in table for c in l.split("|"))


def test_bold_best_underline_second(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.3, other_noise=0.6)
  rows = summary.summarize(dirs)
  md = tables.render_markdown(rows, title="t", command="python x.py --flag",
                              selected=summary.selected_settings(dirs))
  lines = md.splitlines()
  header = next(l for l in lines if l.startswith("| Task"))
  cols = [c.strip() for c in header.strip("|").split("|")]
  row = next(l for l in lines if l.startswith("| synthetic | 20% | RMSE"))
  cells = dict(zip(cols, (c.strip() for c in row.strip("|").split("|"))))
  r = rows[1]
  ranked = sorted(r.mean, key=r.mean.get)
  assert cells[ranked[0]].startswith("**") and cells[ranked[0]].endswith("**")
  assert cells[ranked[1]].startswith("<u>") and cells[ranked[1]].endswith("</u>")
  for m in ranked[2:]:
    assert "**" not in cells[m] and "<u>" not in cells[m]
  assert f"{r.mean['TGT']:.4f} ± {r.std['TGT']:.4f}" == cells["TGT"]
  # Floors are columns of the table; the command and the seed count are printed.
  assert "GlobalMean" in cols and "ItemMean" in cols
  assert "python x.py --flag" in md and "3 seed(s)" in md
  csv = tables.render_csv(rows).splitlines()
  assert csv[0].startswith("task,beta,base_model,metric,n_seeds,TGT")
  assert len(csv) == 3


def test_column_order_follows_the_paper():
  order = summary.column_order(["ItemMean", "PFCDR", "DP-EMCDR(eps=10)", "TGT",
                                "DP-EMCDR(eps=0.5)", "PTUPCDR", "LightGCN", "Foo"])
  assert order == ["TGT", "LightGCN", "PTUPCDR", "DP-EMCDR(eps=0.5)", "DP-EMCDR(eps=10)",
                   "PFCDR", "ItemMean", "Foo"]


def _fake_run(calls):
  def run(cfg, workdir):
    calls.append((cfg.split.beta, cfg.seed, tuple(cfg.baselines.names)))
    _, user, rating = _data(cfg.seed)
    preds = {m: rating + 0.1 for m in cells_lib.expected_methods(cfg)}
    chosen = {n: {"val_mae": 1.0, "grid": [{**p, "val_mae": 1.0}
                                            for p in selection.selection_grid(n)]}
              for n in cfg.baselines.names}
    _write_cell(workdir, cfg, user, rating, preds, chosen)
    return {}
  return run


def test_resume_skips_finished_cells(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(comparison.pipeline, "run_pfcdr", _fake_run(calls))
  cfg = _cfg(baselines__names=_with_extra("SourceUserMean"))
  cells = cells_lib.make_cells(("synthetic",), (0.2, 0.5), ("mf",), 2)
  dirs = comparison.run_cells(cfg, cells, tmp_path)
  assert len(calls) == 4 and len(dirs) == 4
  comparison.run_cells(cfg, cells, tmp_path)
  assert len(calls) == 4  # all finished
  os.unlink(dirs[1] / "results.json")  # interrupted cell: no results.json
  comparison.run_cells(cfg, cells, tmp_path)
  assert calls[4:] == [(0.2, 1, _with_extra("SourceUserMean"))]
  # A changed setting reruns; a new method reruns (pretraining comes from the cache).
  comparison.run_cells(_cfg(pretrain__epochs=3, baselines__names=_with_extra("SourceUserMean")),
                       cells[:1], tmp_path)
  assert len(calls) == 6
  wider = _cfg(baselines__names=_with_extra("SourceUserMean", "CMF"))
  comparison.run_cells(wider, cells, tmp_path)
  assert len(calls) == 10
  assert len(summary.summarize(dirs)) == 4  # 2 betas x 2 metrics
  # A registry grid that changed since a cell ran makes that cell stale.
  monkeypatch.setitem(registry.ENTRIES, "CMF", registry.ENTRIES["CMF"]._replace(
      grid=({"lr": 0.1},)))
  comparison.run_cells(wider, cells[:1], tmp_path)
  assert len(calls) == 11


def test_cell_from_before_a_new_config_field_still_counts_as_finished(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(comparison.pipeline, "run_pfcdr", _fake_run(calls))
  cfg = _cfg()
  cells = cells_lib.make_cells(("synthetic",), (0.2,), ("mf",), 1)
  (d,) = comparison.run_cells(cfg, cells, tmp_path)
  stored = json.loads((d / "config.json").read_text())
  del stored["topk"]["include_untrained"]   # a field the cell's code did not have yet
  stored["topk"]["method"] = "top_k"   # execution-only: an exact kernel, same neighbors
  stored["topk"]["chunk"] = 64
  stored["cache"]["dir"] = "/elsewhere"   # a path: not what the cell computed
  (d / "config.json").write_text(json.dumps(stored))
  comparison.run_cells(cfg, cells, tmp_path)
  assert len(calls) == 1
  # ...but a missing field whose request differs from the default reruns the cell.
  comparison.run_cells(_cfg(topk__include_untrained=True), cells, tmp_path)
  assert len(calls) == 2
  # So does a config.json that is not a config (an unknown field).
  stored = json.loads((d / "config.json").read_text())
  stored["bridge"]["momentum"] = 0.9
  (d / "config.json").write_text(json.dumps(stored))
  comparison.run_cells(_cfg(topk__include_untrained=True), cells, tmp_path)
  assert len(calls) == 3


def test_failed_rerun_leaves_the_old_outputs_as_they_were(tmp_path, monkeypatch):
  """A rerun works in <workdir>/.staging: failing (or killed) it changes nothing."""
  cfg = _cfg(data__scale=0.002, pretrain__epochs=1, pretrain__lrs=(0.01,), bridge__epochs=1,
             topk__k="5", cache__enabled=False)
  work = tmp_path / "cell"
  pipeline.run_pfcdr(cfg, work)
  before = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
  assert set(pipeline.OUTPUTS) <= set(before)
  assert cells_lib.is_finished(work, cfg)

  class Interrupt(Exception):
    pass

  def boom(*a, **k):
    raise Interrupt

  monkeypatch.setattr(pipeline.method_lib, "fit_predict", boom)   # fails after pretraining
  with pytest.raises(Interrupt):
    pipeline.run_pfcdr(config_lib.override(cfg, {"seed": 1}), work)
  after = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
  assert after == before
  assert not (work / ".staging").exists()
  assert cells_lib.is_finished(work, cfg)


def test_publish_removes_old_results_first(tmp_path):
  """A kill between the moves leaves no results.json, so the cell is rerun."""
  work, staging = tmp_path / "cell", tmp_path / "cell" / ".staging"
  staging.mkdir(parents=True)
  (work / "results.json").write_text("old")
  (work / "predictions-test.npz").write_bytes(b"old")
  (staging / "config.json").write_text("new")
  (staging / "results.json").write_text("new")
  pipeline._publish(staging, work)  # pylint: disable=protected-access
  assert (work / "results.json").read_text() == "new"
  assert not (work / "predictions-test.npz").exists(), "an output the new run lacks goes"
  assert not staging.exists()


def test_seed_stack_pretrains_each_groups_unfinished_seeds_first(tmp_path, monkeypatch):
  calls, stacks = [], []
  monkeypatch.setattr(comparison.pipeline, "run_pfcdr", _fake_run(calls))
  monkeypatch.setattr(comparison.pretraining, "pretrain_seeds",
                      lambda cfgs, dirs: stacks.append(
                          [(c.split.beta, c.seed, Path(d).name) for c, d in zip(cfgs, dirs)]))
  cfg = _cfg()
  cells = cells_lib.make_cells(("synthetic",), (0.2, 0.5), ("mf",), 3)
  comparison.run_cells(cfg, cells[:1], tmp_path)          # seed 0 of beta 0.2 finished
  comparison.run_cells(cfg, cells, tmp_path, seed_stack=True)
  assert stacks == [[(0.2, 1, "synthetic-b0.2-mf-s1"), (0.2, 2, "synthetic-b0.2-mf-s2")],
                    [(0.5, s, f"synthetic-b0.5-mf-s{s}") for s in range(3)]]
  assert len(calls) == 6   # every cell still runs (and loads the stacked parameters)
  comparison.run_cells(cfg, cells, tmp_path, seed_stack=True)
  assert len(stacks) == 2   # nothing left to run, nothing stacked


def test_use_seed_stack_modes():
  assert comparison.use_seed_stack("on") and not comparison.use_seed_stack("off")
  assert comparison.use_seed_stack("auto") == (jax.default_backend() != "cpu")
  with pytest.raises(ValueError, match="seed_stack"):
    comparison.use_seed_stack("yes")


def test_plot_writes_png(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.3, other_noise=0.6)
  rows = summary.summarize(dirs)
  png = plots.plot_base_models(rows, tmp_path / "f.png", methods=("EMCDR", "PFCDR"),
                               base_models=("mf",))
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table1_quick_end_to_end(tmp_path):
  """The CI smoke run: every method, 1 seed, 1 beta, tiny synthetic data."""
  out = tmp_path / "t1"
  cmd = [sys.executable, str(ROOT / "experiments" / "table1.py"), "--task=synthetic",
         "--quick", "--scale=0.003", f"--workdir={out}", f"--cache_dir={tmp_path / 'cache'}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  md = (out / "table1.md").read_text()
  header = next(l for l in md.splitlines() if l.startswith("| Task"))
  for m in ("TGT", "LightGCN", "CMF", "EMCDR", "SSCDR", "PTUPCDR", "DP-EMCDR(eps=0.5)",
            "DP-EMCDR(eps=10)", "PriCDR-S", "PFCDR", "GlobalMean", "ItemMean",
            "SourceUserMean"):
    assert f" {m} |" in header, m
  assert (out / "table1.csv").exists()
  assert "--quick" in md
  # The per-seed values in long format: one row per method x seed x metric.
  lines = (out / "table1_long.csv").read_text().splitlines()
  assert lines[0] == "task,beta,method,seed,metric,value"
  body = [l.split(",") for l in lines[1:]]
  methods = {r[2] for r in body}
  assert "PFCDR" in methods and "SourceUserMean" in methods
  assert len(body) == len(methods) * 1 * 2   # 1 seed, mae and rmse
  assert {(r[0], r[1], r[3]) for r in body} == {("synthetic", "0.2", "0")}
  assert body == sorted(body, key=lambda r: (r[2], r[4]))
  pfcdr_mae = next(float(r[5]) for r in body if r[2] == "PFCDR" and r[4] == "mae")
  (cell,) = (out / "cells").iterdir()
  assert pfcdr_mae == json.loads((cell / "results.json").read_text())["methods"]["PFCDR"][
      "mae"]
  # Rerun: the finished cell is skipped (no new cell run).
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0 and "0 to run" in proc.stderr + proc.stdout


def test_seed_test_equals_scipy_on_the_same_numbers():
  rng = np.random.default_rng(3)
  a = 0.73 + 0.01 * rng.normal(size=10)
  b = a + 0.004 + 0.006 * rng.normal(size=10)
  t = significance.seed_test(a, b, "PFCDR", "X")
  assert t.n_seeds == 10 and t.diffs == pytest.approx(tuple(a - b))
  np.testing.assert_allclose(t.p_ttest, stats.ttest_rel(a, b).pvalue, rtol=1e-12)
  np.testing.assert_allclose(t.t_stat, stats.ttest_rel(a, b).statistic, rtol=1e-12)
  np.testing.assert_allclose(t.p_wilcoxon, stats.wilcoxon(a, b).pvalue, rtol=1e-12)
  assert t.mean_diff == pytest.approx(float(np.mean(a - b)))
  assert t.n_a_better == int(np.sum(a < b))
  assert significance.seed_test(a, a).p_ttest == 1.0
  one = significance.seed_test(a[:1], b[:1])
  assert np.isnan(one.p_ttest) and not one.significant


def test_star_follows_the_per_seed_test_and_the_csv_keeps_its_columns(tmp_path):
  dirs = _cells(tmp_path, pfcdr_noise=0.2, other_noise=1.0)
  rows = summary.summarize(dirs)
  for r in rows:
    per_seed = {m: [json.loads((d / "results.json").read_text())["methods"][m][r.metric]
                    for d in dirs] for m in ("PFCDR", "EMCDR")}
    ref = stats.ttest_rel(per_seed["PFCDR"], per_seed["EMCDR"])
    assert r.seed_test.method_b == "EMCDR" and r.seed_test.n_seeds == 3
    np.testing.assert_allclose(r.seed_test.p_ttest, ref.pvalue, rtol=1e-9)
    assert r.star == ("PFCDR" if ref.pvalue < 0.05 and ref.statistic < 0 else None)
  # One seed: the pooled per-user test can be significant, the design gives no test.
  one = summary.summarize(dirs[:1])
  assert all(r.test.significant and r.star_pooled == "PFCDR" for r in one)
  assert all(r.star is None and np.isnan(r.seed_test.p_ttest) for r in one)
  csv = tables.render_csv(rows).splitlines()
  head = csv[0].split(",")
  old = ["best", "second", "vs", "mean_diff", "n_pairs", "p_ttest", "p_wilcoxon", "star"]
  i = head.index("best")
  assert head[i:i + len(old)] == old
  assert head[i + len(old):i + len(old) + 6] == [
      "seed_mean_diff", "seed_n", "seed_n_pfcdr_better", "seed_p_ttest", "seed_p_wilcoxon",
      "star_pooled"]
  assert all(len(line.split(",")) == len(head) for line in csv[1:])
  md = tables.render_markdown(rows, title="t", command="c")
  assert "paired over seeds (primary" in md and "## Secondary: pooled per-user" in md


def test_dnn_cell_from_before_the_tower_field_reruns_but_mf_does_not(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(comparison.pipeline, "run_pfcdr", _fake_run(calls))
  cfg = _cfg()
  cells = cells_lib.make_cells(("synthetic",), (0.2,), ("mf", "dnn"), 1)
  dirs = comparison.run_cells(cfg, cells, tmp_path)
  assert len(calls) == 2
  for d in dirs:   # what a cell written before PretrainConfig.dnn_tower existed holds
    stored = json.loads((d / "config.json").read_text())
    del stored["pretrain"]["dnn_tower"]
    (d / "config.json").write_text(json.dumps(stored))
  comparison.run_cells(cfg, cells, tmp_path)
  assert len(calls) == 3   # one rerun: the DNN cell's config.json has the field again
  assert "dnn_tower" in json.loads((dirs[1] / "config.json").read_text())["pretrain"]
  assert "dnn_tower" not in json.loads((dirs[0] / "config.json").read_text())["pretrain"]
  assert cells_lib.is_finished(dirs[0], cells_lib.cell_config(cfg, cells[0]))
  # The tower is part of a DNN cell's (and its cache keys') content, not of an MF cell's.
  mf, dnn = (cells_lib.cell_config(cfg, c) for c in cells)
  assert "dnn_tower" not in config_lib.content(mf)["pretrain"]
  assert config_lib.content(dnn)["pretrain"]["dnn_tower"] == "linear"
  mlp = config_lib.override(dnn, {"pretrain.dnn_tower": "mlp"})
  assert not cells_lib.is_finished(dirs[1], mlp)


PLANNED = ROOT / "experiments" / "configs" / "planned_contrasts.json"


def test_planned_contrasts_are_per_seed_tests_of_the_declared_pairs(tmp_path):
  """The pairs of the committed file are tested wherever both ran, in its order, whatever
  ranks best; the numbers equal scipy on the per-seed metrics; Holm p beside the raw."""
  planned = contrasts.load_contrasts(PLANNED)
  dirs = []
  for seed in range(4):
    rng, user, rating = _data(seed)
    preds = {"PFCDR": rating + 0.5 * rng.normal(size=rating.size),
             "PFCDR+": rating + 0.3 * rng.normal(size=rating.size),
             "PFCDR+(eps=1)": rating + 0.35 * rng.normal(size=rating.size),
             "PFCDR+(eps=5)": rating + 0.32 * rng.normal(size=rating.size),
             "PFCDR-Bilinear": rating + 0.45 * rng.normal(size=rating.size),
             "FedCDR": rating + 0.6 * rng.normal(size=rating.size),
             "PTUPCDR": rating + 0.4 * rng.normal(size=rating.size),
             "BiasFloor": np.full_like(rating, 3.0),
             "EMCDR": rating + 0.1 * rng.normal(size=rating.size)}  # ranks best, not planned
    d = tmp_path / f"s{seed}"
    _write_cell(d, _cfg(split__beta=0.2, seed=seed), user, rating, preds)
    dirs.append(d)
  rows = summary.summarize(dirs, contrasts=planned.pairs)
  per_seed = lambda m, metric: [json.loads((d / "results.json").read_text())["methods"][m][
      metric] for d in dirs]
  for r in rows:
    assert [(t.method_a, t.method_b) for t in r.contrasts] == list(planned.pairs)
    for t in r.contrasts:
      a, b = per_seed(t.method_a, r.metric), per_seed(t.method_b, r.metric)
      np.testing.assert_allclose(t.p_ttest, stats.ttest_rel(a, b).pvalue, rtol=1e-9)
      assert t.n_seeds == 4 and t.n_a_better == int(np.sum(np.array(a) < np.array(b)))
  # Holm over the whole table: 14 pairs x 2 metrics, never below the raw p-value.
  adjusted = contrasts.adjust(rows)
  assert len(adjusted) == 2 * len(planned.pairs) == 28
  np.testing.assert_allclose([c.p_ttest_holm for c in adjusted],
                             significance.holm([c.test.p_ttest for c in adjusted]))
  assert all(c.p_ttest_holm >= c.test.p_ttest and c.p_wilcoxon_holm >= c.test.p_wilcoxon
             for c in adjusted)
  csv = tables.render_csv(rows).splitlines()
  head = csv[0].split(",")
  assert "PFCDR+ vs PTUPCDR p_ttest" in head and "PFCDR vs BiasFloor mean_diff" in head
  assert "FedCDR vs PFCDR-Bilinear p_ttest_holm" in head
  i = head.index("PFCDR+ vs PTUPCDR p_ttest")
  assert head[i:i + 4] == ["PFCDR+ vs PTUPCDR p_ttest", "PFCDR+ vs PTUPCDR p_ttest_holm",
                           "PFCDR+ vs PTUPCDR p_wilcoxon", "PFCDR+ vs PTUPCDR p_wilcoxon_holm"]
  assert all(len(line.split(",")) == len(head) for line in csv[1:])
  i = head.index("PFCDR+ vs BiasFloor n_a_better")
  assert csv[1].split(",")[i] == "4"   # the constant floor loses every seed
  j = head.index("PFCDR+ vs BiasFloor p_ttest_holm")
  assert float(csv[1].split(",")[j]) == pytest.approx(adjusted[1].p_ttest_holm, rel=1e-5)
  md = tables.render_markdown(rows, title="t", command="c", planned=planned)
  assert "## Planned contrasts, paired over seeds" in md
  assert f"({planned.declared})" in md and "family of the 28 contrast tests" in md
  assert "| PFCDR+ | BiasFloor |" in md and "| PFCDR+(eps=1) | PTUPCDR |" in md
  assert "| FedCDR | PFCDR-Bilinear |" in md and "t-test Holm p" in md
  # Without the methods, no section and no columns.
  plain = summary.summarize(_cells(tmp_path / "plain", pfcdr_noise=0.3, other_noise=1.0),
                            contrasts=planned.pairs)
  assert all(r.contrasts == () for r in plain)
  assert "Planned contrasts" not in tables.render_markdown(plain, title="t", command="c",
                                                           planned=planned)


def test_contrasts_come_from_the_file_given(tmp_path):
  """Another file, other pairs: nothing is tested that the file does not declare."""
  path = tmp_path / "c.json"
  path.write_text(json.dumps({"declared": "today, before the runs",
                              "contrasts": [["EMCDR", "TGT"]]}))
  planned = contrasts.load_contrasts(path, shown_as="my/contrasts.json")
  rows = summary.summarize(_cells(tmp_path / "c", pfcdr_noise=0.3, other_noise=1.0),
                           contrasts=planned.pairs)
  assert all([(t.method_a, t.method_b) for t in r.contrasts] == [("EMCDR", "TGT")]
             for r in rows)
  md = tables.render_markdown(rows, title="t", command="c", planned=planned)
  assert "Declared in `my/contrasts.json` (today, before the runs): EMCDR vs TGT" in md
  assert "family of the 2 contrast tests" in md
  assert "PFCDR+ vs" not in md and "PFCDR+ vs" not in tables.render_csv(rows)
  assert all(r.contrasts == () for r in summary.summarize(_cells(
      tmp_path / "none", pfcdr_noise=0.3, other_noise=1.0)))   # no pairs given: none


def _gate(ok, floor_name="GlobalMean"):
  return {"ok": ok, "value": 0.9, "floor": 0.8, "floor_name": floor_name}


def _sanity(failed=(), stage_failed=()):
  """A sanity record: every stage and method passes but those named (method -> floor)."""
  failed = dict(failed)
  out = {s: _gate(s not in stage_failed, "mean") for s in sanity.PRETRAIN_STAGES}
  for m in ("PFCDR", "TGT", "EMCDR"):
    out[m] = _gate(m not in failed, failed.get(m, "GlobalMean"))
  return out


def _sanity_cells(tmp_path, sanities):
  dirs = []
  for seed, sanity in enumerate(sanities):
    rng, user, rating = _data(seed)
    preds = {"PFCDR": rating + 0.2 * rng.normal(size=rating.size),
             "TGT": np.zeros_like(rating),
             "EMCDR": rating + 1.0 * rng.normal(size=rating.size),
             "GlobalMean": np.full_like(rating, 3.0),
             "ItemMean": np.full_like(rating, 3.1)}
    d = tmp_path / f"s{seed}"
    _write_cell(d, _cfg(split__beta=0.2, seed=seed), user, rating, preds, sanity=sanity)
    dirs.append(d)
  return dirs


def _table_cells(md, metric="MAE"):
  lines = md.splitlines()
  cols = [c.strip() for c in next(l for l in lines if l.startswith("| Task")).split("|")]
  row = [c.strip() for c in next(l for l in lines if f"| 20% | {metric}" in l).split("|")]
  return dict(zip(cols, row))


def test_sanity_failures_of_one_cell():
  methods = {m: {"mae": 1.0} for m in ("PFCDR", "TGT", "GlobalMean", "ItemMean",
                                       "BiasFloor")}
  assert sanity.sanity_failures({"methods": methods}) == {}   # before the gates
  ok = {"pretrain_source": _gate(True), "PFCDR": _gate(True), "GlobalMean": _gate(False)}
  assert sanity.sanity_failures({"methods": methods, "sanity": ok}) == {}
  bad = {"pretrain_source": _gate(False, "mean"), "PFCDR": _gate(False, "ItemMean"),
         "TGT": _gate(True), "GlobalMean": _gate(False)}
  assert sanity.sanity_failures({"methods": methods, "sanity": bad}) == {
      "PFCDR": ["pretraining of the source model failed its gate",
                "validation MAE not clearly below ItemMean"],
      "TGT": ["pretraining of the source model failed its gate"]}


def test_failed_sanity_gates_are_marked_in_the_table_and_csv(tmp_path):
  dirs = _sanity_cells(tmp_path, [
      _sanity(),
      {**_sanity(failed=[("EMCDR", "ItemMean")]), "GlobalMean": _gate(False)},
      _sanity(failed=[("PFCDR", "GlobalMean")], stage_failed=["pretrain_target"])])
  rows = summary.summarize(dirs)
  assert rows[0].sanity == summary.SanitySummary(
      checked=3, failed=2, marked={"EMCDR": 2, "PFCDR": 1, "TGT": 1},
      reasons={"EMCDR": {"validation MAE not clearly below ItemMean": 1,
                         "pretraining of the target model failed its gate": 1},
               "PFCDR": {"pretraining of the target model failed its gate": 1,
                         "validation MAE not clearly below GlobalMean": 1},
               "TGT": {"pretraining of the target model failed its gate": 1}})
  md = tables.render_markdown(rows, title="t", command="c")
  for metric, r in zip(("MAE", "RMSE"), rows):
    cells = _table_cells(md, metric)
    fmt = lambda m: f"{r.mean[m]:.4f} ± {r.std[m]:.4f}"
    assert r.best == "PFCDR" and r.star == "PFCDR"
    assert cells["PFCDR"] == f"**{fmt('PFCDR')}*⚠**"    # still bold, still marked
    assert cells["TGT"] == f"{fmt('TGT')}⚠"
    assert cells["EMCDR"] in (f"{fmt('EMCDR')}⚠", f"<u>{fmt('EMCDR')}⚠</u>")
    assert "⚠" not in cells["GlobalMean"] + cells["ItemMean"]   # floors: never
  lines = md.splitlines()
  i = lines.index("⚠ failed its sanity gate (validation MAE not clearly below the floor named, "
                  "or its pretraining failed) in n of N seeds:")
  assert lines[i + 2:i + 6] == [
      "- TGT (synthetic, β=20%, mf): 1 of 3 seeds (pretraining of the target model failed "
      "its gate in 1 seed)",
      "- EMCDR (synthetic, β=20%, mf): 2 of 3 seeds (validation MAE not clearly below ItemMean in "
      "1 seed; pretraining of the target model failed its gate in 1 seed)",
      "- PFCDR (synthetic, β=20%, mf): 1 of 3 seeds (pretraining of the target model "
      "failed its gate in 1 seed; validation MAE not clearly below GlobalMean in 1 seed)",
      ""]
  assert i < lines.index("## Significance: PFCDR vs the best other method, paired over "
                         "seeds (primary; the `*`)")
  csv = tables.render_csv(rows).splitlines()
  head = csv[0].split(",")
  assert head[head.index("star_pooled") + 1:] == [
      "sanity_failed", "sanity_checked", "TGT sanity_failed", "EMCDR sanity_failed",
      "PFCDR sanity_failed"]
  for line in csv[1:]:
    vals = line.split(",")
    assert len(vals) == len(head) and vals[-5:] == ["2", "3", "1", "2", "1"]


def test_cells_without_sanity_records_are_not_marked(tmp_path):
  dirs = _sanity_cells(tmp_path, [None, None, None])
  rows = summary.summarize(dirs)
  assert all(r.sanity == summary.SanitySummary() for r in rows)
  md = tables.render_markdown(rows, title="t", command="c")
  assert "⚠" not in md
  csv = tables.render_csv(rows).splitlines()
  head = csv[0].split(",")
  for line in csv[1:]:
    row = dict(zip(head, line.split(",")))
    assert row["sanity_failed"] == "0" and row["sanity_checked"] == "0"
    assert row["PFCDR sanity_failed"] == "0" and "GlobalMean sanity_failed" not in row
  # Old and new cells together: only the seeds with a record count as checked.
  mixed = summary.summarize(_sanity_cells(tmp_path / "mixed", [
      None, _sanity(stage_failed=["pretrain_source"]), _sanity()]))
  assert mixed[0].sanity.checked == 1 + 1 and mixed[0].sanity.failed == 1
  assert mixed[0].sanity.marked == {"TGT": 1, "EMCDR": 1, "PFCDR": 1}
  md = tables.render_markdown(mixed, title="t", command="c")
  assert "- PFCDR (synthetic, β=20%, mf): 1 of 3 seeds (pretraining of the source model " \
      "failed its gate in 1 seed)" in md
