"""CMF: collective matrix factorisation (Singh & Gordon, KDD'08) over two rating domains.

Both domains share the user factor matrix ``U``; each has its own item factors
(``V_s``, ``V_t``). With the identity link and squared loss (Singh & Gordon Sec. 2,
Eq. 1 with Gaussian/identity link) the objective is

    L = alpha * mean_{(u,i) in R_s} (r_ui - U_u . V_s,i)^2
        + (1 - alpha) * mean_{(u,j) in R_t} (r_uj - U_u . V_t,j)^2
        + reg * (||U_u||^2 + ||V_.,i||^2 summed over each minibatch rating),

the relative weight ``alpha`` of the source term being the paper's mixing weight. Each
domain's loss is a mean over its own ratings (so alpha, not the data sizes, sets the
balance); a minibatch drawn from the union of both rating lists estimates L without
bias by weighting each rating ``alpha / R_s`` or ``(1 - alpha) / R_t``, times
``(R_s + R_t)``. Optimised with Adam over shuffled minibatches (the paper uses a
Newton-style alternating projection; the fixed point is the same objective).

User indexing: overlap users ``0..n_overlap-1`` are the same people in both domains
and share a row of ``U``; source-only users ``n_overlap..U_s-1`` keep their index;
target-only users ``n_overlap..U_t-1`` are appended after them. A cold-start user
(target ratings removed) has a row of ``U`` fit on their source ratings alone, which is
how CMF transfers to them.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.infra import phase_timer
from pfcdr_jax.infra.checks import check_index
from pfcdr_jax.models import deferred_minibatch
from pfcdr_jax.models import minibatch
from pfcdr_jax.models.train_config import resolve_optimizer


@dataclasses.dataclass(frozen=True)
class CMFConfig:
  """CMF settings.

  Attributes:
    dim: factor size ``d``.
    alpha: weight of the source loss (the target gets ``1 - alpha``), in [0, 1).
    lr: Adam learning rate.
    reg: L2 weight per rating on its user and item factor rows.
    epochs: passes over the union of the two rating lists.
    batch_size: ratings per step.
    init_std: std of the N(0, init_std^2) initialisation.
    optimizer: "adam" (``optax.adam``: every factor row moves at every step),
      "deferred_adam" (the same trajectory computed on the rows a minibatch touches,
      :mod:`models.deferred_minibatch`: an epoch costs ratings x d, not steps x rows x
      d) or "auto" (deferred above ``AUTO_DEFERRED_BATCHES`` minibatches' worth of
      rows, as pretraining chooses; dense on the MovieLens tasks).
  """
  dim: int = 10
  alpha: float = 0.5
  lr: float = 0.01
  reg: float = 1e-3
  epochs: int = 30
  batch_size: int = 1024
  init_std: float = 0.1
  optimizer: str = "auto"


class CMFParams(NamedTuple):
  """Factors.

  Attributes:
    user: ``float32[U_all, d]`` shared user factors, ``U_all = U_s + U_t - n_overlap``.
    item_src: ``float32[N_s, d]``.
    item_tgt: ``float32[N_t, d]``.
  """
  user: jax.Array
  item_src: jax.Array
  item_tgt: jax.Array


def joint_user_index(n_users_src: int, n_users_tgt: int,
                     n_overlap: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Maps each domain's user index to a row of the shared user matrix.

  Args:
    n_users_src: ``U_s``.
    n_users_tgt: ``U_t``.
    n_overlap: users ``0..n_overlap-1`` are shared.

  Returns:
    ``(src_rows int32[U_s], tgt_rows int32[U_t], U_all)``.
  """
  if not 0 <= n_overlap <= min(n_users_src, n_users_tgt):
    raise ValueError(f"n_overlap={n_overlap} must lie in [0, min(U_s, U_t)]")
  src_rows = np.arange(n_users_src, dtype=np.int32)
  tgt = np.arange(n_users_tgt, dtype=np.int32)
  tgt_rows = np.where(tgt < n_overlap, tgt, tgt - n_overlap + n_users_src).astype(np.int32)
  return src_rows, tgt_rows, n_users_src + n_users_tgt - n_overlap


