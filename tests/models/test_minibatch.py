"""Tests of the shared shuffled-minibatch epoch loop (pfcdr_jax.models.minibatch)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.models import minibatch


@pytest.mark.parametrize("n,bs", [(10, 4), (12, 4), (7, 7), (5, 1)])
def test_padded_batches_layout(n, bs):
  perm = jax.random.permutation(jax.random.key(0), n)
  idx, valid = minibatch.padded_batches(perm, bs)
  n_batches = -(-n // bs)
  assert idx.shape == valid.shape == (n_batches, bs)
  assert valid.dtype == jnp.float32
  flat_idx, flat_valid = np.asarray(idx).ravel(), np.asarray(valid).ravel()
  np.testing.assert_array_equal(flat_idx[:n], np.asarray(perm))  # order kept
  np.testing.assert_array_equal(flat_valid[:n], 1.0)
  np.testing.assert_array_equal(flat_valid[n:], 0.0)  # pad entries are invalid ...
  np.testing.assert_array_equal(flat_idx[n:], n - 1)  # ... and hold the clipped index


def test_padded_batches_rejects_bad_batch_size():
  with pytest.raises(ValueError, match="batch_size"):
    minibatch.padded_batches(jnp.arange(3), 4)
  with pytest.raises(ValueError, match="batch_size"):
    minibatch.padded_batches(jnp.arange(3), 0)


def _visit_counter(n_batches):
  """Step recording (idx, valid) per epoch in a ``[epochs, n]`` count matrix."""
  def step(carry, idx, valid, *key):
    t, counts, pad_seen = carry
    counts = counts.at[t // n_batches, idx].add(valid)
    pad_seen = pad_seen + jnp.sum(1.0 - valid)
    return (t + 1, counts, pad_seen), jnp.sum(valid)
  return step


@pytest.mark.parametrize("step_keys", [False, True])
@pytest.mark.parametrize("n,bs", [(10, 4), (12, 4), (6, 50)])
def test_every_example_once_per_epoch(n, bs, step_keys):
  epochs = 3
  eff_bs = min(bs, n)
  n_batches = -(-n // eff_bs)
  carry = (jnp.int32(0), jnp.zeros((epochs, n)), jnp.float32(0.0))
  (t, counts, pad_seen), curve = minibatch.scan_epochs(
      _visit_counter(n_batches), carry, n=n, batch_size=bs, epochs=epochs,
      key=jax.random.key(1), step_keys=step_keys)
  assert int(t) == epochs * n_batches
  np.testing.assert_array_equal(np.asarray(counts), 1.0)
  assert float(pad_seen) == epochs * (n_batches * eff_bs - n)
  # One curve entry per epoch: the mean over the epoch's steps of the valid count.
  assert curve.shape == (epochs,)
  np.testing.assert_allclose(np.asarray(curve), n / n_batches, rtol=1e-6)


@pytest.mark.parametrize("step_keys", [False, True])
def test_key_usage_is_the_documented_one(step_keys):
  n, bs, epochs = 9, 4, 4
  key = jax.random.key(7)

  def step(carry, idx, valid, *k):
    seen, keys, t = carry
    seen = seen.at[t].set(idx)
    if k:
      keys = keys.at[t].set(jax.random.key_data(k[0]))
    return (seen, keys, t + 1), 0.0

  n_batches = -(-n // bs)
  kd_shape = jax.random.key_data(key).shape
  carry = (jnp.zeros((epochs * n_batches, bs), jnp.int32),
           jnp.zeros((epochs * n_batches, *kd_shape), jax.random.key_data(key).dtype),
           jnp.int32(0))
  (seen, keys, _), _ = minibatch.scan_epochs(step, carry, n=n, batch_size=bs, epochs=epochs,
                                             key=key, step_keys=step_keys)
  seen = np.asarray(seen).reshape(epochs, -1)
  keys = np.asarray(keys).reshape(epochs, n_batches, *kd_shape)
  for e, k in enumerate(jax.random.split(key, epochs)):
    if step_keys:
      k, k_steps = jax.random.split(k)
      np.testing.assert_array_equal(
          keys[e], np.asarray(jax.random.key_data(jax.random.split(k_steps, n_batches))))
    want = np.asarray(jax.random.permutation(k, n))
    np.testing.assert_array_equal(seen[e, :n], want)
    np.testing.assert_array_equal(seen[e, n:], n - 1)


def test_least_squares_sgd_matches_numpy_reference():
  n, d, bs, epochs, lr = 10, 3, 4, 5, 0.05
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)).astype(np.float32)
  key = jax.random.key(3)
  xj, yj = jnp.asarray(x), jnp.asarray(y)

  def step(w, j, valid):
    def loss(w):
      err = xj[j] @ w - yj[j]
      return jnp.sum(valid * err ** 2) / jnp.sum(valid)
    value, g = jax.value_and_grad(loss)(w)
    return w - lr * g, value

  run = jax.jit(functools.partial(minibatch.scan_epochs, step, n=n, batch_size=bs,
                                  epochs=epochs))
  w, curve = run(jnp.zeros(d), key=key)

  # Hand-written reference: same shuffles, plain numpy SGD on the real rows only.
  w_ref, curve_ref = np.zeros(d), []
  for k in jax.random.split(key, epochs):
    perm = np.asarray(jax.random.permutation(k, n))
    losses = []
    for b in range(0, n, bs):
      rows = perm[b:b + bs]
      err = x[rows] @ w_ref - y[rows]
      losses.append(np.mean(err ** 2))
      w_ref = w_ref - lr * 2.0 * x[rows].T @ err / rows.size
    curve_ref.append(np.mean(losses))
  np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(curve), curve_ref, rtol=1e-5)
  assert curve_ref[-1] < curve_ref[0]  # it does fit


def test_scan_epochs_rejects_empty_problem():
  with pytest.raises(ValueError, match="n >= 1"):
    minibatch.scan_epochs(lambda c, i, v: (c, 0.0), 0, n=0, batch_size=4, epochs=1,
                          key=jax.random.key(0))
