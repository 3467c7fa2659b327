"""Eq. (13): the distances the top-k matching ranks target users by.

For a cold user's transferred prototype ``P_hat`` and a target user ``t``, how far
``w_t . P_hat`` (t's predicted rating of the prototype) is from the inversion's
target rating ``r``; every selection kernel of :mod:`topk` orders by it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def match_distances(P_hat: jax.Array, W_tgt: jax.Array, r: float | jax.Array) -> jax.Array:
  """Eq. (13) distances ``|r - P_hat @ W_tgt^T|``: [C, d] x [T, d] -> [C, T].

  How far target user t's predicted rating of cold user c's transferred prototype is
  from the inversion's target rating r; every top-k kernel ranks by it. NaN (a
  diverged prototype or representation) becomes +inf, so all kernels order it alike.
  """
  d = jnp.abs(r - P_hat @ W_tgt.T)
  return jnp.where(jnp.isnan(d), jnp.inf, d)


def match_scores(P_hat: jax.Array, W_tgt: jax.Array, valid: jax.Array,
                 r: float | jax.Array) -> jax.Array:
  """Negated Eq. (13) distances, ``-match_distances``, -inf where invalid.

  Args:
    P_hat: [C, d] transferred prototypes.
    W_tgt: [T, d] target user representations.
    valid: bool[T].
    r: the inversion's target rating.

  Returns:
    [C, T] scores (higher is closer).
  """
  return jnp.where(valid[None, :], -match_distances(P_hat, W_tgt, r), -jnp.inf)
