"""Data of the shapes users bring: the generator's knobs and templates, thinning of a task."""

import hashlib
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.harness import run_inputs
from pfcdr_jax.data import DataError, load_task, make_synthetic_cdr
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.data import synthetic, tasks
from pfcdr_jax.data.interactions import make_frame

ROOT = Path(__file__).resolve().parents[2]


def _digest(df):
  h = hashlib.sha256("\n".join(df["user"].astype(str) + " " + df["item"].astype(str)).encode())
  h.update(df["rating"].to_numpy().tobytes())
  return h.hexdigest()[:16]


# Digests of the frames of the generator before the knobs existed (no planted bias:
# the Table 2 templates' bias_std was 0 until 2026-12-05).
@pytest.mark.parametrize("like, seed, scale, digests", [
    ("music2movie", 0, 0.002, ("612a5e1829cc46c6", "4adcd0cd62d56990")),
    ("book2music", 5, 0.001, ("ebb9cb940756e3ad", "4c6473743344f7c4")),
    ("music2movie", 1, 1e-6, ("c862bdfa82d6cfad", "9d67a814edf9aff1")),
])
def test_default_knobs_give_the_frames_of_before(like, seed, scale, digests):
  src, tgt, info = make_synthetic_cdr(seed, like=like, scale=scale, bias_std=0.0)
  assert (_digest(src), _digest(tgt)) == digests
  assert info["mean_rating"] == 3.6 and info["signal"] == 1.0 and info["bias_std"] == 0.0
  assert info["tail"] == 1.0 and info["density"] == 1.0
  # The default plants biases (same users and items, other ratings).
  d_src, d_tgt, d_info = make_synthetic_cdr(seed, like=like, scale=scale)
  assert d_info["bias_std"] == 0.5
  pd.testing.assert_frame_equal(d_src[["user", "item"]], src[["user", "item"]])


def test_rating_knobs_keep_users_and_items_and_are_recorded():
  base = make_synthetic_cdr(0, scale=0.003)
  other = make_synthetic_cdr(0, scale=0.003, signal=2.0, bias_std=0.5, mean_rating=3.0)
  for a, b in zip(base[:2], other[:2]):
    pd.testing.assert_frame_equal(a[["user", "item"]], b[["user", "item"]])
    assert not a["rating"].equals(b["rating"])
  assert {k: other[2][k] for k in ("signal", "bias_std", "mean_rating")} == {
      "signal": 2.0, "bias_std": 0.5, "mean_rating": 3.0}


def _split(df, seed=0, test_fraction=0.2):
  test = np.random.default_rng(seed).random(len(df)) < test_fraction
  return df[~test], df[test]


def _item_mean_mae(train, test):
  means = train.groupby("item")["rating"].mean()
  pred = test["item"].map(means).fillna(train["rating"].mean()).to_numpy()
  return float(np.abs(pred - test["rating"].to_numpy()).mean())


@pytest.mark.parametrize("like, scale, knobs", [
    ("music2movie", 0.01, {}),
    ("sparse", 1.0, {"bias_std": 0.5}),
    ("longtail", 1.0, {"signal": 0.7, "bias_std": 0.3}),
])
def test_oracle_of_the_planted_model_beats_item_means(like, scale, knobs):
  src, tgt, _, truth = make_synthetic_cdr(0, like=like, scale=scale, return_truth=True,
                                          **knobs)
  assert len(make_synthetic_cdr(0, like=like, scale=scale, **knobs)) == 3
  train, test = _split(tgt)
  oracle = synthetic.planted_ratings(truth, "target", test["user"], test["item"])
  oracle_mae = float(np.abs(oracle - test["rating"].to_numpy()).mean())
  assert oracle_mae < 0.7 * _item_mean_mae(train, test), (oracle_mae, _item_mean_mae(train, test))
  # The user part is shared: the oracle predicts the source domain just as well.
  s_train, s_test = _split(src)
  s_oracle = synthetic.planted_ratings(truth, "source", s_test["user"], s_test["item"])
  assert np.abs(s_oracle - s_test["rating"].to_numpy()).mean() < 0.7 * _item_mean_mae(
      s_train, s_test)


