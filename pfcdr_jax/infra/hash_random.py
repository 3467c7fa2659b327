"""A cheap counter-based normal draw: a 32-bit integer hash of (key, position).

The inversion draws ``b_0 = softmax(z)`` over every item for every user (Eq. 5): at
the paper's music2movie size that is ~1.2e9 normals per domain, and with
``jax.random.normal`` (threefry-2x32, 20 rounds per pair of words) the draw is
most of the closed-form inversion on CPU. This module draws the same distribution
from a much cheaper counter-based generator:

  bits_j = h(h(j * 0x9E3779B9 + k0) ^ k1),   h = "lowbias32" (three xor-shifts and
  two multiplies, a constant set found by C. Wellons' hash-prospector search)

for position ``j`` and the two 32-bit words ``(k0, k1)`` of a JAX PRNG key (what
``jax.random.key_data`` returns: user keys still come from ``fold_in``, so a
user's draw depends only on its key, not on the chunk it is drawn in). The top 23
bits become a uniform in [-1, 1) and ``z = sqrt(2) erfinv(u)`` as
``jax.random.normal`` does. Statistical checks (moments, Kolmogorov-Smirnov,
lag-1 and cross-key correlation, byte uniformity) are in
``tests/infra/test_hash_random.py``; it is not a cryptographic generator and is meant
for random initialisation only. Measured against threefry in BUILD_NOTES §3, PFCDR
kernels ("b0 draw").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_GOLDEN = np.uint32(0x9E3779B9)


def _lowbias32(x: jax.Array) -> jax.Array:
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def key_words(key: jax.Array) -> jax.Array:
  """The two uint32 words of a threefry PRNG key (typed or raw uint32[2])."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  if key.shape[-1:] != (2,) or key.dtype != jnp.uint32:
    raise ValueError(f"expected a threefry key (2 uint32 words), got {key.dtype}{key.shape}")
  return key


def bits(key: jax.Array, n: int) -> jax.Array:
  """uint32[n]: the hash of positions 0..n-1 under ``key`` (one key, not batched)."""
  k = key_words(key)
  x = _lowbias32(lax.iota(jnp.uint32, n) * _GOLDEN + k[0])
  return _lowbias32(x ^ k[1])


def normal(key: jax.Array, n: int) -> jax.Array:
  """float32[n] standard normal draws (vmap over keys for a batch of users)."""
  mant = (bits(key, n) >> 9) | jnp.uint32(0x3F800000)     # a float in [1, 2)
  u = lax.bitcast_convert_type(mant, jnp.float32) * 2.0 - 3.0   # [-1, 1)
  u = jnp.maximum(np.nextafter(np.float32(-1), np.float32(0)), u)
  return np.float32(np.sqrt(2.0)) * lax.erf_inv(u)
