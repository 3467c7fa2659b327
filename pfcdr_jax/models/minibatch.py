"""Epochs of shuffled, padded minibatches as nested ``lax.scan``s (shared training loop).

Several trainers in this project (the CMF, LightGCN, PTUPCDR, SSCDR and PriCDR
baselines, the linear prototype bridge) run the same loop: every epoch visits the
``n`` training examples once in a fresh random order, cut into minibatches of a fixed
size ``bs = min(batch_size, n)``; the last batch is padded so that every step has the
same shape (one compiled step, one ``lax.scan``). This module holds that loop once:

* :func:`padded_batches` cuts an ordering of the ``n`` examples into
  ``ceil(n / bs)`` rows of ``bs`` indices; the pad slots hold the clipped index
  ``n - 1`` (a valid row to gather) and carry ``valid = 0``.
* :func:`scan_batches` scans a step function over those rows (one epoch).
* :func:`scan_epochs` is the whole loop: ``jax.random.split(key, epochs)`` gives one
  key per epoch, ``jax.random.permutation(k, n)`` the epoch's order, and the curve is
  the per-epoch mean of the step losses.

The step function sees example *indices* only; it gathers its own data and weights
them by ``valid`` (so each caller keeps its own loss normalisation). Everything is
pure and traceable: call it inside the caller's ``jax.jit`` with static ``n``,
``batch_size`` and ``epochs``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def padded_batches(perm: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Cuts an ordering of ``n`` examples into equal minibatches, padding the last one.

  Args:
    perm: ``int[n]`` example indices in visiting order (e.g. a permutation of
      ``0..n-1``), ``n >= 1``.
    batch_size: ``bs``, static, ``1 <= bs <= n``.

  Returns:
    ``(idx int[n_batches, bs], valid float32[n_batches, bs])`` with
    ``n_batches = ceil(n / bs)``: row ``b`` holds ``perm[b*bs:(b+1)*bs]``; the
    ``n_batches * bs - n`` pad slots at the end hold index ``n - 1`` and ``valid = 0``,
    every other slot ``valid = 1``.
  """
  n = perm.shape[0]
  if not 1 <= batch_size <= n:
    raise ValueError(f"batch_size must lie in [1, n={n}], got {batch_size}")
  n_batches = -(-n // batch_size)
  pad = n_batches * batch_size - n
  full = jnp.concatenate([perm, jnp.arange(n, n + pad)]).reshape(n_batches, batch_size)
  return jnp.minimum(full, n - 1), (full < n).astype(jnp.float32)


def scan_batches(step: Callable[..., tuple[Any, Any]], carry: Any, idx: jax.Array,
                 valid: jax.Array, keys: jax.Array | None = None) -> tuple[Any, Any]:
  """One epoch: ``lax.scan`` of ``step`` over the rows of :func:`padded_batches`.

  Args:
    step: ``step(carry, idx int[bs], valid float32[bs]) -> (carry, out)``, or with
      ``keys`` given ``step(carry, idx, valid, key) -> (carry, out)``.
    carry: initial carry (any pytree, e.g. ``(params, opt_state)``).
    idx: ``int[n_batches, bs]`` example indices.
    valid: ``float32[n_batches, bs]`` 1 on real slots, 0 on padding.
    keys: optional ``[n_batches]`` PRNG keys, one per step.

  Returns:
    ``(carry, outs)`` with ``outs`` the stacked step outputs (``[n_batches, ...]``;
    ``None`` if the step returns ``None``).
  """
  xs = (idx, valid) if keys is None else (idx, valid, keys)
  return jax.lax.scan(lambda c, x: step(c, *x), carry, xs)


def scan_epochs(step: Callable[..., tuple[Any, jax.Array]], carry: Any, *, n: int,
                batch_size: int, epochs: int, key: jax.Array,
                step_keys: bool = False) -> tuple[Any, jax.Array]:
  """``epochs`` passes over ``n`` examples in shuffled, padded minibatches.

  Key usage (fixed, so results are reproducible): ``jax.random.split(key, epochs)``
  gives epoch key ``k_e``. Without ``step_keys`` the epoch's order is
  ``jax.random.permutation(k_e, n)``; with ``step_keys``,
  ``k_perm, k_steps = jax.random.split(k_e)``, the order is
  ``jax.random.permutation(k_perm, n)`` and step ``b`` of the epoch gets
  ``jax.random.split(k_steps, n_batches)[b]`` (for per-step sampling).

  Args:
    step: ``step(carry, idx int[bs], valid float32[bs]) -> (carry, loss [])``; with
      ``step_keys``, ``step(carry, idx, valid, key)``. ``idx`` holds the example
      indices of one minibatch (pad slots: ``n - 1``), ``valid`` marks real slots
      (1) and padding (0); ``bs = min(batch_size, n)`` is static (``idx.shape[0]``).
    carry: initial carry (any pytree, e.g. ``(params, opt_state)``).
    n: number of examples, ``>= 1`` (static).
    batch_size: requested minibatch size, ``>= 1`` (static); capped at ``n``.
    epochs: number of passes (static).
    key: PRNG key for the shuffles (and the step keys).
    step_keys: pass a fresh PRNG key to every step.

  Returns:
    ``(carry, curve float32[epochs])``: the final carry and, per epoch, the mean of
    the ``ceil(n / bs)`` step losses.
  """
  if n < 1 or batch_size < 1:
    raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
  bs = min(batch_size, n)

  def epoch(carry, k):
    if step_keys:
      k, k_steps = jax.random.split(k)
    idx, valid = padded_batches(jax.random.permutation(k, n), bs)
    keys = jax.random.split(k_steps, idx.shape[0]) if step_keys else None
    carry, losses = scan_batches(step, carry, idx, valid, keys)
    return carry, losses.mean()

  return jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
