"""End-to-end tests of the PFCDR pipeline and the experiment script."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import pipeline
from pfcdr_jax.harness import pretraining
from pfcdr_jax.models import scorers

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("PFCDR", "TGT", "EMCDR", "GlobalMean", "ItemMean")


def _cfg(**updates):
  """A config from dotted overrides (``pretrain__epochs=3`` for "pretrain.epochs")."""
  return config_lib.override(config_lib.PFCDRConfig(),
                             {k.replace("__", "."): v for k, v in updates.items()})


def _small_cfg(**kw):
  base = dict(data__task="synthetic", data__like="music2movie", data__scale=0.004,
              split__beta=0.2, seed=0, pretrain__epochs=8, pretrain__batch_size=256,
              pretrain__lrs=(0.01, 0.02), inversion__steps=60, bridge__epochs=50)
  base.update(kw)
  return _cfg(**base)


def _stages(workdir):
  return [json.loads(l) for l in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]


def test_pipeline_synthetic_end_to_end_and_cache(tmp_path):
  cfg = _small_cfg(cache__dir=str(tmp_path / "cache"))
  res = pipeline.run_pfcdr(cfg, tmp_path / "run1")
  for f in ("config.json", "metrics.jsonl", "results.json", "split_manifest.json"):
    assert (tmp_path / "run1" / f).exists(), f
  on_disk = json.loads((tmp_path / "run1" / "results.json").read_text())
  assert on_disk["methods"] == res["methods"]
  assert res["synthetic"] is True
  for key in ("task", "beta", "seed", "dataset", "methods", "timings_s"):
    assert key in res
  for key in ("source", "target", "overlap", "test_users", "test_ratings"):
    assert key in res["dataset"]
  assert set(METHODS) <= set(res["methods"])
  for name, m in res["methods"].items():
    assert np.isfinite(m["mae"]) and np.isfinite(m["rmse"]) and m["rmse"] >= m["mae"], name
  # Every learned stage is checked against its floor (pfcdr_jax/harness/sanity.py), and the
  # pretrained models beat the mean predictor on their held-out ratings.
  assert set(res["sanity"]) == {"pretrain_source", "pretrain_target", *res["methods"]}
  assert res["sanity"]["pretrain_source"]["ok"] and res["sanity"]["pretrain_target"]["ok"]
  assert res["data_profile"]["overlap_users"] == res["dataset"]["overlap"]
  assert res["selected"]["topk"] >= 1

  # A rerun with the same config hits every cache and reproduces the numbers.
  res2 = pipeline.run_pfcdr(cfg, tmp_path / "run2")
  cached = {s["stage"] for s in _stages(tmp_path / "run2") if s.get("cached")}
  assert {"pretrain_source", "pretrain_target", "inversion_source",
          "inversion_target"} <= cached
  assert res2["methods"] == res["methods"]


def test_pipeline_same_seed_same_results_without_cache(tmp_path):
  cfg = _small_cfg(cache__enabled=False, topk__k="0.1")
  a = pipeline.run_pfcdr(cfg, tmp_path / "a")
  b = pipeline.run_pfcdr(cfg, tmp_path / "b")
  assert a["methods"] == b["methods"]
  assert not (tmp_path / "a" / "cache").exists()


def test_concurrent_domains_change_no_number(tmp_path, monkeypatch):
  # The two domains pretrain, and then invert, at the same time on one device
  # (stages.domains_concurrently) or one after the other: the same results, the stages
  # recorded in the same order, and the total is the run's wall span (less than the
  # stages' sum when they overlap).
  from pfcdr_jax.harness import stages
  cfg = _small_cfg(cache__enabled=False, topk__k="0.1")
  runs = {}
  for concurrent in (True, False):
    monkeypatch.setattr(stages, "CONCURRENT_DOMAINS", concurrent)
    assert stages.domains_concurrently() is concurrent
    runs[concurrent] = pipeline.run_pfcdr(cfg, tmp_path / str(concurrent))
  assert runs[True]["methods"] == runs[False]["methods"]
  assert runs[True]["selected"] == runs[False]["selected"]
  for res in runs.values():
    t = res["timings_s"]
    assert list(t)[:5] == ["data", "pretrain_source", "pretrain_target", "inversion_source",
                           "inversion_target"]
    assert 0 < t["total"] <= sum(v for k, v in t.items() if k != "total") + 1.0
  seq = runs[False]["timings_s"]
  assert seq["total"] >= sum(v for k, v in seq.items() if k != "total") - 1e-2


def test_in_threads_returns_in_order_and_raises_the_callers_errors():
  from pfcdr_jax.harness import stages
  assert stages.in_threads({"a": lambda: 1, "b": lambda: 2}) == {"a": 1, "b": 2}
  finished = []

  def slow_ok():
    import time
    time.sleep(0.2)
    finished.append("b")
    return 2

  def boom():
    raise ValueError("a failed")

  with pytest.raises(ValueError, match="a failed"):
    stages.in_threads({"a": boom, "b": slow_ok})
  assert finished == ["b"]          # the other call finished before the error surfaced

  def boom_b():
    raise RuntimeError("b failed")

  with pytest.raises(RuntimeError, match="b failed"):
    stages.in_threads({"a": lambda: 1, "b": boom_b})


def _write_custom_tsv(tmp_path, target_counts=None):
  """60 users x 30 items per domain, a planted shared user factor; each user rates 8
  source items and ``target_counts[u]`` (default 8) target items."""
  rng = np.random.default_rng(0)
  n_users, n_items, d = 60, 30, 3
  U = rng.normal(size=(n_users, d))
  rows = {"src": [], "tgt": []}
  Vs, Vt = rng.normal(size=(n_items, d)), rng.normal(size=(n_items, d))
  counts = {"src": [8] * n_users, "tgt": target_counts or [8] * n_users}
  for u in range(n_users):
    for dom, V in (("src", Vs), ("tgt", Vt)):
      for i in rng.choice(n_items, size=counts[dom][u], replace=False):
        r = float(np.clip(np.round(3 + U[u] @ V[i]), 1, 5))
        rows[dom].append(f"u{u}\t{dom}{i}\t{r}")
  for dom in rows:
    (tmp_path / f"{dom}.tsv").write_text("user_id\titem_id\trating\n" + "\n".join(rows[dom]) + "\n")
  return n_users


def _custom_cfg(tmp_path, **kw):
  base = dict(data__task="custom", data__source_file=str(tmp_path / "src.tsv"),
              data__target_file=str(tmp_path / "tgt.tsv"), pretrain__epochs=5,
              pretrain__batch_size=128, pretrain__lrs=(0.02,), inversion__steps=30,
              bridge__epochs=20, topk__k="5", cache__enabled=False)
  base.update(kw)
  return _cfg(**base)


def test_pipeline_custom_task_tsv(tmp_path):
  n_users = _write_custom_tsv(tmp_path)
  res = pipeline.run_pfcdr(_custom_cfg(tmp_path), tmp_path / "run")
  assert res["dataset"]["overlap"] == n_users
  assert res["dataset"]["test_users"] == round(0.2 * n_users)
  assert res["selected"]["topk"] == 5
  assert set(METHODS) <= set(res["methods"])


def _pretrain_leaves(cache_dir, name):
  (path,) = Path(cache_dir).glob(f"pretrain-{name}-*.npz")
  with np.load(path) as z:
    return [z[k] for k in sorted(z.files) if k.startswith("leaf")]


@pytest.mark.parametrize("equal_target", [True, False])
def test_seed_stacked_pretraining_feeds_each_run_its_own_params(tmp_path, equal_target):
  """pretrain_seeds trains seeds together where shapes allow; each run then loads the
  parameters its own sequential pretraining would have produced."""
  counts = None if equal_target else list(np.random.default_rng(1).integers(5, 12, 60))
  _write_custom_tsv(tmp_path, counts)
  seeds = (0, 1)
  cfgs = {mode: [_custom_cfg(tmp_path, seed=s, cache__enabled=True,
                             cache__dir=str(tmp_path / f"cache-{mode}-s{s}")) for s in seeds]
          for mode in ("stacked", "alone")}
  work = lambda mode, s: tmp_path / f"{mode}-s{s}"
  stacked = pretraining.pretrain_seeds(cfgs["stacked"], [work("stacked", s) for s in seeds])
  # Every seed has the same source domain; the target domain loses each seed's own
  # cold users, which only keeps its shape when every user rated as many items.
  assert stacked["source"] == [list(seeds)]
  assert stacked["target"] == ([list(seeds)] if equal_target else [])
  # Nothing left to train: a second call stacks nothing.
  assert pretraining.pretrain_seeds(cfgs["stacked"], [work("stacked", s) for s in seeds]) == {
      "source": [], "target": []}
  # (With unequal targets, one seed's full comparison is enough: the target trains alone.)
  for i, s in enumerate(seeds if equal_target else seeds[:1]):
    res = {mode: pipeline.run_pfcdr(cfgs[mode][i], work(mode, s)) for mode in cfgs}
    stages = {r["stage"]: r for r in _stages(work("stacked", s))}
    assert stages["pretrain_source"].get("cached") and stages["pretrain_source"]["seed_stack"] == list(seeds)
    assert stages["pretrain_target"].get("cached") is (True if equal_target else None)
    for name in ("source", "target"):
      for a, b in zip(_pretrain_leaves(tmp_path / f"cache-stacked-s{s}", name),
                      _pretrain_leaves(tmp_path / f"cache-alone-s{s}", name)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for m in METHODS:
      assert res["stacked"]["methods"][m]["mae"] == pytest.approx(
          res["alone"]["methods"][m]["mae"], abs=1e-4), (s, m)


def test_experiment_script_runs_and_prints_table(tmp_path):
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=synthetic",
         "--scale=0.003", "--epochs=4", "--lrs=0.02", "--inversion_steps=30",
         f"--workdir={tmp_path / 'w'}", "--topk=0.05", "--method=pfcdr_plus"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  for name in METHODS + ("PFCDR+",):
    assert name in out.stdout
  assert "SYNTHETIC" in out.stdout
  res = json.loads((tmp_path / "w" / "results.json").read_text())
  assert res["task"] == "synthetic"
  assert "PFCDR+" in res["methods"]   # --method=pfcdr_plus adds it next to the others


def test_experiment_script_rejects_bad_flag(tmp_path):
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=nope",
         f"--workdir={tmp_path}"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert out.returncode != 0
  assert "task" in out.stderr


@pytest.mark.realdata
def test_comedy2drama_real_data_short_run(tmp_path):
  """MovieLens-1M genre domains, obtained by the project's own download code."""
  cfg = _cfg(data__task="comedy2drama", pretrain__epochs=3, pretrain__lrs=(0.01,),
             inversion__steps=20, bridge__epochs=20, topk__k="0.1", cache__enabled=False)
  res = pipeline.run_pfcdr(cfg, tmp_path / "run")
  ds = res["dataset"]
  assert 5000 < ds["overlap"] < 7000
  assert res["synthetic"] is False
  m = res["methods"]
  assert m["PFCDR"]["mae"] < min(m["GlobalMean"]["mae"], m["ItemMean"]["mae"])
  assert res["sanity"]["PFCDR"]["ok"]