def init(key: jax.Array, n_users_all: int, n_items_src: int, n_items_tgt: int, dim: int,
         init_std: float = 0.1) -> CMFParams:
  """N(0, init_std^2) factors."""
  ku, ks, kt = jax.random.split(key, 3)
  return CMFParams(init_std * jax.random.normal(ku, (n_users_all, dim)),
                   init_std * jax.random.normal(ks, (n_items_src, dim)),
                   init_std * jax.random.normal(kt, (n_items_tgt, dim)))


def predict(params: CMFParams, rows: jax.Array, item: jax.Array, is_src: jax.Array) -> jax.Array:
  """``U_u . V_i`` with ``V`` the source or target item table per rating.

  Args:
    params: factors.
    rows: ``int32[B]`` shared user rows.
    item: ``int32[B]`` item index within its domain.
    is_src: ``bool[B]`` which domain each rating is from.

  Returns:
    ``float32[B]`` predictions.
  """
  v_s = params.item_src[jnp.minimum(item, params.item_src.shape[0] - 1)]
  v_t = params.item_tgt[jnp.minimum(item, params.item_tgt.shape[0] - 1)]
  v = jnp.where(is_src[:, None], v_s, v_t)
  return jnp.sum(params.user[rows] * v, axis=-1)


def loss_fn(params: CMFParams, rows: jax.Array, item: jax.Array, rating: jax.Array,
            is_src: jax.Array, weight: jax.Array, reg: float) -> jax.Array:
  """Minibatch estimate of the CMF objective (module docstring).

  Args:
    params: factors.
    rows, item, is_src: ``[B]`` rating coordinates (see :func:`predict`).
    rating: ``float32[B]`` targets.
    weight: ``float32[B]`` per-rating weight (``alpha R / (R_s B)`` etc.; 0 on padding).
    reg: L2 weight.

  Returns:
    Scalar loss.
  """
  err = predict(params, rows, item, is_src) - rating
  v_s = params.item_src[jnp.minimum(item, params.item_src.shape[0] - 1)]
  v_t = params.item_tgt[jnp.minimum(item, params.item_tgt.shape[0] - 1)]
  v = jnp.where(is_src[:, None], v_s, v_t)
  l2 = jnp.sum(params.user[rows] ** 2, -1) + jnp.sum(v ** 2, -1)
  n = jnp.maximum((weight > 0).sum(), 1)
  return jnp.sum(weight * err ** 2) + reg * jnp.sum((weight > 0) * l2) / n


@functools.partial(jax.jit, static_argnames=("cfg",))
def train(params: CMFParams, rows: jax.Array, item: jax.Array, rating: jax.Array,
          is_src: jax.Array, weight: jax.Array, key: jax.Array, cfg: CMFConfig):
  """Adam over shuffled minibatches of the joint rating list (nested ``lax.scan``).

  Args:
    params: initial factors.
    rows, item, rating, is_src: ``[R]`` joint rating list.
    weight: ``float32[R]`` ``alpha/R_s`` or ``(1-alpha)/R_t`` per rating.
    key: PRNG key for the shuffles.
    cfg: settings.

  Returns:
    ``(params, curve float32[epochs])``.
  """
  n = rows.shape[0]
  grad_fn = jax.value_and_grad(functools.partial(loss_fn, reg=cfg.reg))

  def loss_and_grad(p, j, valid):
    # n/bs (bs = j.shape[0]) rescales the batch sum into an unbiased estimate of the
    # full weighted sum.
    w = jnp.where(valid > 0, weight[j] * (n / j.shape[0]), 0.0)
    return grad_fn(p, rows[j], item[j], rating[j], is_src[j], w)

  n_rows = sum(x.shape[0] for x in params)
  if resolve_optimizer(cfg.optimizer, n_rows, min(cfg.batch_size, n)) == "adam":
    return minibatch.optimize_epochs(loss_and_grad, params, optax.adam(cfg.lr), n=n,
                                     batch_size=cfg.batch_size, epochs=cfg.epochs, key=key)
  return _train_deferred(params, rows, item, rating, is_src, weight, key, cfg)


