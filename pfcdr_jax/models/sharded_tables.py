"""Pretraining with the embedding tables sharded by rows over a device mesh.

The first stage to outgrow one host is pretraining's state: every lr of the grid keeps
its user and item tables, their two Adam moments and its best copy, all ``[L, rows,
d]``, so the state is ``4 L (users + items) d`` floats (BUILD_NOTES, issue 31). Rows
are independent, so the tables split over a 1-D mesh with axis ``"rows"``: each device
holds a contiguous block of rows of every table leaf (``P(None, "rows", None)``);
everything else -- the ratings, the lr vector, the shuffle order, the dense leaves
(``mu``, GMF's ``h``, the DNN tower) and the held-out MSEs -- is replicated. The jitted
epoch function is unchanged: XLA's SPMD partitioner turns each minibatch's row gather
and its gradient's scatter into collectives over the mesh.

Tables are padded with zero rows to a multiple of the mesh size; no rating indexes a
padded row, so its gradient, both Adam moments and hence every update stay zero, and
:func:`unplace` drops it. The trajectory is the single-device one up to float
reassociation (tests/models/test_sharded_tables.py: 4 forced CPU devices;
tests/pfcdr/test_multiprocess.py: two ``jax.distributed`` processes, 2 devices each).

On several hosts call ``jax.distributed.initialize()`` first; :func:`table_mesh` then
spans the devices of every process, and :func:`unplace` gathers the trained tables to
every process.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "rows"
TABLES = ("user", "item")
ROW_AXIS = 1   # table leaves are [L, rows, d] (lr axis first)


def table_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis ``"rows"`` over ``devices`` (default: all ``jax.devices()``)."""
  devs = np.asarray(jax.devices() if devices is None else list(devices))
  if devs.size == 0:
    raise ValueError("table_mesh needs at least one device")
  return Mesh(devs.reshape(-1), (AXIS,))


def _table_of(path) -> str | None:
  """``"user"`` / ``"item"`` when the leaf at `path` is (a moment of) that table."""
  for k in path:
    if isinstance(k, jax.tree_util.DictKey) and k.key in TABLES:
      return k.key
  return None


def _is_table(path, x) -> bool:
  return _table_of(path) is not None and jnp.ndim(x) == 3


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(x, mesh: Mesh) -> jax.Array:
  """`x` (the same on every process) replicated on every device of `mesh`."""
  return jax.device_put(jnp.asarray(x), replicated(mesh))


def place(tree, mesh: Mesh):
  """Every table leaf ``[L, n, d]`` of `tree` zero-padded to a multiple of the mesh size
  and sharded by rows; every other leaf replicated (None leaves stay None)."""
  n_dev = mesh.devices.size
  rows = NamedSharding(mesh, P(None, AXIS, None))

  def put(path, x):
    if not _is_table(path, x):
      return replicate(x, mesh)
    pad = (-x.shape[ROW_AXIS]) % n_dev
    x = jnp.pad(jnp.asarray(x), ((0, 0), (0, pad), (0, 0))) if pad else jnp.asarray(x)
    return jax.device_put(x, rows)

  return jax.tree_util.tree_map_with_path(put, tree)


def _local(x: jax.Array) -> np.ndarray:
  """`x` whole on this process (an all-gather when its shards span processes)."""
  if not isinstance(x, jax.Array) or x.is_fully_addressable:
    return np.asarray(x)
  if x.is_fully_replicated:
    return np.asarray(x.addressable_data(0))
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def unplace(tree, n_rows: dict[str, int]):
  """`tree` whole on this process, as ordinary arrays, with the padded rows dropped.

  Args:
    n_rows: the true row count of each table, ``{"user": n_users, "item": n_items}``.
  """
  def get(path, x):
    x = _local(x)
    name = _table_of(path)
    if name is not None and x.ndim == 3:
      x = x[:, :n_rows[name]]
    return jnp.asarray(x)

  return jax.tree_util.tree_map_with_path(get, tree)
