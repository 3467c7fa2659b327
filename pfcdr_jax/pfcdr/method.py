"""The PFCDR method as pure functions: prototypes -> bridge -> K -> top-k -> Eq. (14).

Given a split (``data.splits.CDRData``) and the pretrained source / target scorers,

1. :func:`prototypes` inverts each user's frozen representation into an item-space
   prototype (Eq. 9-11; ``inversion.invert_users``, users sharded over the devices
   when there are several);
2. :func:`fit_bridge` fits the linear map from source to target prototypes on the
   bridge (training overlap) users (Eq. 12) and :func:`transfer` applies it to the
   cold users' source prototypes;
3. :func:`select_k` picks K on the validation users (pseudo-cold: their target
   ratings were removed from training), never on the test users;
4. :func:`predict_cold` matches each transferred prototype against the candidate
   target users (Eq. 13, ``topk.select_neighbors``) and predicts a rating as the mean
   of the K neighbors' scores (Eq. 14, ``topk.neighbor_mean`` +
   ``topk.predict_from_neighbors``).

:func:`fit_predict` composes them. ``pipeline.run_pfcdr`` wraps it with loading,
caching and recording; studies (``experiments/bridge_epochs.py``, the benchmarks)
call the same functions, so the method is written once.

Cold users are ordered validation users first, then test users
(:func:`cold_users`); the source prototypes of a run are those of the bridge users
followed by the cold users (:func:`source_prototype_users`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import bridge as bridge_lib
from pfcdr_jax.pfcdr import inversion as inversion_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.pfcdr import sharding as sharding_lib
from pfcdr_jax.pfcdr import topk as topk_lib
from pfcdr_jax.config import BridgeConfig, TopKConfig
from pfcdr_jax.data.splits import CDRData, DomainData


class StageKeys(NamedTuple):
  """The PRNG keys of a run's stages, all from ``PRNGKey(seed)`` (in this order)."""
  pretrain_source: jax.Array
  pretrain_target: jax.Array
  inversion_source: jax.Array
  inversion_target: jax.Array
  bridge: jax.Array
  emcdr: jax.Array
  baselines: jax.Array

  @classmethod
  def from_seed(cls, seed: int) -> "StageKeys":
    return cls(*jax.random.split(jax.random.PRNGKey(seed), len(cls._fields)))


class Prototypes(NamedTuple):
  """A run's prototypes.

  Attributes:
    source: float32[n_bridge + n_cold, d] of ``source_prototype_users(data)``.
    target: float32[n_bridge, d] of the bridge users.
  """
  source: np.ndarray
  target: np.ndarray


class ColdIndex(NamedTuple):
  """Where each cold user's row is: ``row_of_user[u]`` (-1 for non-cold users)."""
  users: np.ndarray        # int32[C]: validation users, then test users
  row_of_user: np.ndarray  # int64[U_t]


class PFCDRFit(NamedTuple):
  """What :func:`fit_predict` returns.

  Attributes:
    pred: float32[R_test] predictions of ``data.target_test`` in its rating order.
    k: the K used; val_mae_by_k: the validation MAE of every K tried ({} if fixed).
    bridge_weights: float32[d, d]; bridge_train_mse: its MSE on the bridge users.
    transferred: float32[C, d] transferred prototypes of the cold users.
    n_candidates: the number of target users top-k searched.
  """
  pred: np.ndarray
  k: int
  val_mae_by_k: dict
  bridge_weights: np.ndarray
  bridge_train_mse: float
  transferred: np.ndarray
  n_candidates: int


def cold_users(data: CDRData) -> ColdIndex:
  """The cold users of a run (validation then test) and their rows."""
  users = np.concatenate([data.val_users, data.test_users]).astype(np.int32)
  row_of_user = np.full(data.target_train.n_users, -1, dtype=np.int64)
  row_of_user[users] = np.arange(len(users))
  return ColdIndex(users, row_of_user)


def bridge_users(data: CDRData) -> np.ndarray:
  """int32[n_bridge]: the overlap users that keep their target training ratings."""
  return np.asarray(data.train_users, dtype=np.int32)


def source_prototype_users(data: CDRData) -> np.ndarray:
  """int32[n_bridge + C]: users whose source prototypes a run needs, in row order."""
  return np.concatenate([bridge_users(data), cold_users(data).users])


def representations_eager(scorer, params, n_users: int) -> tuple[jax.Array, jax.Array]:
  """``(W [n_users, d], V [n_items, d])``: user representations and item matrix."""
  return scorer.user_repr(params, jnp.arange(n_users)), scorer.item_matrix(params)


# One compile per (scorer, table shapes) instead of one per eager op (gathers, concats,
# the tower); the values are bit-identical to representations_eager (tested).
representations = jax.jit(representations_eager, static_argnums=(0, 2))


