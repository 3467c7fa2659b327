"""User-profile crafting: clip a time-ordered profile around the target item.

Section 4.4: the crafting action ``a^l = w`` in W = {10%, ..., 100%} keeps a
window of about ``w`` of the profile centred on the target item, so the items
interacted with around the same time as v* survive. Worked example of the paper
(a test checks it): ``v1..v10`` with v* = v5 and w = 50% gives ``v3..v7``.

Window rule: keep ``L' = ceil(level * L / 10)`` items (at least one); ``(L'-1)//2``
of them before v* and the rest after it, shifted inwards when the window would
leave the profile. A profile without v* is clipped around its middle.
"""
from __future__ import annotations

import chex
import jax.numpy as jnp

N_LEVELS = 10  # |W|: 10%, 20%, ..., 100%


def keep_length(level: jnp.ndarray, length: jnp.ndarray) -> jnp.ndarray:
  """Number of items kept, ``ceil(level * length / 10)`` clipped to [1, length].

  Integer arithmetic avoids ``0.3 * 10 = 3.0000000000000004`` style rounding.

  Args:
    level: int32[] in 1..10 (10% steps).
    length: int32[] profile length L >= 0.

  Returns:
    int32[].
  """
  keep = (level * length + N_LEVELS - 1) // N_LEVELS
  return jnp.clip(keep, jnp.minimum(1, length), length)


def clip_profile(profile: jnp.ndarray, length: jnp.ndarray, target: jnp.ndarray,
                 level: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Clips one time-ordered profile to a window around the target (Sec. 4.4).

  Args:
    profile: int32[L_max] item ids in time order, -1 after ``length``.
    length: int32[] number of valid items.
    target: int32[] target item v*.
    level: int32[] crafting action in 1..10 (10% .. 100%).

  Returns:
    (clipped int32[L_max] left-aligned and -1 padded, new length int32[]).
  """
  chex.assert_rank([profile, length, target, level], [1, 0, 0, 0])
  l_max = profile.shape[0]
  pos_idx = jnp.arange(l_max)
  is_target = (profile == target) & (pos_idx < length)
  pos = jnp.where(is_target.any(), jnp.argmax(is_target), (length - 1) // 2)
  keep = keep_length(level, length)
  start = jnp.clip(pos - (keep - 1) // 2, 0, jnp.maximum(length - keep, 0))
  src = jnp.minimum(start + pos_idx, l_max - 1)
  out = jnp.where(pos_idx < keep, profile[src], -1)
  return out.astype(profile.dtype), keep.astype(jnp.int32)
