"""One code path for one or many devices: users sharded over a 1-D ``Mesh``.

The PFCDR kernels are independent per user: the inversion of user ``i`` (Eq. 10-11)
only reads ``w[i]``, the frozen item matrix ``V`` and ``fold_in(key, user_index[i])``;
the top-k match of a cold user (Eq. 13) only reads its prototype and the frozen
target users. So the user axis (inversion) and the cold-user axis (top-k) are split
over a 1-D mesh with axis ``"users"``; ``V``, ``W_tgt`` and ``valid`` are
replicated. Every device runs the SAME jitted library kernel
(``inversion.invert_users``, ``topk.select_neighbors``) on its block of users under
``jax.shard_map``, and the inputs are placed with ``NamedSharding`` before the
jitted call, so there is no cross-device communication until the results are
gathered. With one device the mesh has one entry and the path is the plain one.

Users are padded to a multiple of the device count (padded rows are dropped at
the end). Because each user's draw of ``b_0`` is keyed by its GLOBAL index, the
sharded prototypes equal the single-device ones (up to float reassociation inside
the per-device matrix products; the test checks them at 1e-5).

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` splits the host into
N devices; on a multi-GPU host the local GPUs are the devices; on a TPU slice (or
several GPU hosts) call ``jax.distributed.initialize()`` first and ``user_mesh()``
spans ``jax.devices()`` of all processes; the results are then gathered to every
process (``multihost_utils.process_allgather``), so each holds the whole output as
with one process (tests/pfcdr/test_multiprocess.py runs two processes on 127.0.0.1).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P

from pfcdr_jax.pfcdr import inversion as inversion_lib
from pfcdr_jax.pfcdr import topk as topk_lib
from pfcdr_jax.infra.chunking import pad_rows  # re-exported: sharding.pad_rows

AXIS = "users"


def user_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis ``"users"`` over ``devices`` (default: all ``jax.devices()``)."""
  devs = np.asarray(jax.devices() if devices is None else list(devices))
  if devs.size == 0:
    raise ValueError("user_mesh needs at least one device")
  return Mesh(devs.reshape(-1), (AXIS,))