def prototypes(scorer, params, n_users: int, users: np.ndarray, key: jax.Array,
               cfg: inversion_lib.InversionConfig, *, progress: str | None = None
               ) -> inversion_lib.UsersInversion:
  """Eq. (9)-(11): prototypes of `users` under a frozen scorer.

  Args:
    scorer: the base model; params: its pretrained parameters.
    n_users: rows of the scorer's user table.
    users: int[B] user indices; key: the stage's PRNG key (folded per user index).
    cfg: the inversion settings.
    progress: optional label of a progress bar.

  Returns:
    ``inversion.UsersInversion`` with prototypes [B, d].
  """
  W, V = representations(scorer, params, n_users)
  users = jnp.asarray(users)
  if jax.device_count() > 1:   # the same kernel, users sharded over every device
    return sharding_lib.shard_invert_users(jnp.asarray(W)[users], V, key, cfg,
                                           linear_in_b=scorer.linear_in_b, user_index=users)
  return inversion_lib.invert_users(jnp.asarray(W)[users], V, key, cfg,
                                    linear_in_b=scorer.linear_in_b, user_index=users,
                                    progress=progress)


def fit_bridge(P_src: np.ndarray, P_tgt: np.ndarray, key: jax.Array,
               cfg: BridgeConfig) -> tuple[np.ndarray, float]:
  """Eq. (12): ``(W [d, d], train MSE)`` of the linear bridge on the bridge users."""
  W = bridge_lib.fit_linear_bridge(jnp.asarray(P_src), jnp.asarray(P_tgt), key, lr=cfg.lr,
                                   epochs=cfg.epochs, batch_size=cfg.batch_size)
  mse = float(jnp.mean((bridge_lib.apply_bridge(W, jnp.asarray(P_src)) - P_tgt) ** 2))
  return np.asarray(W), mse


def transfer(W: np.ndarray, P_src: np.ndarray) -> np.ndarray:
  """Transferred prototypes ``P @ W``: [C, d]."""
  return np.asarray(bridge_lib.apply_bridge(jnp.asarray(W), jnp.asarray(P_src)))


def candidates(data: CDRData, cfg: TopKConfig) -> jax.Array:
  """bool[U_t]: the target users top-k searches (trained ones, or all of them)."""
  return jnp.asarray(np.ones_like(data.target_trained) if cfg.include_untrained
                     else data.target_trained)


def parse_k(text: str) -> int | float:
  """``--topk``: an integer count ("500") or a fraction of the candidates ("0.1")."""
  value = float(text)
  if value <= 0:
    raise ValueError(f"--topk must be positive, got {text!r}")
  return int(value) if value >= 1 and value == int(value) and "." not in text else value


def k_candidates(cfg: TopKConfig, n_candidates: int) -> list[int]:
  """The K values tried on validation (one value when ``cfg.k`` fixes it)."""
  if cfg.k != "auto":
    return [topk_lib.resolve_k(parse_k(cfg.k), n_candidates)]
  return sorted({topk_lib.resolve_k(f, n_candidates) for f in cfg.grid})


def predict_cold(P_hat, W_t, valid, V_t, ratings: DomainData, cold: ColdIndex, k: int,
                 cfg: TopKConfig, r: float) -> np.ndarray:
  """Eq. (13)-(14): predictions of `ratings` (of cold users) from K neighbors.

  Args:
    P_hat: float32[C, d] transferred prototypes, rows as in `cold`.
    W_t: float32[U_t, d] target user representations; V_t: float32[N_t, d] items.
    valid: bool[U_t] candidate neighbors.
    ratings: the (user, item) pairs to predict; every user must be cold.
    cold: the rows of the cold users; k: neighbor count.
    cfg: top-k execution settings; r: the inversion's target rating.

  Returns:
    float32[R] predictions.
  """
  rows, pos = _rows_of(cold, ratings)     # only the cold users `ratings` asks about
  mean_w = neighbor_representations(np.asarray(P_hat)[rows], W_t, valid, k, cfg, r)
  return np.asarray(topk_lib.predict_from_neighbors(mean_w[pos], V_t, ratings.item))


def _rows_of(cold: ColdIndex, ratings: DomainData) -> tuple[np.ndarray, np.ndarray]:
  """(sorted distinct cold rows of `ratings`' users, each rating's position in them)."""
  row = cold.row_of_user[np.asarray(ratings.user)]
  if np.any(row < 0):
    raise ValueError("every user of the ratings to predict must be a cold user")
  rows = np.unique(row)
  return rows, np.searchsorted(rows, row)