def test_emb_dim_reaches_pretraining():
  """The pretrained tables have pretrain.emb_dim columns (the cache check assumes it)."""
  cfg = _cfg(pretrain__emb_dim=6)
  assert config_lib.train_config(cfg).dim == 6
  sc = scorers.get_scorer("mf")
  trained = sc.init(jax.random.PRNGKey(0), 5, 4, config_lib.train_config(cfg).dim)
  assert {x.shape[-1] for x in jax.tree_util.tree_leaves(trained) if x.ndim == 2} == {6}


def test_cached_params_of_the_wrong_shape_are_retrained(tmp_path):
  rng = np.random.default_rng(0)
  a = types.SimpleNamespace(  # a DomainData stand-in: 300 ratings, 20 users x 15 items
      user=rng.integers(0, 20, 300).astype(np.int32),
      item=rng.integers(0, 15, 300).astype(np.int32),
      rating=rng.integers(1, 6, 300).astype(np.float32), n_users=20, n_items=15)
  cfg = _cfg(pretrain__epochs=1, pretrain__lrs=(0.01,), pretrain__batch_size=64,
             pretrain__emb_dim=6)
  cache = pipeline.cache_lib.StageCache(tmp_path)
  sc, key = scorers.get_scorer("mf"), jax.random.PRNGKey(0)
  pretraining.pretrain(sc, a, config_lib.override(cfg, {"pretrain.emb_dim": 10}), key, cache,
                       "k", "source", {})
  # The entry under this key has 10 columns (e.g. written before emb_dim reached the
  # trainer); a run that needs 6 must retrain, not load it.
  record = {}
  params = pretraining.pretrain(sc, a, cfg, key, cache, "k", "source", record)
  assert not record.get("cached")
  assert {x.shape[-1] for x in jax.tree_util.tree_leaves(params) if x.ndim == 2} == {6}
  record = {}
  pretraining.pretrain(sc, a, cfg, key, cache, "k", "source", record)
  assert record.get("cached")


