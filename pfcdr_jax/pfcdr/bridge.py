"""Linear prototype bridge (Eq. 12, Algorithm 1 lines 14-16).

``f_map(P) = P @ W`` with ``W`` [d, d] and no bias, fitted by Adam (lr 0.005) on
the mean squared error between ``P_src @ W`` and ``P_tgt`` over the training
overlap users. ``W`` starts like torch's ``nn.Linear`` weight,
U(-1/sqrt(d), 1/sqrt(d)). The epochs are the shared minibatch loop
(:func:`pfcdr_jax.models.minibatch.optimize_epochs`): a ``lax.scan`` over epochs of
an inner ``lax.scan`` over minibatches (a fresh permutation per epoch, from
``fold_in(key, epoch)``; last batch padded and masked); ``batch_size=None`` means
full batch, visited in order.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

from pfcdr_jax.models import minibatch


def bridge_loss(W: jax.Array, P_src: jax.Array, P_tgt: jax.Array,
                mask: jax.Array | None = None) -> jax.Array:
  """Eq. (12) mean squared error of ``P_src @ W`` against ``P_tgt``. Returns []."""
  err = (P_src @ W - P_tgt) ** 2                      # [n, d]
  if mask is None:
    return jnp.mean(err)
  return jnp.sum(err * mask[:, None]) / jnp.maximum(jnp.sum(mask) * err.shape[1], 1.0)


def apply_bridge(W: jax.Array, P: jax.Array) -> jax.Array:
  """Transfers prototypes: ``P_hat = P @ W``. P: [n, d], W: [d, d] -> [n, d]."""
  return P @ W


def fit_linear_bridge(P_src: jax.Array, P_tgt: jax.Array, key: jax.Array, *,
                      lr: float = 0.005, epochs: int = 200,
                      batch_size: int | None = 256) -> jax.Array:
  """Fits the linear bridge of Eq. (12).

  Args:
    P_src: [n, d] source prototypes of the training overlap users.
    P_tgt: [n, d'] their target prototypes.
    key: PRNG key (init and shuffles).
    lr: Adam learning rate (paper: 0.005).
    epochs: passes over the n users.
    batch_size: minibatch size; None or >= n means full batch.

  Returns:
    W: [d, d'] bridge weights.
  """
  chex.assert_rank([P_src, P_tgt], [2, 2])
  chex.assert_equal_shape_prefix([P_src, P_tgt], 1)
  return _fit(jnp.asarray(P_src, jnp.float32), jnp.asarray(P_tgt, jnp.float32), key,
              lr=float(lr), epochs=int(epochs),
              batch_size=None if batch_size is None else int(batch_size))


FIT_STATIC = ("lr", "epochs", "batch_size")


def _fit_impl(P_src, P_tgt, key, *, lr, epochs, batch_size):
  """The jitted body of ``fit_linear_bridge`` (``_fit``): init, then Adam epochs."""
  n, d = P_src.shape
  d_out = P_tgt.shape[1]
  bs = n if batch_size is None or batch_size >= n else batch_size
  k_init, k_shuffle = jax.random.split(key)
  bound = 1.0 / jnp.sqrt(jnp.float32(d))
  W = jax.random.uniform(k_init, (d, d_out), jnp.float32, -bound, bound)
  grad_fn = jax.grad(bridge_loss)

  def loss_and_grad(W, idx, valid):
    return None, grad_fn(W, P_src[idx], P_tgt[idx], valid)

  # Full batch: no shuffle. Epoch keys come from fold_in (not split) to keep past
  # results; pad slots gather row n-1 (was row 0) but are masked, so W is unchanged.
  W, _ = minibatch.optimize_epochs(loss_and_grad, W, optax.adam(lr), n=n, batch_size=bs,
                                   epochs=epochs, key=k_shuffle, shuffle=bs < n,
                                   fold_in_epochs=True)
  return W


# Module level, so that a test can jit ``_fit_impl`` under ``chex.assert_max_traces``.
_fit = jax.jit(_fit_impl, static_argnames=FIT_STATIC)
