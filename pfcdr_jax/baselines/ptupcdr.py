"""PTUPCDR (Zhu et al., WSDM'22): personalised transfer of user preferences.

A meta network turns a user's source interaction history into the parameters of a
personalised bridge ``W_u in R^{d x d}`` (PTUPCDR Eq. 3-6):

* characteristic encoder (Eq. 3-4): for the embeddings ``v_1..v_L`` of the user's
  source items, attention logits ``a_j = h(v_j)`` with ``h = Linear(d, d) -> ReLU ->
  Linear(d, 1, no bias)``, softmax over the valid positions, ``p_u = sum_j a_j v_j``;
* meta network (Eq. 5): ``vec(W_u) = g(p_u)`` with ``g = Linear(d, m) -> ReLU ->
  Linear(m, d*d)``;
* personalised bridge (Eq. 6): ``u_t_hat = u_s W_u`` (row vector times matrix).

Task-oriented training (Eq. 7): minimise the MSE of the target training ratings of
the training overlap users predicted as ``u_t_hat . v_t,j`` with the pretrained source
and target embeddings frozen; only the meta network is trained (as in the authors'
public code, whose meta-stage optimiser holds only the meta network's parameters).
Histories are the user's *positive* source items (``rating > pos_threshold``, 3 in the
public code), padded/masked to ``max_seq_len``; users with more positives keep a random
subset drawn with the explicit key (the paper does not specify; the public code pads
all). A user with no positive item gets ``p_u = 0`` (all positions masked), hence the
bridge ``g(0)`` (documented choice; the public code would read padding index 0, which is
a real item there).

Reduction to EMCDR: if ``g`` outputs a constant ``vec(W)`` (final weight 0, bias
``vec(W)``) then ``u_t_hat = u_s W`` for every user, EMCDR's linear map without bias.
:func:`constant_bridge_params` builds such parameters; the tests check the identity.

Generic scorers: the bridge is applied to the scorer's user representation and the
prediction is its dot product with the target item matrix, which is how every scorer
of this project predicts (``pfcdr_jax.models.scorers``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.infra import phase_timer
from pfcdr_jax.infra.checks import check_index
from pfcdr_jax.models import minibatch


@dataclasses.dataclass(frozen=True)
class PTUPCDRConfig:
  """PTUPCDR settings.

  Attributes:
    meta_dim: hidden size ``m`` of the meta network's decoder (50 in the public code).
    max_seq_len: padded history length ``L``.
    pos_threshold: history keeps source items rated ``> pos_threshold``; None keeps all.
    lr: Adam learning rate.
    weight_decay: decoupled weight decay (AdamW) on the meta network.
    epochs: passes over the training overlap users' target ratings.
    batch_size: ratings per step.
  """
  meta_dim: int = 50
  max_seq_len: int = 20
  pos_threshold: Optional[float] = 3.0
  lr: float = 0.005
  weight_decay: float = 0.0
  epochs: int = 20
  batch_size: int = 256


class MetaParams(NamedTuple):
  """Meta-network weights (shapes for embedding size d, hidden size m).

  Attributes:
    att_w1: ``[d, d]``; att_b1: ``[d]``; att_w2: ``[d]`` (no bias) -- attention ``h``.
    dec_w1: ``[d, m]``; dec_b1: ``[m]``; dec_w2: ``[m, d*d]``; dec_b2: ``[d*d]`` -- ``g``.
  """
  att_w1: jax.Array
  att_b1: jax.Array
  att_w2: jax.Array
  dec_w1: jax.Array
  dec_b1: jax.Array
  dec_w2: jax.Array
  dec_b2: jax.Array


def init(key: jax.Array, dim: int, meta_dim: int) -> MetaParams:
  """PyTorch-``nn.Linear``-style init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases."""
  ks = jax.random.split(key, 7)
  u = lambda k, shape, fan_in: jax.random.uniform(
      k, shape, minval=-1.0 / np.sqrt(fan_in), maxval=1.0 / np.sqrt(fan_in))
  return MetaParams(u(ks[0], (dim, dim), dim), u(ks[1], (dim,), dim), u(ks[2], (dim,), dim),
                    u(ks[3], (dim, meta_dim), dim), u(ks[4], (meta_dim,), dim),
                    u(ks[5], (meta_dim, dim * dim), meta_dim),
                    u(ks[6], (dim * dim,), meta_dim))


def constant_bridge_params(params: MetaParams, w: jax.Array) -> MetaParams:
  """Meta parameters whose bridge is the constant ``w`` for every user (EMCDR's map).

  Args:
    params: any meta parameters (for the shapes).
    w: ``[d, d]`` the constant bridge.

  Returns:
    Parameters with ``dec_w2 = 0`` and ``dec_b2 = vec(w)``.
  """
  return params._replace(dec_w2=jnp.zeros_like(params.dec_w2), dec_b2=w.reshape(-1))


def characteristic(params: MetaParams, seq_emb: jax.Array, mask: jax.Array) -> jax.Array:
  """Attention-pooled history of one user (Eq. 3-4).

  Args:
    params: meta parameters.
    seq_emb: ``[L, d]`` source item embeddings of the history (padding rows arbitrary).
    mask: ``bool[L]`` valid positions.

  Returns:
    ``[d]`` characteristic vector ``p_u`` (zeros when no position is valid).
  """
  chex.assert_rank([seq_emb, mask], [2, 1])
  logits = jax.nn.relu(seq_emb @ params.att_w1 + params.att_b1[None, :]) @ params.att_w2
  # A large finite negative (not -inf) keeps the gradient NaN-free.
  logits = jnp.where(mask, logits, -1e9)
  att = jnp.where(mask, jax.nn.softmax(logits), 0.0)
  return att @ seq_emb


def bridge(params: MetaParams, seq_emb: jax.Array, mask: jax.Array) -> jax.Array:
  """Personalised bridge of one user (Eq. 5): ``[d, d]``."""
  p = characteristic(params, seq_emb, mask)
  h = jax.nn.relu(p @ params.dec_w1 + params.dec_b1)
  d = seq_emb.shape[-1]
  return (h @ params.dec_w2 + params.dec_b2).reshape(d, d)


def transfer_user(params: MetaParams, u_src: jax.Array, seq_emb: jax.Array,
                  mask: jax.Array) -> jax.Array:
  """Eq. 6 for one user: ``u_s W_u``.

  Args:
    params: meta parameters.
    u_src: ``[d]`` source user embedding.
    seq_emb: ``[L, d]`` history item embeddings.
    mask: ``bool[L]``.

  Returns:
    ``[d]`` transferred user embedding in the target space.
  """
  chex.assert_rank(u_src, 1)
  return u_src @ bridge(params, seq_emb, mask)


transfer_users = jax.vmap(transfer_user, in_axes=(None, 0, 0, 0))
"""Batched :func:`transfer_user`: ``[B, d], [B, L, d], [B, L] -> [B, d]``."""


def loss_fn(params: MetaParams, u_src: jax.Array, seq_emb: jax.Array, mask: jax.Array,
            v_tgt: jax.Array, rating: jax.Array, weight: jax.Array) -> jax.Array:
  """Task-oriented MSE (Eq. 7) on a minibatch of target ratings.

  Args:
    params: meta parameters.
    u_src: ``[B, d]`` source user embeddings of the raters.
    seq_emb: ``[B, L, d]`` their histories.
    mask: ``bool[B, L]``.
    v_tgt: ``[B, d]`` target item embeddings of the rated items.
    rating: ``float32[B]``.
    weight: ``float32[B]`` 1 on real rows, 0 on padding.

  Returns:
    Scalar mean squared error.
  """
  pred = jnp.sum(transfer_users(params, u_src, seq_emb, mask) * v_tgt, axis=-1)
  return jnp.sum(weight * (pred - rating) ** 2) / jnp.maximum(weight.sum(), 1.0)


def build_histories(user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int,
                    max_seq_len: int, pos_threshold: Optional[float],
                    key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
  """Padded positive-item histories of every source user, vectorised (no user loop).

  Args:
    user, item, rating: ``[R_s]`` source ratings.
    n_users: ``U_s``.
    max_seq_len: ``L``.
    pos_threshold: keep ``rating > pos_threshold``; None keeps all.
    key: PRNG key choosing the subset of users with more than ``L`` positives.

  Returns:
    ``(seq int32[U_s, L], mask bool[U_s, L])``; padded slots hold item 0, masked.
  """
  keep = np.ones(rating.shape, bool) if pos_threshold is None else rating > pos_threshold
  u, i = np.asarray(user)[keep], np.asarray(item)[keep]
  tiebreak = np.asarray(jax.random.permutation(key, u.size))
  order = np.lexsort((tiebreak, u))
  u, i = u[order], i[order]
  starts = np.searchsorted(u, np.arange(n_users))
  rank = np.arange(u.size) - starts[u]
  sel = rank < max_seq_len
  seq = np.zeros((n_users, max_seq_len), np.int32)
  mask = np.zeros((n_users, max_seq_len), bool)
  seq[u[sel], rank[sel]] = i[sel]
  mask[u[sel], rank[sel]] = True
  return seq, mask


@functools.partial(jax.jit, static_argnames=("cfg",))
def train(params: MetaParams, src_user_emb: jax.Array, src_item_emb: jax.Array,
          tgt_item_emb: jax.Array, seq: jax.Array, mask: jax.Array, user: jax.Array,
          item: jax.Array, rating: jax.Array, key: jax.Array, cfg: PTUPCDRConfig):
  """Adam(W) on the meta network over shuffled minibatches (nested ``lax.scan``).

  Args:
    params: initial meta parameters.
    src_user_emb: ``[U_s, d]``; src_item_emb: ``[N_s, d]``; tgt_item_emb: ``[N_t, d]``
      (all frozen).
    seq, mask: ``[U_s, L]`` histories.
    user, item, rating: ``[R]`` target training ratings of training overlap users.
    key: PRNG key for the shuffles.
    cfg: settings.

  Returns:
    ``(params, curve float32[epochs])``.
  """
  grad_fn = jax.value_and_grad(loss_fn)

  def loss_and_grad(p, j, valid):
    u = user[j]
    return grad_fn(p, src_user_emb[u], src_item_emb[seq[u]], mask[u],
                   tgt_item_emb[item[j]], rating[j], valid)

  return minibatch.optimize_epochs(loss_and_grad, params,
                                   optax.adamw(cfg.lr, weight_decay=cfg.weight_decay),
                                   n=user.shape[0], batch_size=cfg.batch_size,
                                   epochs=cfg.epochs, key=key)


def fit_predict(source: tuple[np.ndarray, np.ndarray, np.ndarray],
                target_train: tuple[np.ndarray, np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray], *, train_users: np.ndarray,
                src_user_emb: np.ndarray, src_item_emb: np.ndarray,
                tgt_item_emb: np.ndarray, cfg: PTUPCDRConfig, key: jax.Array) -> np.ndarray:
  """Trains PTUPCDR's meta network and predicts the cold-start test pairs.

  Args:
    source: ``(user, item, rating)`` all source ratings (histories).
    target_train: ``(user, item, rating)`` target training ratings; only those of
      ``train_users`` are used (task-oriented meta training).
    test: ``(user int[T], item int[T])`` cold-start pairs (overlap user indices).
    train_users: ``int[n]`` training overlap users.
    src_user_emb: ``[U_s, d]`` pretrained source user representations.
    src_item_emb: ``[N_s, d]`` pretrained source item embeddings.
    tgt_item_emb: ``[N_t, d]`` pretrained target item embeddings.
    cfg: settings.
    key: PRNG key (history subsets, init, shuffles).

  Returns:
    ``float32[T]`` predictions ``(u_s W_u) . v_t,j``.
  """
  su, si, sr = (np.asarray(a) for a in source)
  tu, ti, tr = (np.asarray(a) for a in target_train)
  test_user, test_item = (np.asarray(a) for a in test)
  train_users = np.asarray(train_users)
  n_users_src, d = src_user_emb.shape
  chex.assert_rank([src_item_emb, tgt_item_emb], [2, 2])
  if src_item_emb.shape[1] != d or tgt_item_emb.shape[1] != d:
    raise ValueError("PTUPCDR needs one embedding size d in both domains "
                     f"(user {d}, src item {src_item_emb.shape[1]}, "
                     f"tgt item {tgt_item_emb.shape[1]})")
  for idx, n, name in ((su, n_users_src, "source user"), (si, src_item_emb.shape[0], "source item"),
                       (ti, tgt_item_emb.shape[0], "target item"),
                       (test_user, n_users_src, "test user"),
                       (test_item, tgt_item_emb.shape[0], "test item"),
                       (train_users, n_users_src, "train_users")):
    check_index(idx, n, name)
  if np.intersect1d(train_users, test_user).size:
    raise ValueError("train_users and test users overlap")
  sel = np.isin(tu, train_users)
  if not sel.any():
    raise ValueError("PTUPCDR: no target training ratings for train_users")
  k_seq, k_init, k_train = jax.random.split(key, 3)
  seq, mask = build_histories(su, si, sr, n_users_src, cfg.max_seq_len, cfg.pos_threshold, k_seq)
  params = init(k_init, d, cfg.meta_dim)
  ps = jnp.asarray(src_user_emb, jnp.float32)
  vs = jnp.asarray(src_item_emb, jnp.float32)
  vt = jnp.asarray(tgt_item_emb, jnp.float32)
  seq_j, mask_j = jnp.asarray(seq), jnp.asarray(mask)
  params, _ = train(params, ps, vs, vt, seq_j, mask_j, jnp.asarray(tu[sel], jnp.int32),
                    jnp.asarray(ti[sel], jnp.int32), jnp.asarray(tr[sel], jnp.float32),
                    k_train, cfg)
  with phase_timer.predicting(test_user.size, params):
    cold = np.unique(test_user)
    u_hat = transfer_users(params, ps[cold], vs[seq_j[cold]], mask_j[cold])
    pos = np.searchsorted(cold, test_user)
    return np.asarray(jnp.sum(u_hat[pos] * vt[test_item], axis=-1))