def _train_deferred(params, rows, item, rating, is_src, weight, key, cfg):
  """:func:`train` with deferred Adam: the loss of :func:`loss_fn` on gathered rows
  (a source rating reads no target item row and vice versa)."""
  n = rows.shape[0]
  n_src, n_tgt = params.item_src.shape[0], params.item_tgt.shape[0]

  def rows_of(j, valid):
    real = valid > 0
    return {"user": jnp.where(real, rows[j], params.user.shape[0]),
            "item_src": jnp.where(real & is_src[j], item[j], n_src),
            "item_tgt": jnp.where(real & ~is_src[j], item[j], n_tgt)}

  def loss_rows(got, j, valid):
    w = jnp.where(valid > 0, weight[j] * (n / j.shape[0]), 0.0)
    u = got["user"]
    v = jnp.where(is_src[j][:, None], got["item_src"], got["item_tgt"])
    err = jnp.sum(u * v, axis=-1) - rating[j]
    l2 = jnp.sum(u ** 2, -1) + jnp.sum(v ** 2, -1)
    return jnp.sum(w * err ** 2) + cfg.reg * jnp.sum((w > 0) * l2) / jnp.maximum(
        (w > 0).sum(), 1)

  tables, curve = deferred_minibatch.optimize_epochs(
      loss_rows, params._asdict(), rows_of, cfg.lr, n=n, batch_size=cfg.batch_size,
      epochs=cfg.epochs, key=key)
  return CMFParams(**tables), curve


def fit_predict(source: tuple[np.ndarray, np.ndarray, np.ndarray],
                target_train: tuple[np.ndarray, np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], *, n_users_src: int, n_items_src: int,
                n_users_tgt: int, n_items_tgt: int, n_overlap: int, cfg: CMFConfig,
                key: jax.Array) -> np.ndarray:
  """Fits CMF on source + target training ratings; predicts the test pairs.

  Args:
    source: ``(user, item, rating)`` all source ratings (``[R_s]`` each).
    target_train: ``(user, item, rating)`` target training ratings (``[R_t]`` each).
    test: ``(user int[T], item int[T])`` target-domain test pairs.
    n_users_src, n_items_src, n_users_tgt, n_items_tgt: domain sizes.
    n_overlap: number of shared users (indices ``0..n_overlap-1`` in both domains).
    cfg: settings.
    key: PRNG key (init and shuffles).

  Returns:
    ``float32[T]`` predictions ``U_u . V_t,j``.
  """
  if not 0.0 <= cfg.alpha < 1.0:
    raise ValueError(f"alpha must lie in [0, 1), got {cfg.alpha}")
  if cfg.optimizer not in ("auto", "adam", "deferred_adam"):
    raise ValueError(f"CMF optimizer must be auto, adam or deferred_adam, got "
                     f"{cfg.optimizer!r}")
  su, si, sr = (np.asarray(a) for a in source)
  tu, ti, tr = (np.asarray(a) for a in target_train)
  test_user, test_item = (np.asarray(a) for a in test)
  for idx, n, name in ((su, n_users_src, "source user"), (si, n_items_src, "source item"),
                       (tu, n_users_tgt, "target user"), (ti, n_items_tgt, "target item"),
                       (test_user, n_users_tgt, "test user"),
                       (test_item, n_items_tgt, "test item")):
    check_index(idx, n, name)
  if sr.size == 0 or tr.size == 0:
    raise ValueError("CMF needs ratings in both domains")
  src_rows, tgt_rows, n_all = joint_user_index(n_users_src, n_users_tgt, n_overlap)
  rows = np.concatenate([src_rows[su], tgt_rows[tu]])
  item = np.concatenate([si, ti]).astype(np.int32)
  rating = np.concatenate([sr, tr]).astype(np.float32)
  is_src = np.concatenate([np.ones(sr.size, bool), np.zeros(tr.size, bool)])
  weight = np.where(is_src, cfg.alpha / sr.size, (1.0 - cfg.alpha) / tr.size).astype(np.float32)
  k_init, k_train = jax.random.split(key)
  params = init(k_init, n_all, n_items_src, n_items_tgt, cfg.dim, cfg.init_std)
  params, _ = train(params, jnp.asarray(rows), jnp.asarray(item), jnp.asarray(rating),
                    jnp.asarray(is_src), jnp.asarray(weight), k_train, cfg)
  with phase_timer.predicting(test_user.size, params):
    return np.asarray(predict(params, jnp.asarray(tgt_rows[test_user]),
                              jnp.asarray(test_item, jnp.int32), jnp.zeros(test_user.shape, bool)))
