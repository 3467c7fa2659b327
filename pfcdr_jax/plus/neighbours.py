"""The neighbour term's ``w_bar_u``: the softmax-weighted (Eq. 13's distance) or top-K
uniform (Eq. 14) mean of the trained target users' representations."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.infra import chunking
from pfcdr_jax.pfcdr import topk as topk_lib
from pfcdr_jax.pfcdr import topk_distances
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.inputs import PlusInputs


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def softmax_neighbour_mean(P_hat, W_t, valid, r, tau, *, chunk_size: int = 256):
  """float32[C, d]: ``sum_t softmax_t(-|r - w_t . P_hat_c| / tau) w_t`` over valid t.

  Args:
    P_hat: [C, d] transferred prototypes; W_t: [T, d]; valid: bool[T] candidates.
    r: Eq. (13)'s target rating; tau: the temperature (large: uniform over valid).
    chunk_size: cold users per step (memory ``O(chunk_size * T)``).
  """
  chex.assert_rank([P_hat, W_t, valid], [2, 2, 1])

  def one_chunk(P):
    logits = -topk_distances.match_distances(P, W_t, r) / tau        # [c, T]
    weights = jax.nn.softmax(jnp.where(valid[None, :], logits, -jnp.inf), axis=1)
    return weights @ W_t

  return chunking.chunked_map(one_chunk, P_hat, chunk_size)


def uniform_neighbour_mean(P_hat, W_t, valid, r: float, k: int) -> np.ndarray:
  """float32[C, d]: Eq. (14)'s mean of the K closest valid users' representations."""
  idx = topk_lib.select_neighbors(jnp.asarray(P_hat), jnp.asarray(W_t), jnp.asarray(valid),
                                  r=r, k=k, sorted=False)
  return np.asarray(topk_lib.neighbor_mean(idx, jnp.asarray(W_t)))


def neighbour_means(inp: PlusInputs, cfg: PlusConfig) -> dict:
  """{setting: float[C, d] w_bar of the cold users} for each K or tau of `cfg`."""
  valid = np.asarray(inp.trained, bool)
  r = float(inp.rs[-1])
  out = {}
  if cfg.neighbours in ("softmax", "both"):
    args = (jnp.asarray(inp.P_hat, jnp.float32), jnp.asarray(inp.W_t, jnp.float32),
            jnp.asarray(valid))
    out.update({("tau", t): np.asarray(softmax_neighbour_mean(*args, r, t))
                for t in cfg.taus})
  if cfg.neighbours in ("uniform", "both"):
    ks = sorted({topk_lib.resolve_k(f, int(valid.sum())) for f in cfg.k_grid})
    out.update({("k", k): uniform_neighbour_mean(inp.P_hat, inp.W_t, valid, r, k)
                for k in ks})
  return out
