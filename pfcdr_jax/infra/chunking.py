"""Chunked maps over a leading axis: pad, cut into chunks, ``lax.map``, unpad.

Kernels whose memory grows with the batch (the inversion's ``[c, N]`` item weights,
the top-k match's ``[c, T]`` distances, the neighbor gathers ``[c, K, d]``) process
their rows ``chunk_size`` at a time. The rows are zero-padded up to a multiple of
``chunk_size`` (so every step has the same shape: one compiled body), mapped chunk by
chunk with ``jax.lax.map`` and the padded rows are dropped again. Padded rows are
computed and discarded; a kernel must only be row-wise (row ``i`` of the output reads
row ``i`` of the input), which all callers here are.

All functions are traceable: call them inside the caller's ``jax.jit`` with a static
``chunk_size``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def pad_rows(x: jax.Array | np.ndarray, multiple: int, value=0) -> jax.Array:
  """Pads axis 0 of ``x`` up to a multiple of ``multiple`` with ``value``.

  Args:
    x: ``[n, ...]``.
    multiple: ``m >= 1``.
    value: fill of the added rows.

  Returns:
    ``[ceil(n / m) * m, ...]``; ``x`` itself (as a ``jax.Array``) when ``m`` divides ``n``.
  """
  n = x.shape[0]
  pad = (-n) % multiple
  if pad == 0:
    return jnp.asarray(x)
  widths = [(0, pad)] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(jnp.asarray(x), widths, constant_values=value)


def _rows(xs: Any) -> int:
  """The common leading size of the leaves of ``xs``."""
  sizes = {x.shape[0] for x in jax.tree_util.tree_leaves(xs)}
  if len(sizes) != 1:
    raise ValueError(f"need leaves with one leading size, got sizes {sorted(sizes)}")
  return sizes.pop()


def split_chunks(xs: Any, chunk_size: int) -> Any:
  """Zero-pads the rows of every leaf and cuts them into chunks.

  Args:
    xs: pytree of arrays ``[n, ...]`` (one ``n`` for all leaves).
    chunk_size: rows per chunk ``c >= 1`` (static).

  Returns:
    The pytree with leaves ``[ceil(n / c), c, ...]``; rows ``n..`` of the last chunk
    are zeros (``False`` for booleans).
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  n_chunks = -(-_rows(xs) // chunk_size)
  return jax.tree_util.tree_map(
      lambda x: pad_rows(x, chunk_size).reshape((n_chunks, chunk_size) + x.shape[1:]), xs)


def merge_chunks(ys: Any, n: int) -> Any:
  """Inverse of :func:`split_chunks`: leaves ``[n_chunks, c, ...]`` -> ``[n, ...]``.

  Args:
    ys: pytree of chunked arrays.
    n: number of real rows to keep (``n <= n_chunks * c``).

  Returns:
    The pytree with the chunk axes merged and the padded rows dropped.
  """
  return jax.tree_util.tree_map(
      lambda y: y.reshape((y.shape[0] * y.shape[1],) + y.shape[2:])[:n], ys)


def chunked_map(fn: Callable[..., Any], xs: Any, chunk_size: int, *,
                with_index: bool = False) -> Any:
  """Maps a row-wise ``fn`` over the rows of ``xs``, ``chunk_size`` rows per step.

  Equal to ``fn(xs)`` for a row-wise ``fn`` (up to the shapes ``fn`` is traced at),
  with memory bounded by one chunk's intermediates.

  Args:
    fn: ``fn(chunk) -> out`` (``fn(i, chunk)`` with ``with_index``): ``chunk`` is
      ``xs`` with leaves ``[c, ...]``, every leaf of ``out`` is ``[c, ...]``.
    xs: pytree of arrays ``[n, ...]`` (one ``n`` for all leaves, ``n >= 0``).
    chunk_size: rows per step ``c >= 1`` (static).
    with_index: also pass the chunk number ``i`` (``int32[]``, ``0..n_chunks-1``),
      e.g. for progress logging.

  Returns:
    The pytree of outputs with leaves ``[n, ...]`` (rows of the zero padding removed).
  """
  n = _rows(xs)
  chunks = split_chunks(xs, chunk_size)
  if with_index:
    n_chunks = jax.tree_util.tree_leaves(chunks)[0].shape[0]
    ys = jax.lax.map(lambda a: fn(*a), (jnp.arange(n_chunks), chunks))
  else:
    ys = jax.lax.map(fn, chunks)
  return merge_chunks(ys, n)
