"""Tests of PF2CDR (P2FCDR-style silos, DP release, gated fusion); registry smoke of both."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import pf2cdr, registry, selection
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.baselines.context import BaselineContext
from pfcdr_jax.data import splits
from pfcdr_jax.data.synthetic import make_synthetic_cdr
from pfcdr_jax.models import scorers
from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained

CFG = pf2cdr.PF2CDRConfig(epsilon=None, clip_norm=4.0, lr=0.02, epochs=30, batch_size=256)


def _fit(data, emb, cfg, seed=0):
  return pf2cdr.fit_predict(data.target_train, data.test, train_users=data.train_users,
                            src_user_emb=emb["src_user_emb"], tgt_user_emb=emb["tgt_user_emb"],
                            tgt_item_emb=emb["tgt_item_emb"], cfg=cfg,
                            key=jax.random.PRNGKey(seed))


def test_release_is_the_gaussian_mechanism():
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(20, 4)).astype(np.float32) * 3
  cfg = pf2cdr.PF2CDRConfig(epsilon=2.0, clip_norm=1.5)
  rel = pf2cdr.release(emb, np.array([5, 1, 5, 7]), cfg, jax.random.PRNGKey(3))
  np.testing.assert_array_equal(rel.users, [1, 5, 7])
  assert rel.sigma == mechanisms.analytic_gaussian_sigma(2.0, 1e-5, 1.5)
  want = mechanisms.privatize(jnp.asarray(emb[[1, 5, 7]]), jax.random.PRNGKey(3), rel.sigma, 1.5)
  np.testing.assert_allclose(rel.vectors, want, rtol=1e-6)
  clean = pf2cdr.release(emb, np.array([1]), dataclasses.replace(cfg, epsilon=None),
                         jax.random.PRNGKey(3))
  np.testing.assert_allclose(np.linalg.norm(clean.vectors[0]), 1.5, rtol=1e-5)


def test_gate_mixes_the_two_representations():
  d = 3
  params = pf2cdr.init(jax.random.PRNGKey(0), d, jnp.zeros(d))
  params = params._replace(a=jnp.eye(d), gate_w=jnp.zeros((2 * d, d)),
                           gate_b=jnp.array([50.0, -50.0, 0.0]))
  x, p_t = jnp.array([1.0, 2.0, 3.0]), jnp.array([-1.0, -2.0, -3.0])
  np.testing.assert_allclose(pf2cdr.fuse(params, x, p_t), [1.0, -2.0, 0.0], atol=1e-5)


def test_beats_global_mean_untrained_and_heavy_noise_do_not():
  data = make_planted(0)
  emb = pretrained(data)
  gm = global_mean_mae(data)
  trained = mae(_fit(data, emb, CFG), data.test_rating)
  untrained = mae(_fit(data, emb, dataclasses.replace(CFG, epochs=0)), data.test_rating)
  noisy = mae(_fit(data, emb, dataclasses.replace(CFG, epsilon=0.05)), data.test_rating)
  assert trained < 0.8 * gm
  assert trained < 0.85 * untrained
  assert noisy > trained + 0.1


@pytest.mark.parametrize("name", ["FedCDR(eps=1)", "PF2CDR", "PF2CDR(eps=5)"])
def test_registry_entries_run_on_a_tiny_split(name):
  src, tgt, _ = make_synthetic_cdr(0, scale=0.003)
  data = splits.make_cdr_split(src, tgt, beta=0.2, seed=0, val_fraction=0.2, name="tiny")
  scorer = scorers.get_scorer("mf")
  ks, kt, kb = jax.random.split(jax.random.PRNGKey(0), 3)
  ctx = BaselineContext(data=data, scorer=scorer,
                        params_s=scorer.init(ks, data.source.n_users, data.source.n_items, 4),
                        params_t=scorer.init(kt, data.target_train.n_users,
                                             data.target_train.n_items, 4), key=kb, seed=0)
  (quick,) = registry.quick_names((name,))
  pred, chosen = selection.fit_predict(quick, ctx)
  assert pred.shape == data.target_test.rating.shape and np.all(np.isfinite(pred))
  assert registry.display_name(name) == name
  assert len(chosen["grid"]) == 1
