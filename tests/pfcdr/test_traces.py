"""Retrace guards on the hot jitted kernels; small kernels jitted and not vs numpy.

``chex.assert_max_traces`` must wrap the Python function before ``jax.jit``. Each
hot kernel is therefore a module-level function (``inversion._invert_chunks_impl``,
``topk._neighbors_kernel``, ``bridge._fit_impl``) jitted once at module level with
its static arguments (``*_STATIC``); a test jits the guarded function the same way,
swaps it in with ``monkeypatch`` and calls the PUBLIC wrapper twice with the same
shapes and new values. A third call with a new shape must trip the guard (so the
guard is known to be live). The pretraining epoch has its guard in test_train.py.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from pfcdr_jax.pfcdr import bridge
from pfcdr_jax.pfcdr import inversion
from pfcdr_jax.pfcdr import inversion_objective
from pfcdr_jax.pfcdr import topk
from pfcdr_jax.pfcdr import topk_distances


@pytest.fixture(autouse=True)
def _fresh_trace_counter():
  chex.clear_trace_counter()
  yield
  chex.clear_trace_counter()


def _guard(monkeypatch, module, jitted_name, impl, static):
  """Replaces ``module.jitted_name`` by ``jit(assert_max_traces(impl, n=1))``."""
  monkeypatch.setattr(module, jitted_name,
                      jax.jit(chex.assert_max_traces(impl, n=1), static_argnames=static))


def _data(seed, *shapes):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=s), jnp.float32) for s in shapes]


@pytest.mark.parametrize("method", ["closed_form", "iterative"])
def test_invert_users_traces_once(monkeypatch, method):
  _guard(monkeypatch, inversion, "_invert_chunks", inversion._invert_chunks_impl,
         inversion.INVERT_STATIC)
  cfg = inversion.InversionConfig(steps=5, method=method, chunk_size=4)
  for seed in (0, 1):
    w, V = _data(seed, (10, 3), (20, 3))
    out = inversion.invert_users(w, V, jax.random.key(seed), cfg)
    assert out.prototypes.shape == (10, 3)
  with pytest.raises(AssertionError, match="traced > 1"):
    inversion.invert_users(w[:9], V, jax.random.key(0), cfg)


@pytest.mark.parametrize("method", ["top_k", "threshold"])
def test_select_neighbors_traces_once(monkeypatch, method):
  _guard(monkeypatch, topk, "neighbors_kernel", topk._neighbors_kernel,
         topk.NEIGHBORS_STATIC)
  valid = np.arange(50) % 5 != 0
  for seed in (0, 1):
    P, W = _data(seed, (9, 3), (50, 3))
    idx = topk.select_neighbors(P, W, valid, r=0.5 + seed, k=6, chunk_size=4,
                                method=method)
    assert idx.shape == (9, 6)
  with pytest.raises(AssertionError, match="traced > 1"):
    topk.select_neighbors(P[:8], W, valid, r=0.5, k=6, chunk_size=4, method=method)


def test_fit_linear_bridge_traces_once(monkeypatch):
  _guard(monkeypatch, bridge, "_fit", bridge._fit_impl, bridge.FIT_STATIC)
  for seed in (0, 1):
    P_src, P_tgt = _data(seed, (12, 3), (12, 3))
    W = bridge.fit_linear_bridge(P_src, P_tgt, jax.random.key(seed), epochs=3, batch_size=5)
    assert W.shape == (3, 3)
  with pytest.raises(AssertionError, match="traced > 1"):
    bridge.fit_linear_bridge(P_src[:11], P_tgt[:11], jax.random.key(0), epochs=3,
                             batch_size=5)


def _np_invert_sgd(w, V, b0, cfg):
  """Algorithm 1 with SGD written out: coupled decay, best iterate, MSE loss."""
  sched = inversion_objective.schedule(cfg)
  b, best = b0.astype(np.float64), (np.inf, None, None)
  for t in range(cfg.steps + 1):
    pred = float(b @ V @ w)
    loss = (cfg.target_rating - pred) ** 2
    if loss < best[0]:
      best = (loss, b @ V, pred)
    if t < cfg.steps:
      grad = -2.0 * (cfg.target_rating - pred) * (V @ w) + cfg.weight_decay * b
      b = b - float(sched(t)) * grad
  return best


class SmallKernelsTest(chex.TestCase, parameterized.TestCase):
  """Per-example kernels, with and without an enclosing ``jax.jit``, vs numpy."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_match_scores(self):
    P, W = (np.asarray(x) for x in _data(0, (4, 3), (7, 3)))
    valid = np.array([1, 0, 1, 1, 0, 1, 1], bool)
    got = self.variant(topk_distances.match_scores)(P, W, valid, jnp.float32(2.0))
    want = np.where(valid[None, :], -np.abs(2.0 - P @ W.T), -np.inf)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_predict_from_neighbors(self):
    mean_w, V = (np.asarray(x) for x in _data(1, (5, 3), (8, 3)))
    items = np.array([0, 7, 3, 3, 1], np.int32)
    got = self.variant(topk.predict_from_neighbors)(mean_w, V, items)
    np.testing.assert_allclose(np.asarray(got), np.sum(mean_w * V[items], 1), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(False, True)
  def test_bridge_loss(self, masked):
    W, P_src, P_tgt = (np.asarray(x) for x in _data(2, (3, 4), (6, 3), (6, 4)))
    mask = np.array([1, 1, 0, 1, 0, 1], np.float32) if masked else None
    got = self.variant(bridge.bridge_loss)(W, P_src, P_tgt, mask)
    err = (P_src @ W - P_tgt) ** 2
    want = err.mean() if mask is None else (err * mask[:, None]).sum() / (mask.sum() * 4)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters("mse", "bce")
  def test_loss_of_pred(self, loss):
    cfg = inversion.InversionConfig(loss=loss, target_rating=4.0)
    pred = np.array([-2.0, 0.0, 3.5, 9.0], np.float32)
    got = self.variant(lambda p: inversion_objective.loss_of_pred(p, cfg))(pred)
    y = 4.0 / 5.0
    want = ((4.0 - pred) ** 2 if loss == "mse"
            else y * np.logaddexp(0.0, -pred) + (1 - y) * np.logaddexp(0.0, pred))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_invert_user_closed_form_sgd(self):
    # The SGD closed form is exact, so it must match the plain loop.
    cfg = inversion.InversionConfig(steps=30, lr=0.05, warmup_steps=3, optimizer="sgd",
                                    method="closed_form")
    w, V = (np.asarray(x) for x in _data(3, (3,), (12, 3)))
    key = jax.random.key(4)
    res = self.variant(lambda w, V, k: inversion.invert_user(w, V, k, cfg))(w, V, key)
    b0 = np.asarray(inversion_objective.init_weights(key, 12), np.float64)
    loss, proto, pred = _np_invert_sgd(w.astype(np.float64), V.astype(np.float64), b0, cfg)
    np.testing.assert_allclose(np.asarray(res.prototype), proto, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(res.pred), pred, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(res.loss), loss, rtol=1e-3, atol=1e-6)
    assert int(res.steps) == cfg.steps