def neighbor_representations(P_hat, W_t, valid, k: int, cfg: TopKConfig, r: float) -> jax.Array:
  """Eq. (13)-(14)'s mean representation of each cold user's K neighbors: [C, d].

  What :func:`predict_cold` scores the items with (Figure 4 plots it as PFCDR's
  transferred embedding). Eq. (14) needs only the neighbor set's mean, so on one device
  with ``method="auto"`` and a K the threshold kernel would serve, it is one masked
  product per cold user (``topk.neighbor_means_grid``: no compaction of the set, no
  gather of K rows; same set, ~3x faster at music2movie's K = 59,456); otherwise the set
  is selected (``select_neighbors``, sharded over the devices) and its rows averaged.
  """
  if (jax.device_count() == 1 and cfg.method == "auto"
      and topk_lib.resolve_method("auto", k) == "threshold"):
    cand = jnp.ones_like(jnp.asarray(valid, bool)) if cfg.include_untrained else valid
    return topk_lib.neighbor_means_grid(np.asarray(P_hat), W_t, cand, r=r, ks=(k,),
                                        chunk_size=cfg.chunk or 16)[:, 0]
  select = (sharding_lib.shard_select_neighbors if jax.device_count() > 1
            else topk_lib.select_neighbors)   # cold users sharded over every device
  idx = select(jnp.asarray(P_hat), W_t, valid, r=r, k=k, chunk_size=cfg.chunk,
               method=cfg.method, sorted=False, include_untrained=cfg.include_untrained)
  return topk_lib.neighbor_mean(idx, W_t)


def select_k(P_hat, W_t, valid, V_t, val: DomainData, cold: ColdIndex, cfg: TopKConfig,
             r: float) -> tuple[int, dict[int, float]]:
  """K of Eq. (14) with the lowest MAE on the validation users' target ratings.

  Returns:
    ``(k, {candidate k: validation MAE})``; the dict is empty when ``cfg.k`` fixes K
    (then nothing is evaluated).

  Raises:
    ValueError: K is to be chosen but there are no validation ratings.
  """
  ks = k_candidates(cfg, int(np.sum(np.asarray(valid))))
  if len(ks) == 1:
    return ks[0], {}
  if val.rating.size == 0:
    raise ValueError("topk=auto needs validation users with target ratings; "
                     "set --topk explicitly or raise --val_fraction")
  if jax.device_count() > 1:   # the sharded kernels, one K at a time
    val_mae = {k: float(metrics_lib.mae(
        predict_cold(P_hat, W_t, valid, V_t, val, cold, k, cfg, r), val.rating)) for k in ks}
  else:                        # one pass for the whole grid (topk.neighbor_means_grid)
    rows, pos = _rows_of(cold, val)
    means = topk_lib.neighbor_means_grid(np.asarray(P_hat)[rows], W_t, valid, r=r,
                                         ks=tuple(ks), chunk_size=cfg.chunk or 16)
    val_mae = {k: float(metrics_lib.mae(np.asarray(topk_lib.predict_from_neighbors(
        means[pos, g], V_t, val.item)), val.rating)) for g, k in enumerate(ks)}
  return min(val_mae, key=val_mae.get), val_mae


def invert_run(scorer, params_s, params_t, data: CDRData, keys: StageKeys,
               cfg: inversion_lib.InversionConfig) -> Prototypes:
  """Both domains' prototypes of a run (no cache; ``pipeline`` caches each)."""
  P_s = prototypes(scorer, params_s, data.source.n_users, source_prototype_users(data),
                   keys.inversion_source, cfg, progress="source")
  P_t = prototypes(scorer, params_t, data.target_train.n_users, bridge_users(data),
                   keys.inversion_target, cfg, progress="target")
  return Prototypes(np.asarray(P_s.prototypes), np.asarray(P_t.prototypes))


def fit_predict(scorer, params_s, params_t, data: CDRData, keys: StageKeys, *,
                inversion: inversion_lib.InversionConfig, bridge: BridgeConfig,
                topk: TopKConfig, protos: Prototypes | None = None) -> PFCDRFit:
  """PFCDR end to end on one split: cold-start predictions of ``data.target_test``.

  Args:
    scorer: the base model; params_s / params_t: pretrained source / target params.
    data: the split; keys: the run's stage keys.
    inversion, bridge, topk: the stages' settings.
    protos: the run's prototypes when already computed (e.g. cached); else inverted.

  Returns:
    :class:`PFCDRFit`.
  """
  if protos is None:
    protos = invert_run(scorer, params_s, params_t, data, keys, inversion)
  n_bridge = len(bridge_users(data))
  W_map, train_mse = fit_bridge(protos.source[:n_bridge], protos.target, keys.bridge, bridge)
  P_hat = transfer(W_map, protos.source[n_bridge:])
  W_t, V_t = representations(scorer, params_t, data.target_train.n_users)
  valid = candidates(data, topk)
  cold = cold_users(data)
  r = inversion.target_rating
  k, val_mae = select_k(P_hat, W_t, valid, V_t, data.target_val, cold, topk, r)
  pred = predict_cold(P_hat, W_t, valid, V_t, data.target_test, cold, k, topk, r)
  return PFCDRFit(pred, int(k), val_mae, W_map, train_mse, P_hat,
                  int(np.sum(np.asarray(valid))))
