"""Linear prototype bridge (Eq. 12)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.pfcdr import bridge


def _planted(n=400, d=6, noise=0.0, seed=0):
  rng = np.random.default_rng(seed)
  W = rng.normal(size=(d, d)) / np.sqrt(d)
  P_src = rng.normal(size=(n, d))
  P_tgt = P_src @ W + noise * rng.normal(size=(n, d))
  return P_src.astype(np.float32), P_tgt.astype(np.float32), W


def test_recovers_planted_map_noise_free_full_batch():
  P_src, P_tgt, W = _planted()
  W_hat = bridge.fit_linear_bridge(jnp.asarray(P_src), jnp.asarray(P_tgt), jax.random.key(0),
                                   lr=0.005, epochs=3000, batch_size=None)
  np.testing.assert_allclose(np.asarray(W_hat), W, atol=2e-3)


def test_recovers_planted_map_noisy_minibatch():
  P_src, P_tgt, W = _planted(n=2000, noise=0.1, seed=1)
  W_hat = bridge.fit_linear_bridge(jnp.asarray(P_src), jnp.asarray(P_tgt), jax.random.key(1),
                                   lr=0.005, epochs=60, batch_size=128)
  W_ls = np.linalg.lstsq(P_src, P_tgt, rcond=None)[0]  # numpy reference
  np.testing.assert_allclose(np.asarray(W_hat), W_ls, atol=2e-2)
  np.testing.assert_allclose(np.asarray(W_hat), W, atol=3e-2)


def test_apply_and_loss_match_numpy():
  P_src, P_tgt, W = _planted(n=10)
  W = W.astype(np.float32)
  np.testing.assert_allclose(np.asarray(bridge.apply_bridge(W, P_src)), P_src @ W, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(float(bridge.bridge_loss(W, P_src, P_tgt + 1.0)), 1.0, rtol=1e-5)


def test_shapes_checked():
  with pytest.raises(AssertionError):
    bridge.fit_linear_bridge(jnp.zeros((5, 3)), jnp.zeros((4, 3)), jax.random.key(0))
