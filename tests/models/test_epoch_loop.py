"""minibatch.optimize_epochs (the one epoch loop) against a plain numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.models import minibatch


def _problem(n=13, d=3, seed=0):
  rng = np.random.default_rng(seed)
  X = rng.normal(size=(n, d)).astype(np.float32)
  y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.1 * rng.normal(size=n)).astype(np.float32)
  return X, y


def _loss_and_grad(X, y):
  def loss(w, idx, valid):
    err = (jnp.asarray(X)[idx] @ w - jnp.asarray(y)[idx]) * valid
    return jnp.sum(err ** 2) / jnp.maximum(jnp.sum(valid), 1.0)
  return jax.value_and_grad(loss)


def test_full_batch_in_order_equals_numpy_gradient_descent():
  X, y = _problem()
  lr, epochs = 0.05, 25
  w, curve = minibatch.optimize_epochs(_loss_and_grad(X, y), jnp.zeros(3), optax.sgd(lr),
                                       n=X.shape[0], batch_size=X.shape[0], epochs=epochs,
                                       key=jax.random.PRNGKey(0), shuffle=False)
  w_np = np.zeros(3)
  for _ in range(epochs):
    w_np -= lr * 2 * X.T @ (X @ w_np - y) / X.shape[0]
  np.testing.assert_allclose(np.asarray(w), w_np, rtol=1e-4, atol=1e-5)
  assert curve.shape == (epochs,) and curve[-1] < curve[0]


def test_shuffled_minibatches_learn_and_depend_only_on_the_key():
  X, y = _problem(n=50)
  run = lambda key: minibatch.optimize_epochs(
      _loss_and_grad(X, y), jnp.zeros(3), optax.adam(0.05), n=X.shape[0], batch_size=8,
      epochs=40, key=key)
  w1, _ = run(jax.random.PRNGKey(1))
  w1b, _ = run(jax.random.PRNGKey(1))
  w2, _ = run(jax.random.PRNGKey(2))
  np.testing.assert_array_equal(np.asarray(w1), np.asarray(w1b))
  assert not np.array_equal(np.asarray(w1), np.asarray(w2))
  w_ls = np.linalg.lstsq(X, y, rcond=None)[0]
  np.testing.assert_allclose(np.asarray(w1), w_ls, atol=0.1)   # untrained: w = 0, far off
  assert np.max(np.abs(w_ls)) > 0.5
