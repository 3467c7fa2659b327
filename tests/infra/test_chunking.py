"""chunked_map and its pad / split / merge steps against plain numpy references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pfcdr_jax.infra import chunking

M = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0


def _row_fn(chunk):
  """A row-wise kernel on a pytree: {"x": [c, 3], "y": [c]} -> ([c, 4], [c])."""
  return chunk["x"] @ jnp.asarray(M) + chunk["y"][:, None], jnp.sum(chunk["x"], axis=1)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n,chunk_size", [(0, 4), (1, 4), (5, 4), (8, 4), (13, 4), (3, 16),
                                          (7, 1)])
def test_chunked_map_equals_numpy_reference(n, chunk_size, jit):
  rng = np.random.default_rng(n)
  xs = {"x": rng.normal(size=(n, 3)).astype(np.float32),
        "y": rng.normal(size=(n,)).astype(np.float32)}
  run = functools.partial(chunking.chunked_map, _row_fn, chunk_size=chunk_size)
  a, b = (jax.jit(run) if jit else run)(jax.tree_util.tree_map(jnp.asarray, xs))
  assert a.shape == (n, 4) and b.shape == (n,)
  np.testing.assert_allclose(np.asarray(a), xs["x"] @ M + xs["y"][:, None], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(b), xs["x"].sum(1), rtol=1e-6)
  # ... and to the kernel applied to all rows at once.
  ua, ub = _row_fn(xs)
  np.testing.assert_allclose(np.asarray(a), np.asarray(ua), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(b), np.asarray(ub), rtol=1e-6)


def test_chunked_map_with_index_passes_the_chunk_number():
  out = chunking.chunked_map(lambda i, x: jnp.broadcast_to(i, x.shape), jnp.zeros((11,)), 4,
                             with_index=True)
  np.testing.assert_array_equal(np.asarray(out), np.arange(11) // 4)


def test_split_chunks_zero_pads_and_merge_chunks_inverts_it():
  x = jnp.arange(10, dtype=jnp.float32).reshape(5, 2)
  valid = jnp.ones((5,), bool)
  cx, cv = chunking.split_chunks((x, valid), 2)
  assert cx.shape == (3, 2, 2) and cv.shape == (3, 2)
  np.testing.assert_array_equal(np.asarray(cx).reshape(6, 2)[5], 0.0)
  np.testing.assert_array_equal(np.asarray(cv).ravel(), [True] * 5 + [False])
  back = chunking.merge_chunks((cx, cv), 5)
  np.testing.assert_array_equal(np.asarray(back[0]), np.asarray(x))
  np.testing.assert_array_equal(np.asarray(back[1]), True)


def test_pad_rows():
  x = np.ones((3, 2), np.float32)
  np.testing.assert_array_equal(np.asarray(chunking.pad_rows(x, 3)), x)
  got = np.asarray(chunking.pad_rows(x, 4, value=-1))
  np.testing.assert_array_equal(got, np.concatenate([x, np.full((1, 2), -1.0)]))


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="chunk_size"):
    chunking.chunked_map(lambda x: x, jnp.zeros((3,)), 0)
  with pytest.raises(ValueError, match="leading size"):
    chunking.chunked_map(lambda xs: xs, (jnp.zeros((3,)), jnp.zeros((4,))), 2)
