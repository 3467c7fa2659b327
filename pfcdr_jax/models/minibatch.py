"""Epochs of shuffled, padded minibatches as nested ``lax.scan``s (shared training loop).

Every trainer in this project (the CMF, LightGCN, PTUPCDR, SSCDR and PriCDR
baselines, the linear prototype bridge, the scorer pretraining) runs the same loop:
every epoch visits the ``n`` training examples once in a fresh random order, cut into
minibatches of a fixed size ``bs = min(batch_size, n)``; the last batch is padded so that every step has the
same shape (one compiled step, one ``lax.scan``). This module holds that loop once:

* :func:`padded_batches` cuts an ordering of the ``n`` examples into
  ``ceil(n / bs)`` rows of ``bs`` indices; the pad slots hold the clipped index
  ``n - 1`` (a valid row to gather) and carry ``valid = 0``.
* :func:`scan_batches` scans a step function over those rows.
* :func:`run_epoch` is one epoch: ``jax.random.permutation(k, n)`` (or the identity
  order) cut by :func:`padded_batches` and scanned; the scorer pretraining calls it
  once per epoch from a host loop (it evaluates and logs between epochs).
* :func:`scan_epochs` is the whole loop as a ``lax.scan`` of :func:`run_epoch`:
  ``jax.random.split(key, epochs)`` (or ``fold_in(key, e)``) gives one key per epoch,
  and the curve is the per-epoch mean of the step losses.
* :func:`optimize_epochs` is :func:`scan_epochs` with the step of an ``optax``
  optimiser built in: the caller only gives its minibatch loss and gradient.

The step function sees example *indices* only; it gathers its own data and weights
them by ``valid`` (so each caller keeps its own loss normalisation). Everything is
pure and traceable: call it inside the caller's ``jax.jit`` with static ``n``,
``batch_size`` and ``epochs``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


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


def _capped_batch_size(n: int, batch_size: int) -> int:
  """``min(batch_size, n)``, after checking ``n >= 1`` and ``batch_size >= 1``."""
  if n < 1 or batch_size < 1:
    raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
  return min(batch_size, n)


def run_epoch(step: Callable[..., tuple[Any, Any]], carry: Any, key: jax.Array, *, n: int,
              batch_size: int, shuffle: bool = True,
              step_keys: bool = False) -> tuple[Any, Any]:
  """One pass over ``n`` examples in (shuffled) padded minibatches.

  Key usage: without ``step_keys`` the order is ``jax.random.permutation(key, n)``;
  with ``step_keys``, ``k_perm, k_steps = jax.random.split(key)``, the order is
  ``jax.random.permutation(k_perm, n)`` and step ``b`` gets
  ``jax.random.split(k_steps, n_batches)[b]``. ``shuffle=False`` visits ``0..n-1``
  in order (the key only feeds the step keys).

  Args:
    step: ``step(carry, idx int[bs], valid float32[bs]) -> (carry, loss [] or None)``;
      with ``step_keys``, ``step(carry, idx, valid, key)``. ``bs = min(batch_size, n)``.
    carry: initial carry (any pytree).
    key: PRNG key of this epoch.
    n: number of examples, ``>= 1`` (static).
    batch_size: requested minibatch size, ``>= 1`` (static); capped at ``n``.
    shuffle: visit the examples in a random order.
    step_keys: pass a fresh PRNG key to every step.

  Returns:
    ``(carry, loss)``: the carry after the epoch and the mean of the
    ``ceil(n / bs)`` step losses (``None`` when the step returns ``None``).
  """
  bs = _capped_batch_size(n, batch_size)
  if step_keys:
    key, k_steps = jax.random.split(key)
  perm = jax.random.permutation(key, n) if shuffle else jnp.arange(n)
  idx, valid = padded_batches(perm, bs)
  keys = jax.random.split(k_steps, idx.shape[0]) if step_keys else None
  carry, losses = scan_batches(step, carry, idx, valid, keys)
  return carry, jax.tree_util.tree_map(jnp.mean, losses)


def scan_epochs(step: Callable[..., tuple[Any, Any]], carry: Any, *, n: int,
                batch_size: int, epochs: int, key: jax.Array, step_keys: bool = False,
                shuffle: bool = True, fold_in_epochs: bool = False) -> tuple[Any, Any]:
  """``epochs`` passes of :func:`run_epoch` as one ``lax.scan``.

  Key usage (fixed, so results are reproducible): epoch ``e`` runs
  :func:`run_epoch` with ``k_e = jax.random.split(key, epochs)[e]``, or with
  ``k_e = jax.random.fold_in(key, e)`` when ``fold_in_epochs``.

  Args:
    step: ``step(carry, idx int[bs], valid float32[bs]) -> (carry, loss [])`` (or
      ``None`` for no curve); with ``step_keys``, ``step(carry, idx, valid, key)``.
      ``idx`` holds the example indices of one minibatch (pad slots: ``n - 1``),
      ``valid`` marks real slots (1) and padding (0); ``bs = min(batch_size, n)`` is
      static (``idx.shape[0]``).
    carry: initial carry (any pytree, e.g. ``(params, opt_state)``).
    n: number of examples, ``>= 1`` (static).
    batch_size: requested minibatch size, ``>= 1`` (static); capped at ``n``.
    epochs: number of passes (static).
    key: PRNG key for the shuffles (and the step keys).
    step_keys: pass a fresh PRNG key to every step.
    shuffle: visit the examples in a fresh random order each epoch (else in order).
    fold_in_epochs: derive the epoch keys by ``fold_in`` rather than ``split``.

  Returns:
    ``(carry, curve float32[epochs])``: the final carry and, per epoch, the mean of
    the ``ceil(n / bs)`` step losses (``None`` when the step returns ``None``).
  """
  _capped_batch_size(n, batch_size)
  if fold_in_epochs:
    keys = jax.vmap(lambda e: jax.random.fold_in(key, e))(jnp.arange(epochs))
  else:
    keys = jax.random.split(key, epochs)

  def epoch(c, k):
    return run_epoch(step, c, k, n=n, batch_size=batch_size, shuffle=shuffle,
                     step_keys=step_keys)

  return jax.lax.scan(epoch, carry, keys)


def optimize_epochs(loss_and_grad: Callable[..., tuple[Any, Any]], params: Any,
                    opt: optax.GradientTransformation, *, n: int, batch_size: int,
                    epochs: int, key: jax.Array, step_keys: bool = False,
                    shuffle: bool = True, fold_in_epochs: bool = False) -> tuple[Any, Any]:
  """Minibatch training with ``opt``: :func:`scan_epochs` of one optimiser step.

  Each step computes ``loss, grads = loss_and_grad(params, idx, valid[, key])`` on
  its minibatch, then ``updates, state = opt.update(grads, state, params)`` and
  ``params = optax.apply_updates(params, updates)``, starting from
  ``opt.init(params)``.

  Args:
    loss_and_grad: ``(params, idx int[bs], valid float32[bs][, key]) -> (loss [] or
      None, grads)``; ``valid`` weights the real slots (see :func:`scan_epochs`).
    params: initial parameters (any pytree).
    opt: the optimiser.
    n, batch_size, epochs, key, step_keys, shuffle, fold_in_epochs: the loop, as in
      :func:`scan_epochs`.

  Returns:
    ``(params, curve float32[epochs])`` (curve ``None`` when the loss is ``None``).
  """
  def step(carry, *batch):
    p, state = carry
    loss, grads = loss_and_grad(p, *batch)
    updates, state = opt.update(grads, state, p)
    return (optax.apply_updates(p, updates), state), loss

  (params, _), curve = scan_epochs(step, (params, opt.init(params)), n=n,
                                   batch_size=batch_size, epochs=epochs, key=key,
                                   step_keys=step_keys, shuffle=shuffle,
                                   fold_in_epochs=fold_in_epochs)
  return params, curve
