"""Tests of the crafting clip (Section 4.4) against a plain Python reference."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.copyattack import crafting


def _pad(items, l_max=16):
  row = np.full(l_max, -1, np.int32)
  row[:len(items)] = items
  return jnp.asarray(row), jnp.int32(len(items))


def test_paper_worked_example():
  # P = v1 -> ... -> v5* -> ... -> v10, a^l = 50%  ->  v3 -> ... -> v7.
  row, n = _pad(list(range(1, 11)))
  out, k = crafting.clip_profile(row, n, jnp.int32(5), jnp.int32(5))
  assert int(k) == 5
  assert np.asarray(out)[:5].tolist() == [3, 4, 5, 6, 7]
  assert (np.asarray(out)[5:] == -1).all()


def _reference(items, target, level):
  n = len(items)
  keep = min(n, max(1, math.ceil(level * n / 10)))
  pos = items.index(target) if target in items else (n - 1) // 2
  start = pos - (keep - 1) // 2
  start = min(max(start, 0), n - keep)
  return items[start:start + keep]


@pytest.mark.parametrize("with_jit", [True, False])
def test_matches_reference(with_jit):
  rng = np.random.default_rng(0)
  cases = []
  for n, level in itertools.product(range(1, 14), range(1, 11)):
    items = rng.permutation(100)[:n].tolist()
    target = items[rng.integers(n)] if rng.random() < 0.9 else 999
    cases.append((items, target, level))
  rows, lens = zip(*[_pad(c[0]) for c in cases])
  fn = jax.vmap(crafting.clip_profile)
  if with_jit:
    fn = jax.jit(fn)
  out, k = fn(jnp.stack(rows), jnp.stack(lens),
              jnp.asarray([c[1] for c in cases], jnp.int32),
              jnp.asarray([c[2] for c in cases], jnp.int32))
  out, k = np.asarray(out), np.asarray(k)
  for r, (items, target, level) in enumerate(cases):
    ref = _reference(items, target, level)
    assert out[r, :k[r]].tolist() == ref, (items, target, level)
    assert (out[r, k[r]:] == -1).all()
    if target in items:
      assert target in ref


def test_full_level_keeps_everything_and_empty_profile_stays_empty():
  row, n = _pad([4, 8, 15, 16, 23, 42])
  out, k = crafting.clip_profile(row, n, jnp.int32(16), jnp.int32(10))
  assert int(k) == 6 and np.asarray(out)[:6].tolist() == [4, 8, 15, 16, 23, 42]
  row, n = _pad([])
  out, k = crafting.clip_profile(row, n, jnp.int32(1), jnp.int32(3))
  assert int(k) == 0 and (np.asarray(out) == -1).all()