def _shape(df):
  per_item = df["item"].value_counts()
  return {"ratings": len(df), "users": df["user"].nunique(), "items": df["item"].nunique(),
          "per_item": len(df) / df["item"].nunique(), "mean": float(df["rating"].mean()),
          "single": float(np.mean(per_item == 1)), "at_most_3": float(np.mean(per_item <= 3)),
          "top_1pct": per_item.to_numpy()[:max(1, len(per_item) // 100)].sum() / len(df)}


def _close(value, want, rel=0.1):
  return abs(value - want) <= rel * want


def test_sparse_template_has_the_reported_shape():
  src, tgt, info = make_synthetic_cdr(0, like="sparse", scale=1.0)
  s, t = _shape(src), _shape(tgt)
  for got, want in ((t, {"ratings": 22_000, "users": 3_300, "items": 12_600}),
                    (s, {"ratings": 40_000, "users": 4_000, "items": 10_000})):
    assert all(_close(got[k], v) for k, v in want.items()), got
  assert _close(len(set(src["user"]) & set(tgt["user"])), 2_600)
  assert 1.6 <= t["per_item"] <= 1.9 and t["single"] > 0.5
  assert abs(t["mean"] - 4.4) < 0.1 and abs(s["mean"] - 4.4) < 0.1
  # A random rating split leaves about half of the test ratings on items unseen in training.
  train, test = _split(tgt)
  assert 0.35 < (~test["item"].isin(set(train["item"]))).mean() < 0.6
  assert info["task"] == "synthetic-sparse" and info["mean_rating"] == 4.65


def test_longtail_template_has_a_stronger_item_tail():
  src, tgt, _ = make_synthetic_cdr(0, like="longtail", scale=1.0)
  s, t = _shape(src), _shape(tgt)
  assert _close(s["ratings"], 60_000) and _close(t["ratings"], 30_000)
  assert _close(s["users"], 5_000) and _close(t["users"], 5_000)
  assert _close(len(set(src["user"]) & set(tgt["user"])), 3_000)
  assert abs(t["mean"] - 3.9) < 0.1
  table2 = _shape(make_synthetic_cdr(0, like="music2movie", scale=0.02)[1])
  for got in (s, t):
    assert got["at_most_3"] > 0.75 and got["top_1pct"] > 0.3 > table2["top_1pct"]


def test_tail_and_density_knobs():
  flat = _shape(make_synthetic_cdr(0, like="longtail", scale=0.3, tail=0.0)[1])
  steep = _shape(make_synthetic_cdr(0, like="longtail", scale=0.3)[1])
  assert flat["top_1pct"] < 0.1 < steep["top_1pct"]
  half = make_synthetic_cdr(0, like="sparse", scale=1.0, density=1.8)
  assert len(half[1]) == round(22_000 * 1.8) and half[1]["item"].nunique() == 12_600
  assert half[2]["counts"]["target"]["ratings"] == len(half[1])
  # Templates at tiny scales still give valid data (the floors of synthetic_sizes).
  src, tgt, info = make_synthetic_cdr(0, like="sparse", scale=1e-4)
  assert info["counts"]["n_overlap"] == 10 and len(tgt) >= 2 * tgt["user"].nunique()


@pytest.mark.parametrize("knob, value, says", [
    ("signal", -1.0, "signal"), ("bias_std", -0.1, "bias_std"), ("tail", -1.0, "tail"),
    ("density", 0.0, "density"), ("mean_rating", float("nan"), "mean_rating"),
    ("like", "nope", "template"),
])
def test_bad_knobs_are_value_errors(knob, value, says):
  with pytest.raises(ValueError, match=says):
    make_synthetic_cdr(0, scale=0.002, **{knob: value})


# --- thinning ----------------------------------------------------------------------------

def test_thin_keeps_a_seeded_fraction_and_records_it(tmp_path):
  full = load_task("synthetic", data_dir=tmp_path, like="sparse", scale=1.0)
  src, tgt, info = load_task("synthetic", data_dir=tmp_path, like="sparse", scale=1.0,
                             thin=0.25)
  assert len(src) == round(0.25 * len(full[0])) and len(tgt) == round(0.25 * len(full[1]))
  assert info["counts"]["target"] == {"users": tgt["user"].nunique(),
                                      "items": tgt["item"].nunique(), "ratings": len(tgt)}
  assert info["counts"]["n_overlap"] == len(set(src["user"]) & set(tgt["user"])) > 0
  assert info["thin"]["fraction"] == 0.25 and info["thin"]["tail"] == 0.0
  assert info["thin"]["counts_before"] == full[2]["counts"] and full[2]["thin"] is None
  # A subset of the full data, in its order.
  merged = tgt.merge(full[1], on=["user", "item"], suffixes=("", "_full"))
  assert len(merged) == len(tgt) and (merged["rating"] == merged["rating_full"]).all()
  again = load_task("synthetic", data_dir=tmp_path, like="sparse", scale=1.0, thin=0.25)
  pd.testing.assert_frame_equal(tgt, again[1])
  other_seed = tasks.thin_frames(full[0], full[1], thin=0.25, seed=1)
  assert not other_seed[1].equals(tgt)


def test_thin_tail_makes_the_kept_ratings_long_tailed(tmp_path):
  src, tgt, _ = make_synthetic_cdr(0, like="music2movie", scale=0.02, tail=0.0)
  uniform = tasks.thin_frames(src, tgt, thin=0.1, seed=0)[1]
  tailed = tasks.thin_frames(src, tgt, thin=0.1, thin_tail=1.5, seed=0)[1]
  assert len(uniform) == len(tailed)
  assert _shape(tailed)["top_1pct"] > 1.5 * _shape(uniform)["top_1pct"]
  assert tailed["item"].value_counts().max() > 2 * uniform["item"].value_counts().max()
  assert tailed["user"].nunique() < 0.85 * uniform["user"].nunique()


def _custom_files(tmp_path, n_users=40, overlap=3):
  rng = np.random.default_rng(0)
  paths = []
  for name, users in (("s", range(n_users)), ("t", range(n_users - overlap, 2 * n_users))):
    rows = [(f"u{u}", f"{name}{j}", float(rng.integers(1, 6))) for u in users for j in range(5)]
    path = tmp_path / f"{name}.csv"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(path, index=False)
    paths.append(path)
  return paths


def test_thin_works_on_file_tasks_and_refuses_an_empty_overlap(tmp_path):
  s_path, t_path = _custom_files(tmp_path)
  src, tgt, info = load_task("custom", source_file=s_path, target_file=t_path, thin=0.5,
                             seed=3)
  assert len(src) == 100 and len(tgt) == round(0.5 * 215) and info["thin"]["seed"] == 3
  with pytest.raises(DataError, match=r"custom.*thin=0.01"):
    load_task("custom", source_file=s_path, target_file=t_path, thin=0.01)


@pytest.mark.parametrize("kwargs, says", [
    ({"thin": 0.0}, "--thin=0"), ({"thin": 1.5}, "--thin=1.5"),
    ({"thin": 0.5, "thin_tail": -1.0}, "--thin_tail=-1"), ({"thin_tail": 1.0}, "needs --thin"),
    ({"signal": 2.0}, "signal only used by task 'synthetic'"),
])
def test_load_task_rejects_bad_thinning_and_misplaced_knobs(tmp_path, kwargs, says):
  s_path, t_path = _custom_files(tmp_path)
  with pytest.raises(ValueError, match=says):
    load_task("custom", source_file=s_path, target_file=t_path, **kwargs)


def test_frames_key_depends_on_the_seed_when_thinned():
  base = config_lib.PFCDRConfig()   # comedy2drama: files, the same for every seed
  assert not tasks.depends_on_seed("comedy2drama") and tasks.depends_on_seed("synthetic")
  key = lambda cfg, seed: run_inputs.frames_key(config_lib.override(cfg, {"seed": seed}))
  assert key(base, 0) == key(base, 1)
  thinned = config_lib.override(base, {"data.thin": 0.05})
  assert key(thinned, 0) != key(thinned, 1) and key(thinned, 0) != key(base, 0)


@pytest.mark.parametrize("path, value, says", [
    ("data.thin", 1.5, "data.thin (--thin) = 1.5: expected a fraction"),
    ("data.thin", 0.0, "data.thin (--thin) = 0.0: expected"),
    ("data.thin_tail", 0.5, "data.thin_tail (--thin_tail) = 0.5: expected 0 unless --thin"),
    ("data.bias_std", -1.0, "data.bias_std (--bias_std) = -1.0: expected a standard deviation"),
    ("data.tail", -0.5, "data.tail (--tail) = -0.5: expected"),
    ("data.density", 0.0, "data.density (--density) = 0.0: expected a finite number > 0"),
    ("data.signal", 2.0, "data.task (--task) = 'comedy2drama': expected synthetic, the only "
     "task that reads --signal"),
])
def test_config_validation_names_the_flag(path, value, says):
  task = "comedy2drama" if path == "data.signal" else "synthetic"
  cfg = config_lib.override(config_lib.PFCDRConfig(), {path: value, "data.task": task})
  with pytest.raises(ValueError) as err:
    config_lib.validate(cfg)
  assert str(err.value).startswith(says) and "\n" not in str(err.value)


def test_script_turns_a_bad_thin_into_one_error_line(tmp_path):
  cmd = [sys.executable, str(ROOT / "experiments" / "pfcdr.py"), "--task=synthetic",
         "--like=sparse", "--scale=1.0", "--thin=2", f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 1, out.stderr[-2000:]
  assert out.stderr.strip().splitlines()[-1].startswith("error: data.thin (--thin) = 2.0")
  assert not (tmp_path / "w").exists()


def test_load_frames_passes_the_knobs(tmp_path):
  cfg = config_lib.override(config_lib.PFCDRConfig(), {
      "data.task": "synthetic", "data.like": "sparse", "data.scale": 0.2, "data.signal": 0.5,
      "data.bias_std": 0.2, "data.tail": 0.8, "data.density": 1.2, "data.mean_rating": 4.0,
      "data.thin": 0.5, "data.thin_tail": 0.5, "data.data_dir": str(tmp_path), "seed": 2})
  _, tgt, info = run_inputs.load_frames(cfg)
  assert {k: info[k] for k in ("like", "signal", "bias_std", "tail", "density",
                               "mean_rating", "seed")} == {
      "like": "sparse", "signal": 0.5, "bias_std": 0.2, "tail": 0.8, "density": 1.2,
      "mean_rating": 4.0, "seed": 2}
  assert info["thin"]["fraction"] == 0.5 and info["thin"]["tail"] == 0.5
  assert len(tgt) == round(0.5 * info["thin"]["counts_before"]["target"]["ratings"])


def test_thin_keeps_the_universal_dtypes():
  df = make_frame(["a", "b", "c"], ["x", "y", "z"], [1, 2, 3])
  out = tasks.thin_frames(df, df, thin=0.5, seed=0)[0]
  assert list(out.dtypes) == list(df.dtypes) and len(out) == 2


def test_misalign_shuffles_only_the_overlapping_users_source_profiles():
  from pfcdr_jax.data import tasks as tasks_lib
  src, tgt, info = tasks_lib.load_task("synthetic", seed=2, like="sparse", scale=0.05)
  mis, _, info_m = tasks_lib.load_task("synthetic", seed=2, like="sparse", scale=0.05,
                                       misalign=True)
  assert info["misaligned"] is None and info_m["misaligned"]["n_users_moved"] > 0
  overlap = set(src["user"]) & set(tgt["user"])
  assert set(mis["user"]) == set(src["user"]) and len(mis) == len(src)
  # Same profiles (per user: the multiset of (item, rating)), handed to other users.
  prof = lambda df: {u: tuple(sorted(zip(g["item"], g["rating"]))) for u, g in df.groupby("user")}
  a, b = prof(src), prof(mis)
  assert sorted(a.values()) == sorted(b.values())
  assert all(a[u] == b[u] for u in a if u not in overlap)
  moved = [u for u in overlap if a[u] != b[u]]
  assert len(moved) >= 0.9 * len(overlap)
  again, _, _ = tasks_lib.load_task("synthetic", seed=2, like="sparse", scale=0.05,
                                    misalign=True)
  assert again.equals(mis)


@pytest.mark.parametrize("kw", [dict(), dict(thin=0.5, thin_tail=1.0), dict(misalign=True)])
def test_categorical_ids_give_the_split_of_string_ids(kw):
  """The generator's categorical id columns are an execution detail: the same frames
  as strings give the same thinning, misalignment and split, manifest and all."""
  src, tgt, _ = make_synthetic_cdr(2, like="music2movie", scale=0.003)
  assert isinstance(src["user"].dtype, pd.CategoricalDtype)
  as_str = [df.astype({"user": str, "item": str}) for df in (src, tgt)]
  assert not isinstance(as_str[0]["user"].dtype, pd.CategoricalDtype)
  splits = []
  for s, t in ((src, tgt), as_str):
    if kw.get("misalign"):
      s, _ = tasks.misalign_overlap(s, t, seed=4)
    if "thin" in kw:
      s, t = tasks.thin_frames(s, t, thin=kw["thin"], thin_tail=kw["thin_tail"], seed=4)
    splits.append(splits_lib.make_cdr_split(s, t, beta=0.2, seed=4, name="x"))
  a, b = splits
  assert a.manifest == b.manifest
  np.testing.assert_array_equal(a.source.user, b.source.user)
  np.testing.assert_array_equal(a.target_test.rating, b.target_test.rating)
  assert a.source_user_ids == b.source_user_ids
