"""PFCDR-DP (privacy.dp_prototypes): the Gaussian mechanism on prototypes."""

import math

import jax
import numpy as np
import pytest

from pfcdr_jax import config as config_lib
from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.pfcdr import method
from pfcdr_jax.baselines import context
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.baselines import registry
from pfcdr_jax.baselines import selection
from pfcdr_jax.privacy import attacks
from pfcdr_jax.privacy import decoders
from pfcdr_jax.privacy import dp_prototypes as dpp


def test_noise_scale_is_the_gaussian_mechanism_formula():
  cfg = dpp.DPPrototypeConfig(epsilon=0.5, delta=1e-5, clip_norm=2.0, mechanism="classic",
                              center_share=0.0)
  assert dpp.noise_scale(cfg) == pytest.approx(
      2.0 * math.sqrt(2.0 * math.log(1.25 / 1e-5)) / 0.5, rel=1e-12)
  replace = dpp.DPPrototypeConfig(epsilon=0.5, clip_norm=2.0, mechanism="classic",
                                  neighboring="replace", center_share=0.0)
  assert dpp.noise_scale(replace) == pytest.approx(2 * dpp.noise_scale(cfg), rel=1e-12)
  analytic = dpp.DPPrototypeConfig(epsilon=5.0, delta=1e-5, clip_norm=3.0, center_share=0.0)
  sigma = dpp.noise_scale(analytic)
  # The analytic mechanism's exact delta (Balle & Wang 2018, Thm. 8) at that sigma.
  assert mechanisms.analytic_gaussian_delta(sigma, 5.0, 3.0) == pytest.approx(1e-5, rel=1e-6)
  assert dpp.noise_scale(dpp.DPPrototypeConfig(epsilon=None)) == 0.0


def test_release_clips_around_the_center_and_adds_that_noise():
  rng = np.random.default_rng(0)
  P = rng.normal(size=(20000, 4)) * 3.0 + 7.0
  c = np.full(4, 7.0, np.float32)
  clipped = dpp.release(P, c, jax.random.PRNGKey(0), dpp.DPPrototypeConfig(
      epsilon=None, clip_norm=1.5, center_share=0.0))
  assert np.max(np.linalg.norm(clipped - c, axis=1)) <= 1.5 + 1e-4
  cfg = dpp.DPPrototypeConfig(epsilon=2.0, clip_norm=1.5, center_share=0.0)
  noisy = dpp.release(np.tile(c, (20000, 1)), c, jax.random.PRNGKey(1), cfg)
  assert np.std(noisy - c) == pytest.approx(dpp.noise_scale(cfg), rel=0.02)


def test_the_budget_is_split_between_the_centre_and_the_vectors():
  cfg = dpp.DPPrototypeConfig(epsilon=10.0, delta=1e-5, clip_norm=1.0, center_share=0.05,
                              center_clip=4.0)
  sens = lambda c: mechanisms.sensitivity_of(c, "add_remove")
  assert dpp.noise_scale(cfg) == pytest.approx(
      mechanisms.gaussian_sigma(9.5, 0.95e-5, sens(1.0), "analytic"), rel=1e-12)
  assert dpp.center_noise_scale(cfg) == pytest.approx(
      mechanisms.gaussian_sigma(0.5, 0.05e-5, sens(4.0), "analytic"), rel=1e-12)
  with pytest.raises(ValueError, match="center_share"):
    dpp.DPPrototypeConfig(center_share=1.0)


