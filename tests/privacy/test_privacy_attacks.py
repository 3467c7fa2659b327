"""The attack scores (pfcdr_jax.privacy.attacks / decoders / controls) against numpy."""

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from pfcdr_jax.privacy import attacks
from pfcdr_jax.privacy import controls
from pfcdr_jax.privacy import decoders


def test_auc_equals_sklearn_with_ties():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 5, size=200).astype(float)    # many ties
  labels = rng.random(200) < 0.3
  assert attacks.auc(scores, labels) == pytest.approx(
      sk_metrics.roc_auc_score(labels, scores), abs=1e-12)
  assert np.isnan(attacks.auc(scores, np.zeros(200, bool)))


def _numpy_linkage(est, pool, true_index, k):
  """Plain loops: centred cosine, rank = 1 + number of strictly better users."""
  e = est - est.mean(0)
  p = pool - pool.mean(0)
  hits, ranks = 0, []
  for i in range(len(e)):
    sims = [float(e[i] @ p[j]) / (np.linalg.norm(e[i]) * np.linalg.norm(p[j]))
            for j in range(len(p))]
    rank = 1 + sum(s > sims[true_index[i]] for s in sims)
    ranks.append(rank)
    hits += rank <= k
  return hits / len(e), float(np.median(ranks))


def test_linkage_equals_a_numpy_reference():
  rng = np.random.default_rng(1)
  pool = rng.normal(size=(30, 4))
  true_index = rng.permutation(30)[:12]
  est = pool[true_index] + 0.8 * rng.normal(size=(12, 4))   # noisy: some ranks > 1
  got = attacks.linkage(est, pool, true_index, ks=(1, 3), chunk=5)
  for k in (1, 3):
    want, median = _numpy_linkage(est, pool, true_index, k)
    assert got[f"top{k}"] == pytest.approx(want)
    assert got["median_rank"] == pytest.approx(median)
  assert 0.0 < got["top1"] < 1.0            # the case is not degenerate
  assert got["chance_top1"] == pytest.approx(1 / 30)


def test_embedding_recovery_of_the_truth_and_of_the_center():
  rng = np.random.default_rng(2)
  U = rng.normal(size=(50, 5)) + 3.0
  center = U.mean(0)
  perfect = attacks.embedding_recovery(U, U, center)
  assert perfect["cos"] == pytest.approx(1.0) and perfect["r2"] == pytest.approx(1.0)
  assert perfect["cos_centered"] == pytest.approx(1.0)
  mean_only = attacks.embedding_recovery(np.tile(center, (50, 1)) + 1e-9, U, center)
  assert mean_only["r2"] == pytest.approx(0.0, abs=1e-6)
  assert mean_only["cos"] > 0.9              # why the raw cosine needs a control


def test_preference_auc_on_planted_scores():
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(6, 40))
  rows, items, ratings = [], [], []
  for u in range(6):
    rated = np.argsort(-scores[u])[:10]      # users rate their top items ...
    rows += [u] * 10
    items += list(rated)
    ratings += [5.0] * 5 + [2.0] * 5         # ... and like the best five
  got = attacks.preference_auc(scores, np.array(rows), np.array(items), np.array(ratings))
  assert got["high_low"] == pytest.approx(1.0) and got["rated_unrated"] == pytest.approx(1.0)
  flipped = attacks.preference_auc(-scores, np.array(rows), np.array(items),
                                   np.array(ratings))
  assert flipped["high_low"] == pytest.approx(0.0)


def test_ridge_decoder_equals_lstsq_and_poly_features():
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
  w, b = decoders.fit_ridge(x, y, 0.0)
  ref = np.linalg.lstsq(np.c_[x, np.ones(40)], y, rcond=None)[0]
  np.testing.assert_allclose(np.r_[w, b[None]], ref, atol=1e-8)
  assert decoders.poly2(x).shape == (40, 3 + 6)
  np.testing.assert_allclose(decoders.poly2(x)[:, 3], x[:, 0] ** 2)


def test_decoder_learns_a_planted_map_and_not_noise():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(600, 4))
  y = x @ rng.normal(size=(4, 3))
  est, info = decoders.decode(x[:500], y[:500], x[500:])
  assert info["holdout_r2"][info["decoder"]] > 0.99
  np.testing.assert_allclose(est, y[500:], atol=1e-2)
  est, info = decoders.decode(rng.normal(size=(500, 4)), y[:500], x[500:])
  assert attacks.embedding_recovery(est, y[500:], y[:500].mean(0))["r2"] < 0.05


def test_controls():
  rng = np.random.default_rng(6)
  perm = controls.derangement(50, rng)
  assert sorted(perm) == list(range(50)) and not np.any(perm == np.arange(50))
  x = rng.normal(size=(50, 3)) * [1.0, 2.0, 3.0] + 5.0
  shuffled = controls.random_users(x, 0)
  assert sorted(map(tuple, shuffled)) == sorted(map(tuple, x))
  assert not np.any(np.all(shuffled == x, axis=1))
  noise = controls.pure_noise(np.tile(x, (100, 1)), 0)
  np.testing.assert_allclose(noise.std(0), np.tile(x, (100, 1)).std(0), rtol=0.1)
  with pytest.raises(ValueError):
    controls.derangement(1, rng)


def test_attribute_classifier_on_planted_and_noise_features():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(800, 4))
  gender = (x @ [1.0, -1.0, 0.5, 0.0] > 0).astype(int)
  age = np.argmax(x[:, :3], axis=1)
  assert attacks.attribute_inference(x[:600], gender[:600], x[600:], gender[600:])["auc"] > 0.98
  got = attacks.attribute_inference(x[:600], age[:600], x[600:], age[600:])
  assert got["accuracy"] > 0.85 and got["majority"] < 0.5
  z = rng.normal(size=(800, 4))
  assert abs(attacks.attribute_inference(z[:600], gender[:600], z[600:],
                                         gender[600:])["auc"] - 0.5) < 0.1