def user_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
  """Sharding of an array whose axis 0 is users: ``P("users", None, ...)``."""
  return NamedSharding(mesh, P(AXIS, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def gathered(x: jax.Array) -> jax.Array:
  """`x` whole on this process: a no-op with one process, an all-gather with several."""
  if jax.process_count() == 1 or x.is_fully_addressable:
    return x
  return jnp.asarray(multihost_utils.process_allgather(x, tiled=True))


@functools.lru_cache(maxsize=None)
def _inversion_fn(mesh: Mesh, cfg: inversion_lib.InversionConfig, linear_in_b: bool):
  """Jitted, shard_mapped ``invert_users``; cached so equal calls never retrace."""

  def local(w, V, key, index):
    out = inversion_lib.invert_users(w, V, key, cfg, linear_in_b=linear_in_b,
                                     user_index=index)
    return out.prototypes, out.loss, out.pred, out.steps

  spec_u = P(AXIS)
  mapped = jax.shard_map(local, mesh=mesh, in_specs=(P(AXIS, None), P(), P(), spec_u),
                         out_specs=(P(AXIS, None), spec_u, spec_u, spec_u),
                         check_vma=False)
  return jax.jit(mapped)


def shard_invert_users(w: jax.Array, V: jax.Array, key: jax.Array,
                       cfg: inversion_lib.InversionConfig = inversion_lib.InversionConfig(),
                       *, linear_in_b: bool = True, user_index: jax.Array | None = None,
                       mesh: Mesh | None = None) -> inversion_lib.UsersInversion:
  """``inversion.invert_users`` with the user axis sharded over ``mesh`` (Eq. 10-11).

  Args:
    w: [B, d] frozen user representations.
    V: [N, d] frozen item matrix (replicated on every device).
    key: PRNG key; user ``i`` draws ``b_0`` with ``fold_in(key, user_index[i])``.
    cfg: inversion configuration (``chunk_size`` applies per device).
    linear_in_b: the scorer is linear in ``b``.
    user_index: optional int[B] global user indices (default ``arange(B)``).
    mesh: a 1-D mesh with axis ``"users"`` (default ``user_mesh()``).

  Returns:
    UsersInversion(prototypes [B, d], loss [B], pred [B], steps [B], method), equal
    to ``invert_users`` on one device.
  """
  mesh = user_mesh() if mesh is None else mesh
  w = jnp.asarray(w, jnp.float32)
  if w.ndim != 2 or V.ndim != 2 or w.shape[1] != V.shape[1]:
    raise ValueError(f"expected w [B, d] and V [N, d], got {w.shape} and {V.shape}")
  B = w.shape[0]
  if user_index is None:
    user_index = jnp.arange(B, dtype=jnp.int32)
  n_dev = mesh.devices.size
  wp = jax.device_put(pad_rows(w, n_dev), user_sharding(mesh, 2))
  ip = jax.device_put(pad_rows(jnp.asarray(user_index, jnp.int32), n_dev),
                      user_sharding(mesh, 1))
  rep = replicated(mesh)
  fn = _inversion_fn(mesh, cfg, bool(linear_in_b))
  protos, loss, pred, steps = map(gathered, fn(
      wp, jax.device_put(jnp.asarray(V, jnp.float32), rep), jax.device_put(key, rep), ip))
  method = inversion_lib.resolve_method(cfg, linear_in_b)
  return inversion_lib.UsersInversion(prototypes=protos[:B], loss=loss[:B], pred=pred[:B],
                                      steps=steps[:B], method=method)


@functools.lru_cache(maxsize=None)
def _topk_fn(mesh: Mesh, k: int, chunk_size: int, target_chunk_size: int | None,
             method: str, sorted_: bool):
  """Jitted, shard_mapped top-k kernel (the one ``select_neighbors`` calls)."""

  def local(P_hat, W_tgt, valid, r):
    # K is resolved on the host (from the full ``valid``) before the call, so every
    # device selects the same K; this is the jitted kernel of ``select_neighbors``.
    return topk_lib.neighbors_kernel(P_hat, W_tgt, valid, r, k=k, chunk_size=chunk_size,
                                     target_chunk_size=target_chunk_size, method=method,
                                     sorted=sorted_)

  mapped = jax.shard_map(local, mesh=mesh, in_specs=(P(AXIS, None), P(), P(), P()),
                         out_specs=P(AXIS, None), check_vma=False)
  return jax.jit(mapped)


def shard_select_neighbors(P_hat: jax.Array, W_tgt: jax.Array,
                         valid: jax.Array | np.ndarray | None = None, *, r: float,
                         k: int | float, chunk_size: int | None = None,
                         target_chunk_size: int | None = None,
                         include_untrained: bool = False, method: str = "auto",
                         sorted: bool = True,  # pylint: disable=redefined-builtin
                         mesh: Mesh | None = None) -> jax.Array:
  """``topk.select_neighbors`` with the cold users sharded over ``mesh`` (Eq. 13).

  Args:
    P_hat: [C, d] transferred prototypes of the cold users (sharded).
    W_tgt: [T, d] target user representations (replicated).
    valid: bool[T] users allowed as neighbors; None means all.
    r: target rating of the inversion.
    k: neighbor count, or a fraction of the valid users (``topk.resolve_k``).
    chunk_size: cold users per ``lax.map`` step on each device.
    target_chunk_size: optional target chunking (see ``select_neighbors``).
    include_untrained: ignore ``valid``.
    method, sorted: as in ``select_neighbors``; ``"partition"`` (host numpy) runs
      unsharded, through ``select_neighbors``.
    mesh: a 1-D mesh with axis ``"users"`` (default ``user_mesh()``).

  Returns:
    idx: int32[C, K], equal to ``select_neighbors`` on one device.
  """
  mesh = user_mesh() if mesh is None else mesh
  T = W_tgt.shape[0]
  if valid is None or include_untrained:
    valid = np.ones((T,), bool)
  valid = np.asarray(valid, bool)
  if valid.shape != (T,):
    raise ValueError(f"valid must have shape ({T},), got {valid.shape}")
  k = topk_lib.resolve_k(k, int(valid.sum()))
  C = P_hat.shape[0]
  if C == 0:
    return jnp.zeros((0, k), jnp.int32)
  n_dev = mesh.devices.size
  Pp = pad_rows(jnp.asarray(P_hat, jnp.float32), n_dev)
  method = topk_lib.resolve_method(method, k)   # device kernels only ("auto": no host path)
  if method == "partition":   # the host path has nothing to shard: it runs as one call
    return topk_lib.select_neighbors(P_hat, W_tgt, valid, r=r, k=k, chunk_size=chunk_size,
                                     method=method, sorted=sorted)
  cs = topk_lib.DEFAULT_CHUNK[method] if chunk_size is None else chunk_size
  cs = int(min(cs, Pp.shape[0] // n_dev))
  tcs = None if target_chunk_size is None else int(target_chunk_size)
  fn = _topk_fn(mesh, k, cs, tcs, method, bool(sorted))
  rep = replicated(mesh)
  idx = fn(jax.device_put(Pp, user_sharding(mesh, 2)),
           jax.device_put(jnp.asarray(W_tgt, jnp.float32), rep),
           jax.device_put(jnp.asarray(valid), rep),
           jax.device_put(jnp.asarray(r, jnp.float32), rep))
  return gathered(idx)[:C]