def test_released_centre_is_the_noised_clipped_mean_of_the_prototypes():
  rng = np.random.default_rng(2)
  c0 = np.zeros(4, np.float32)
  P = (np.array([2.0, 0.0, 0.0, 0.0]) + 0.3 * rng.normal(size=(5000, 4))).astype(np.float32)
  far = np.vstack([P, np.full((1, 4), 100.0, np.float32)])   # one outlier, clipped to 4
  cfg = dpp.DPPrototypeConfig(epsilon=None, center_clip=4.0)
  c = dpp.released_center(far, c0, jax.random.PRNGKey(0), cfg)
  np.testing.assert_allclose(c, (P.sum(0) + 2.0) / 5001, atol=1e-3)   # 4 / sqrt(4) = 2
  # With a budget the centre's noise is sigma_c / n per coordinate: small for many users.
  cfg = dpp.DPPrototypeConfig(epsilon=1.0, center_clip=4.0)
  draws = np.stack([dpp.released_center(P, c0, jax.random.PRNGKey(i), cfg)
                    for i in range(200)])
  assert np.mean(np.std(draws, axis=0)) == pytest.approx(dpp.center_noise_scale(cfg) / 5000,
                                                         rel=0.15)
  # Clipping around it keeps the user-specific part that the public centre clips away.
  x = dpp.release(P, c0, jax.random.PRNGKey(3), dpp.DPPrototypeConfig(
      epsilon=None, clip_norm=0.5, center_share=0.05))
  y = dpp.release(P, c0, jax.random.PRNGKey(3), dpp.DPPrototypeConfig(
      epsilon=None, clip_norm=0.5, center_share=0.0))
  # Around c0 every row has norm ~2 and is scaled down 4x, its user part with it.
  assert np.std(x[:, 1]) > 2.5 * np.std(y[:, 1])


def test_leakage_falls_as_epsilon_shrinks():
  rng = np.random.default_rng(1)
  U = rng.normal(size=(2000, 4))
  P = 5.0 + U                                   # a prototype that is U plus a centre
  c = np.full(4, 5.0, np.float32)
  r2 = []
  for i, eps in enumerate((100.0, 10.0, 1.0, 0.1)):
    x = dpp.release(P, c, jax.random.PRNGKey(i), dpp.DPPrototypeConfig(epsilon=eps,
                                                                       clip_norm=3.0))
    est, _ = decoders.decode(x[:1500], U[:1500], x[1500:])
    r2.append(attacks.embedding_recovery(est, U[1500:], U[:1500].mean(0))["r2"])
  assert r2[0] > 0.7 and r2[-1] < 0.05
  assert all(a > b for a, b in zip(r2, r2[1:])), r2


@pytest.fixture(scope="module")
def run(tiny_untrained_run):
  return tiny_untrained_run


def test_without_noise_and_clipping_it_is_pfcdr(run):
  data, scorer, params_s, params_t = run
  inv = inversion.InversionConfig(method="closed_form", steps=50)
  topk = config_lib.TopKConfig(k="7")
  bridge = config_lib.BridgeConfig(epochs=5)
  rng = np.random.default_rng(2)   # any prototypes: the release must leave them as they are
  protos = method.Prototypes(
      rng.normal(size=(len(method.source_prototype_users(data)), 4)).astype(np.float32),
      rng.normal(size=(len(method.bridge_users(data)), 4)).astype(np.float32))
  fit = method.fit_predict(scorer, params_s, params_t, data, method.StageKeys.from_seed(0),
                           inversion=inv, bridge=bridge, topk=topk, protos=protos)
  test = data.target_test
  got = dpp.fit_predict_pairs(scorer, params_s, params_t, data, (test.user, test.item),
                              cfg=dpp.DPPrototypeConfig(epsilon=None, clip_norm=1e6,
                                                            center=False),
                              inversion=inv, bridge=bridge, topk=topk,
                              key=jax.random.PRNGKey(9), seed=0, protos=protos)
  np.testing.assert_allclose(got, fit.pred, rtol=1e-5, atol=1e-5)


def test_registry_entry_and_display_name(run):
  data, scorer, params_s, params_t = run
  ctx = context.BaselineContext(
      data=data, scorer=scorer, params_s=params_s, params_t=params_t,
      key=jax.random.PRNGKey(0), seed=0, bridge=config_lib.BridgeConfig(epochs=5),
      inversion=inversion.InversionConfig(method="closed_form", steps=50),
      topk=config_lib.TopKConfig(k="7"))
  pred, chosen = selection.fit_predict("PFCDR-DP(eps=1,clip_norm=1)", ctx)
  assert pred.shape == data.target_test.rating.shape and np.all(np.isfinite(pred))
  assert chosen["clip_norm"] == 1 and chosen["eps"] == 1
  assert registry.display_name("PFCDR-DP(eps=1,clip_norm=1)") == "PFCDR-DP(eps=1)"
  assert registry.PFCDR_DP_NAMES[0] == "PFCDR-DP(eps=0.5)"
