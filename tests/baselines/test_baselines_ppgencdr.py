"""Tests of PPGenCDR (DP generator + target encoder): exact per-user clipping, DP
calibration, the release, learning on the planted task, and bad input."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.baselines import fedcdr, ppgencdr, ppgencdr_config, ppgencdr_generator
from test_baselines_planted import global_mean_mae, mae, make_planted, pretrained

CFG = ppgencdr_config.PPGenCDRConfig(epsilon=None, clip_norm=1.0, gen_steps=150, gen_lr=0.02,
                                     lr=0.01, epochs=30, batch_size=256)


@pytest.fixture(scope="module")
def planted():
  data = make_planted(0)
  return data, pretrained(data)


def _fit(planted, cfg, seed=0, **over):
  data, emb = planted
  args = dict(n_users_src=data.n_users_src, n_items_src=data.n_items_src,
              train_users=data.train_users, tgt_user_emb=emb["tgt_user_emb"],
              tgt_item_emb=emb["tgt_item_emb"])
  args.update(over)
  return ppgencdr.fit_predict(data.source, data.target_train, data.test, cfg=cfg,
                              key=jax.random.PRNGKey(seed), **args)


@pytest.mark.parametrize("layout", ["sparse", "dense"])
def test_clipped_grad_sum_is_the_sum_of_per_user_clipped_gradients(layout):
  rng = np.random.default_rng(0)
  n_users, n_items = 5, 6
  cfg = ppgencdr_config.PPGenCDRConfig(gen_dim=3, gen_hidden=4, init_scale=1.0)
  gen = ppgencdr_generator.init_generator(jax.random.PRNGKey(1), n_users, n_items, cfg)
  gen = gen._replace(w2=gen.w2 * 100.0, b1=jnp.full((4,), 0.3))   # non-trivial deltas
  user = np.array([0, 0, 1, 2, 2, 2, 4], np.int32)   # user 3 has no rating
  item = np.array([1, 4, 0, 2, 3, 5, 1], np.int32)
  y = rng.random(user.size).astype(np.float32)
  weight = (1.0 / np.bincount(user, minlength=n_users)[user]).astype(np.float32)
  if layout == "sparse":
    data = ppgencdr_generator.SparseRatings(*(jnp.asarray(a) for a in (user, item, y, weight)))
  else:
    dy, dw = np.zeros((n_users, n_items), np.float32), np.zeros((n_users, n_items), np.float32)
    dy[user, item], dw[user, item] = y, weight
    data = ppgencdr_generator.DenseRatings(jnp.asarray(dy), jnp.asarray(dw))
  clip = 0.15
  got, norm, value = ppgencdr_generator.clipped_grad_sum(gen, data, jnp.asarray(clip))
  pred = np.asarray(ppgencdr_generator.generate(gen, gen.codes))[user, item]
  np.testing.assert_allclose(value, np.sum(weight * (pred - y) ** 2), rtol=1e-5)

  def loss_u(g, u):   # one user's loss, by plain autodiff over every parameter
    pred = ppgencdr_generator.generate(g, g.codes)[user, item]
    return jnp.sum(jnp.where(user == u, weight * (pred - y) ** 2, 0.0))

  per_user = jax.vmap(jax.grad(loss_u), in_axes=(None, 0))(gen, jnp.arange(n_users))
  flat = np.concatenate([np.asarray(x).reshape(n_users, -1) for x in per_user], axis=1)
  want_norm = np.linalg.norm(flat, axis=1)
  np.testing.assert_allclose(norm, want_norm, rtol=1e-4, atol=1e-7)
  assert want_norm[3] == 0.0 and (want_norm > clip).sum() >= 2   # clipping is exercised
  scale = np.minimum(1.0, clip / np.maximum(want_norm, 1e-12))
  for got_leaf, leaf in zip(got, per_user):
    want = np.tensordot(scale, np.asarray(leaf), axes=1)
    np.testing.assert_allclose(got_leaf, want, rtol=1e-4, atol=1e-6)


def test_noise_is_calibrated_to_the_composed_gaussian_mechanism():
  cfg = dataclasses.replace(CFG, epsilon=2.0, gen_steps=50)
  assert ppgencdr_generator.noise_multiplier(cfg) == fedcdr.noise_multiplier(2.0, 1e-5, 50)
  assert ppgencdr_generator.noise_multiplier(dataclasses.replace(cfg, epsilon=None)) == 0.0
  zeros = ppgencdr_generator.Generator(*(jnp.zeros(s) for s in ((2000, 4), (4, 8), (8,),
                                                                 (8, 500), (500,))))
  noisy = ppgencdr_generator.add_noise(zeros, jnp.asarray(1.7), jax.random.PRNGKey(0))
  flat = np.concatenate([np.asarray(x).ravel() for x in noisy])
  assert abs(flat.std() - 1.7) < 0.05 and abs(flat.mean()) < 0.06   # 4 standard errors
  with pytest.raises(ValueError, match="gen_steps"):
    ppgencdr_generator.noise_multiplier(dataclasses.replace(cfg, gen_steps=0))


def test_release_holds_the_released_users_rows_only(planted):
  data, _ = planted
  cfg = dataclasses.replace(CFG, epsilon=5.0)
  args = (data.source, data.n_users_src, data.n_items_src)
  everyone = ppgencdr_generator.source_release(*args, np.arange(data.n_users_src), cfg,
                                               jax.random.PRNGKey(4))
  rel = ppgencdr_generator.source_release(*args, np.array([7, 3, 7, 11]), cfg,
                                          jax.random.PRNGKey(4))
  np.testing.assert_array_equal(rel.users, [3, 7, 11])
  assert rel.generator.codes.shape == (3, cfg.gen_dim)
  np.testing.assert_allclose(rel.generator.codes, everyone.generator.codes[rel.users],
                             rtol=1e-5, atol=1e-6)
  x = np.asarray(ppgencdr_generator.vectors(rel))
  assert x.shape == (3, data.n_items_src) and np.all((x > 0) & (x < 1))
  assert rel.noise_multiplier == ppgencdr_generator.noise_multiplier(cfg) and rel.epsilon == 5.0


def test_beats_global_mean_and_the_untrained_and_noised_versions_do_not(planted):
  data, _ = planted
  gm = global_mean_mae(data)
  trained = mae(_fit(planted, CFG), data.test_rating)
  # Learning rate 0: the same compiled programs, the parameters stay at their init.
  untrained = mae(_fit(planted, dataclasses.replace(CFG, gen_lr=0.0, lr=0.0)),
                  data.test_rating)
  no_generator = mae(_fit(planted, dataclasses.replace(CFG, gen_lr=0.0)), data.test_rating)
  noisy = mae(_fit(planted, dataclasses.replace(CFG, epsilon=0.05)), data.test_rating)
  assert trained < 0.8 * gm
  assert trained < 0.85 * untrained
  assert no_generator > trained + 0.1   # the source signal crosses through the generator
  assert noisy > trained + 0.1


def test_bad_input_is_one_error_naming_the_field(planted):
  data, emb = planted
  su, si, sr = data.source
  with pytest.raises(ValueError, match="train_users and predicted users overlap"):
    _fit(planted, CFG, train_users=np.concatenate([data.train_users, data.test_users[:1]]))
  with pytest.raises(ValueError, match="pair item"):
    ppgencdr.fit_predict(data.source, data.target_train, (data.test[0], data.test[1] + 1000),
                         n_users_src=data.n_users_src, n_items_src=data.n_items_src,
                         train_users=data.train_users, tgt_user_emb=emb["tgt_user_emb"],
                         tgt_item_emb=emb["tgt_item_emb"], cfg=CFG, key=jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="tgt_user_emb"):
    _fit(planted, CFG, tgt_user_emb=emb["tgt_user_emb"][:, :2])
  release = lambda src, cfg: ppgencdr_generator.source_release(
      src, data.n_users_src, data.n_items_src, np.arange(3), cfg, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="one \\(user, item\\)"):
    release((np.r_[su, su[:1]], np.r_[si, si[:1]], np.r_[sr, sr[:1]]), CFG)
  with pytest.raises(ValueError, match="source item"):
    release((su, si + data.n_items_src, sr), CFG)
  with pytest.raises(ValueError, match="rating_range"):
    release(data.source, dataclasses.replace(CFG, rating_range=(5.0, 1.0)))
  with pytest.raises(ValueError, match="epsilon must be > 0"):
    release(data.source, dataclasses.replace(CFG, epsilon=0.0))
