"""Tests of the baseline registry: every name runs, selection never reads test ratings."""

import dataclasses

import jax
import numpy as np
import pytest

from pfcdr_jax.infra import phase_timer
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection
from pfcdr_jax.config import MAIN_BASELINES
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.data import splits
from pfcdr_jax.data.synthetic import make_synthetic_cdr
from pfcdr_jax.models import scorers


@pytest.fixture(scope="module")
def data():
  src, tgt, _ = make_synthetic_cdr(0, scale=0.003)
  return splits.make_cdr_split(src, tgt, beta=0.2, seed=0, val_fraction=0.2, name="tiny")


def _ctx(data, base_model="mf", dim=4):
  scorer = scorers.get_scorer(base_model)
  ks, kt, kb = jax.random.split(jax.random.PRNGKey(0), 3)
  # Random (untrained) base models are enough to exercise shapes and the protocol.
  return BaselineContext(data=data, scorer=scorer,
                         params_s=scorer.init(ks, data.source.n_users, data.source.n_items, dim),
                         params_t=scorer.init(kt, data.target_train.n_users,
                                              data.target_train.n_items, dim),
                         key=kb, seed=0, emcdr_key=ks)


def _corrupt_test(data):
  rng = np.random.default_rng(1)
  t = data.target_test
  bad = dataclasses.replace(t, rating=rng.uniform(1, 5, t.rating.shape).astype(np.float32))
  return dataclasses.replace(data, target_test=bad)


def test_names_cover_the_issue_baselines():
  bases = {registry.parse_name(n)[0] for n in registry.NAMES}
  assert bases == {"LightGCN", "CMF", "SSCDR", "PTUPCDR", "DP-EMCDR", "PriCDR-S",
                   "SourceUserMean", "FedCDR", "PF2CDR", "PPGenCDR", "PFCDR-DP", "PFCDR+"}
  for dp in ("DP-EMCDR", "PFCDR-DP", "PFCDR+"):
    eps = sorted(registry.parse_name(n)[1]["eps"] for n in registry.NAMES
                 if n.startswith(dp + "("))
    assert eps == sorted(registry.DP_EPSILONS), dp


@pytest.mark.parametrize("name", registry.quick_names(MAIN_BASELINES + registry.NAMES))
def test_every_name_runs_and_returns_finite_test_predictions(data, name):
  with phase_timer.recording() as phases:
    pred, chosen = selection.fit_predict(name, _ctx(data))
  assert pred.shape == data.target_test.rating.shape
  assert pred.dtype == np.float32
  assert np.all(np.isfinite(pred))
  assert np.isfinite(chosen["val_mae"]) and len(chosen["grid"]) == 1
  # Table 3's testing time: one timed prediction step of the validation + test pairs
  # (EMCDR's row is timed stage by stage in studies/cost.py instead).
  if name == "EMCDR":
    return
  n_pairs = data.target_val.rating.size + data.target_test.rating.size
  assert [p.n_pairs for p in phases] == [n_pairs], name
  assert phases[0].seconds >= 0.0


def test_one_prediction_step_per_grid_point(data):
  name = "BiasFloor"
  with phase_timer.recording() as phases:
    _, chosen = selection.fit_predict(name, _ctx(data))
  assert len(phases) == len(selection.selection_grid(name)) == len(chosen["grid"]) > 1


@pytest.mark.parametrize("base_model", ["gmf", "dnn"])
@pytest.mark.parametrize("name", ["PTUPCDR(epochs=1)", "SSCDR(epochs=2)",
                                  "DP-EMCDR(eps=1)", "PriCDR-S(epochs=1)"])
def test_embedding_baselines_run_on_neural_scorers(data, base_model, name):
  pred, _ = selection.fit_predict(name, _ctx(data, base_model))
  assert pred.shape == data.target_test.rating.shape and np.all(np.isfinite(pred))


@pytest.mark.parametrize("name", ["SourceUserMean", "DP-EMCDR(eps=5)", "SSCDR(epochs=3)",
                                  "CMF(epochs=2,alpha=0.5)"])
def test_selection_never_reads_test_ratings(data, name):
  pred, chosen = selection.fit_predict(name, _ctx(data))
  pred_bad, chosen_bad = selection.fit_predict(name, _ctx(_corrupt_test(data)))
  np.testing.assert_array_equal(pred, pred_bad)
  assert chosen == chosen_bad
  # The kept setting is the grid point with the lowest validation MAE.
  assert len(chosen["grid"]) > 1
  assert chosen["val_mae"] == min(g["val_mae"] for g in chosen["grid"])
  maes = [g["val_mae"] for g in chosen["grid"]]
  assert chosen["grid_index"] == maes.index(min(maes))     # the first lowest


