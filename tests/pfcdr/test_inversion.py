"""Inversion (Eq. 5, 9-11; Algorithm 1): iterative path, closed form, batching."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.infra import hash_random
from pfcdr_jax.pfcdr import inversion as inv
from pfcdr_jax.pfcdr import inversion_objective as inv_obj
from pfcdr_jax.models import scorers

N_ITEMS, DIM = 3000, 10


def _setup(name, n_users=6, n_items=N_ITEMS, seed=0):
  sc = scorers.get_scorer(name)
  p = sc.init(jax.random.key(seed), 20, n_items, DIM)
  # Trained-like scales: spread item vectors so ratings of a few units are reachable.
  p["item"] = p["item"] * 3.0
  p["user"] = p["user"] * 10.0
  users = jnp.arange(n_users)
  return sc.user_repr(p, users), sc.item_matrix(p)


def _cfg(**kw):
  base = dict(steps=120, chunk_size=4)
  base.update(kw)
  return inv.InversionConfig(**base)


def _rel(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(a, axis=-1)


@pytest.mark.parametrize("draw", ["threefry", "hash"])
def test_init_weights_is_softmax_of_normal(draw):
  key = jax.random.key(3)
  b0 = inv_obj.init_weights(key, 50, draw)
  z = np.asarray(jax.random.normal(key, (50,)) if draw == "threefry"
                 else hash_random.normal(key, 50))
  np.testing.assert_allclose(np.asarray(b0), np.exp(z) / np.exp(z).sum(), rtol=1e-5)


def test_iterative_matches_numpy_adam_reference():
  """One user, plain-numpy torch-style Adam with coupled weight decay."""
  w, V = _setup("mf", n_users=1, n_items=200)
  w = np.asarray(w[0], np.float64)
  Vn = np.asarray(V, np.float64)
  cfg = _cfg(steps=40, weight_decay=1e-2, lr=1e-3)
  key = jax.random.key(7)
  res = inv.invert_user(jnp.asarray(w, jnp.float32), V, key,
                        dataclasses.replace(cfg, method="iterative"))
  b = np.asarray(inv_obj.init_weights(key, 200), np.float64)
  m = np.zeros_like(b); v = np.zeros_like(b)
  sched = inv_obj.schedule(cfg)
  best = (np.inf, None)
  for t in range(cfg.steps + 1):
    pred = w @ (Vn.T @ b)
    loss = (5.0 - pred) ** 2
    if loss < best[0]:
      best = (loss, b.copy())
    if t == cfg.steps:
      break
    g = -2 * (5.0 - pred) * (Vn @ w) + cfg.weight_decay * b
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    mh, vh = m / (1 - 0.9 ** (t + 1)), v / (1 - 0.999 ** (t + 1))
    b = b - float(sched(t)) * mh / (np.sqrt(vh) + 1e-8)
  np.testing.assert_allclose(float(res.loss), best[0], rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(np.asarray(res.b), best[1], rtol=2e-3, atol=1e-7)
  np.testing.assert_allclose(np.asarray(res.prototype), Vn.T @ best[1], rtol=2e-3, atol=1e-5)


@pytest.mark.parametrize("method", ["iterative", "closed_form"])
def test_inversion_lowers_loss_and_keeps_best(method):
  w, V = _setup("mf")
  cfg = _cfg(method=method, steps=300)
  out = inv.invert_users(w, V, jax.random.key(0), cfg)
  keys = inv.user_keys(jax.random.key(0), jnp.arange(w.shape[0]))
  p0 = np.array([float(inv_obj.init_weights(k, N_ITEMS) @ V @ w[i]) for i, k in enumerate(keys)])
  loss0 = (5.0 - p0) ** 2
  assert np.all(np.asarray(out.loss) < 0.05 * loss0)
  np.testing.assert_allclose(np.asarray(out.loss), (5.0 - np.asarray(out.pred)) ** 2,
                             rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(np.sum(np.asarray(w) * np.asarray(out.prototypes), 1),
                             np.asarray(out.pred), atol=2e-3)


def test_best_iterate_is_kept_not_last():
  """A huge lr overshoots: the best iterate beats the final one."""
  w, V = _setup("mf", n_users=1)
  cfg = _cfg(method="iterative", steps=30, lr=0.05, warmup_steps=0)
  res = inv.invert_user(w[0], V, jax.random.key(1), cfg)
  b_final_loss = None
  # Re-run without best tracking by evaluating the iterate after the last step.
  losses = _manual_losses(w[0], V, jax.random.key(1), cfg)
  b_final_loss = losses[-1]
  assert float(res.loss) == pytest.approx(min(losses), rel=1e-4, abs=1e-6)
  assert float(res.loss) < b_final_loss
  np.testing.assert_allclose(float(w[0] @ (res.b @ V)), float(res.pred), atol=1e-3)


def _manual_losses(w, V, key, cfg):
  """Loss of every iterate of an un-stopped optax run (the reference trajectory)."""
  opt = inv_obj.make_optimizer(cfg)
  b = inv_obj.init_weights(key, V.shape[0])
  st = opt.init(b)
  f = lambda bb: inv_obj.loss_of_pred(w @ (bb @ V), cfg)

  @jax.jit
  def step(b, st):
    u, st = opt.update(jax.grad(f)(b), st, b)
    return b + u, st, f(b)

  losses = []
  for _ in range(cfg.steps):
    b, st, loss = step(b, st)
    losses.append(float(loss))
  return np.array(losses + [float(f(b))])


@pytest.mark.parametrize("method", ["iterative", "closed_form"])
def test_early_stop_freezes_user(method):
  w, V = _setup("mf", n_users=1)
  eps = 0.5
  cfg = _cfg(method=method, eps=eps)
  res = inv.invert_user(w[0], V, jax.random.key(2), cfg)
  losses = _manual_losses(w[0], V, jax.random.key(2), dataclasses.replace(cfg, eps=None))
  t_star = int(np.argmax(losses < eps))
  assert 0 < t_star < 120 and losses[t_star] < eps <= losses[:t_star].min()
  assert int(res.steps) == t_star
  np.testing.assert_allclose(float(res.loss), losses[t_star], rtol=1e-3, atol=1e-6)


def test_vmapped_equals_python_loop_and_chunking_is_invisible():
  w, V = _setup("gmf", n_users=3)
  cfg = _cfg(method="iterative", steps=40, chunk_size=2)
  key = jax.random.key(4)
  out = inv.invert_users(w, V, key, cfg)
  for i in range(w.shape[0]):
    one = inv.invert_user(w[i], V, jax.random.fold_in(key, i), cfg)
    np.testing.assert_allclose(np.asarray(out.prototypes[i]), np.asarray(one.prototype),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(out.loss[i]), float(one.loss), rtol=1e-4, atol=1e-7)
  for cs in (1,):
    other = inv.invert_users(w, V, key, dataclasses.replace(cfg, chunk_size=cs))
    np.testing.assert_allclose(np.asarray(other.prototypes), np.asarray(out.prototypes),
                               rtol=1e-5, atol=1e-6)
  cf = [inv.invert_users(w, V, key, _cfg(method="closed_form", chunk_size=cs)).prototypes
        for cs in (1, 4)]
  np.testing.assert_allclose(np.asarray(cf[0]), np.asarray(cf[1]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,extra", [
    ("mf", {}), ("gmf", {}), ("dnn", {}), ("mf", {"eps": 1e-3}), ("dnn", {"eps": 1e-3}),
    ("gmf", {"loss": "bce"}), ("mf", {"weight_decay": 1e-2})])
def test_closed_form_equals_iterative(name, extra):
  w, V = _setup(name, n_users=6)
  cfg = _cfg(steps=300, chunk_size=6, **extra)
  key = jax.random.key(5)
  it = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="iterative"))
  cf = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="auto"))
  assert cf.method == "closed_form" and it.method == "iterative"
  assert np.max(_rel(it.prototypes, cf.prototypes)) <= 1e-3
  np.testing.assert_allclose(np.asarray(cf.pred), np.asarray(it.pred), atol=1e-3)
  np.testing.assert_array_equal(np.asarray(cf.steps), np.asarray(it.steps))
  if "eps" in extra:  # some users stop early, and at least one never gets below eps
    assert np.any(np.asarray(it.steps) < 300)


def test_closed_form_with_users_that_never_reach_eps():
  w, V = _setup("mf", n_users=6)
  w = w.at[0].multiply(0.02)  # tiny user vector: 300 small steps cannot reach r
  cfg = _cfg(steps=100, chunk_size=6, eps=1e-4, lr=1e-5)
  key = jax.random.key(6)
  it = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="iterative"))
  cf = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="closed_form"))
  assert int(it.steps[0]) == 100 and float(it.loss[0]) > 1e-4
  assert np.max(_rel(it.prototypes, cf.prototypes)) <= 1e-3
  np.testing.assert_allclose(np.asarray(cf.pred), np.asarray(it.pred), atol=1e-3)
  np.testing.assert_array_equal(np.asarray(cf.steps), np.asarray(it.steps))


def test_closed_form_weights_match_iterative_b():
  w, V = _setup("mf", n_users=1)
  cfg = _cfg(steps=150)
  key = jax.random.key(8)
  it = inv.invert_user(w[0], V, key, dataclasses.replace(cfg, method="iterative"))
  cf = inv.invert_user(w[0], V, key, dataclasses.replace(cfg, method="closed_form"))
  np.testing.assert_allclose(np.asarray(cf.b), np.asarray(it.b), atol=2e-6)
  np.testing.assert_allclose(np.asarray(cf.b @ V), np.asarray(cf.prototype), rtol=1e-4,
                             atol=1e-5)


def test_sgd_closed_form_is_exact():
  w, V = _setup("mf", n_users=3, n_items=400)
  cfg = _cfg(optimizer="sgd", lr=2e-3, steps=60, weight_decay=0.05, chunk_size=3)
  key = jax.random.key(9)
  it = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="iterative"))
  cf = inv.invert_users(w, V, key, dataclasses.replace(cfg, method="closed_form"))
  assert np.all(np.asarray(it.loss) < 1e-2)
  np.testing.assert_allclose(np.asarray(cf.prototypes), np.asarray(it.prototypes),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(cf.loss), np.asarray(it.loss), rtol=1e-3, atol=1e-7)
  one_it = inv.invert_user(w[1], V, jax.random.fold_in(key, 1),
                           dataclasses.replace(cfg, method="iterative"))
  one_cf = inv.invert_user(w[1], V, jax.random.fold_in(key, 1),
                           dataclasses.replace(cfg, method="closed_form"))
  np.testing.assert_allclose(np.asarray(one_cf.b), np.asarray(one_it.b), rtol=1e-4,
                             atol=1e-8)


def test_bad_config_and_shapes():
  with pytest.raises(ValueError):
    inv.InversionConfig(loss="hinge")
  with pytest.raises(ValueError):
    inv.InversionConfig(method="magic")
  with pytest.raises(ValueError):
    inv.invert_users(jnp.zeros((2, 3)), jnp.zeros((5, 3)), jax.random.key(0),
                     inv.InversionConfig(method="closed_form"), linear_in_b=False)
  with pytest.raises(AssertionError):
    inv.invert_users(jnp.zeros((2, 4)), jnp.zeros((5, 3)), jax.random.key(0))