def test_baseline_predictions_are_cached_per_setting(tmp_path, monkeypatch):
  from pfcdr_jax.baselines import registry
  _write_custom_tsv(tmp_path)
  extra = ("SourceUserMean", "DP-EMCDR(eps=1)")
  cfg = _custom_cfg(tmp_path, pretrain__epochs=1, cache__enabled=True,
                    cache__dir=str(tmp_path / "cache"),
                    baselines__names=config_lib.MAIN_BASELINES + extra)
  a = pipeline.run_pfcdr(cfg, tmp_path / "a")
  # A PFCDR-only change (the bridge) reuses both baselines' predictions.
  b = pipeline.run_pfcdr(config_lib.override(cfg, {"bridge.epochs": 5}), tmp_path / "b")
  stages = {r["stage"]: r for r in _stages(tmp_path / "b")}
  assert stages["baseline_SourceUserMean"].get("cached")
  assert stages["baseline_DP-EMCDR(eps=1)"].get("cached")
  # ...except EMCDR, whose map trains with the bridge's settings.
  assert not stages["baseline_EMCDR"].get("cached")
  assert stages["baseline_TGT"].get("cached")
  for name in extra:
    assert b["methods"][name] == a["methods"][name]
    assert b["selected"]["baselines"][name] == a["selected"]["baselines"][name]
  # A changed selection grid is a different stage: recomputed.
  monkeypatch.setitem(registry.ENTRIES, "SourceUserMean", registry.ENTRIES[
      "SourceUserMean"]._replace(grid=({"shrinkage": 1.0},)))
  pipeline.run_pfcdr(cfg, tmp_path / "c")
  stages = {r["stage"]: r for r in _stages(tmp_path / "c")}
  assert not stages["baseline_SourceUserMean"].get("cached")
  assert stages["baseline_DP-EMCDR(eps=1)"].get("cached")
  # Another seed is another split and other models: recomputed.
  pipeline.run_pfcdr(config_lib.override(cfg, {"seed": 1}), tmp_path / "d")
  stages = {r["stage"]: r for r in _stages(tmp_path / "d")}
  assert not any(stages[f"baseline_{n}"].get("cached") for n in cfg.baselines.names)


@pytest.mark.parametrize("flag, says", [("--lrs=abc", "--lrs=abc"), ("--topk=abc", "--topk=abc"),
                                        ("--topk=-3", "--topk=-3")])
def test_bad_numeric_flags_fail_before_any_work(tmp_path, flag, says):
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=synthetic", flag,
         f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith(f"error: {says}")
  assert "Traceback" not in out.stderr
  assert not (tmp_path / "w").exists()   # nothing written: the config failed first