def test_selected_point_matches_validation_mae_recomputed(data):
  # SourceUserMean is deterministic: recompute its validation MAE per shrinkage by hand.
  _, chosen = selection.fit_predict("SourceUserMean", _ctx(data))
  src, val, tr = data.source, data.target_val, data.target_train
  for point in chosen["grid"]:
    k = point["shrinkage"]
    sums = np.bincount(src.user, weights=src.rating, minlength=src.n_users)
    cnt = np.bincount(src.user, minlength=src.n_users)
    g = src.rating.mean()
    means = np.where(cnt + k > 0, (sums + k * g) / np.maximum(cnt + k, 1e-12), g)
    pred = means[val.user] - g + tr.rating.mean()
    np.testing.assert_allclose(point["val_mae"], np.mean(np.abs(pred - val.rating)), rtol=1e-5)


def test_options_fix_fields_and_shrink_the_grid():
  assert len(selection.selection_grid("PTUPCDR")) > 1
  grid = selection.selection_grid("PTUPCDR(lr=0.02,epochs=3)")
  assert grid == ({**registry.ENTRIES["PTUPCDR"].defaults, "lr": 0.02, "epochs": 3},)
  assert registry.display_name("DP-EMCDR(clip_norm=1,eps=0.5)") == "DP-EMCDR(eps=0.5)"
  assert registry.display_name("CMF(epochs=2)") == "CMF"
  quick = registry.quick_names(("DP-EMCDR(eps=10)", "CMF"))
  assert registry.parse_name(quick[0])[1]["eps"] == 10
  assert all(len(selection.selection_grid(n)) == 1 for n in registry.quick_names())


@pytest.mark.parametrize("bad", ["NoSuchMethod", "CMF(lr)", "CMF(", "(lr=1)"])
def test_bad_names_raise(bad):
  with pytest.raises(ValueError):
    registry.parse_name(bad)


def test_grid_without_validation_users_raises(data):
  empty = dataclasses.replace(data.target_val, user=data.target_val.user[:0],
                              item=data.target_val.item[:0],
                              rating=data.target_val.rating[:0])
  ctx = _ctx(dataclasses.replace(data, target_val=empty))
  with pytest.raises(ValueError, match="validation"):
    selection.fit_predict("SourceUserMean", ctx)
  pred, _ = selection.fit_predict("SourceUserMean(shrinkage=0)", ctx)  # one point: fine
  assert pred.shape == data.target_test.rating.shape


def test_main_methods_equal_their_modules(data):
  """TGT, EMCDR and the floors go through the registry and give their modules' numbers."""
  from pfcdr_jax.baselines import emcdr, floors  # pylint: disable=g-import-not-at-top
  ctx = _ctx(data)
  test, tr = data.target_test, data.target_train
  pred, _ = selection.fit_predict("GlobalMean", ctx)
  np.testing.assert_array_equal(pred, floors.global_mean_predict(tr.rating, test.rating.size))
  pred, _ = selection.fit_predict("ItemMean", ctx)
  np.testing.assert_array_equal(pred, floors.item_mean_predict(tr.item, tr.rating, test.item,
                                                               tr.n_items))
  pred, _ = selection.fit_predict("TGT", ctx)
  np.testing.assert_array_equal(pred, np.asarray(ctx.scorer.predict(ctx.params_t, test.user,
                                                                    test.item)))
  # EMCDR trains its map with the run's bridge settings and its own stage key.
  pred, _ = selection.fit_predict("EMCDR", ctx)
  ref = emcdr.fit_predict(ctx.scorer, ctx.params_s, ctx.params_t, data.train_users, test.user,
                          test.item, ctx.emcdr_key, lr=ctx.bridge.lr, epochs=ctx.bridge.epochs,
                          batch_size=ctx.bridge.batch_size)
  np.testing.assert_allclose(pred, ref, rtol=1e-6, atol=1e-6)


def test_a_new_method_is_one_registry_entry(data, monkeypatch):
  """What README's "Adding a baseline" promises: a runner and one Entry line."""
  def run_const(ctx, opts, pairs, key):
    del ctx, key
    return np.full(pairs[0].shape, opts["value"], np.float32)

  monkeypatch.setitem(registry.ENTRIES, "Const", registry.Entry(
      run_const, grid=({"value": 3.0}, {"value": 4.0}), quick="value=3"))
  pred, chosen = selection.fit_predict("Const", _ctx(data))
  val = data.target_val.rating
  best = min((3.0, 4.0), key=lambda v: np.mean(np.abs(v - val)))
  assert chosen["value"] == best and np.all(pred == best)
  assert registry.quick_names(("Const",)) == ("Const(value=3)",)


def test_plus_eps_names_a_public_scale_or_fails_in_one_line(data):
  with pytest.raises(ValueError, match=r"PFCDR\+\(scale=abc\): expected lo/hi"):
    selection.fit_predict("PFCDR+(eps=1,scale=abc)", _ctx(data))
  with pytest.raises(ValueError, match="outside the public scale"):
    selection.fit_predict("PFCDR+(eps=1,scale=2/3)", _ctx(data))
