"""PF2CDR / P2FCDR (documented adaptation): two domain silos exchanging DP user representations.

After Chen et al.'s P2FCDR ("privacy-preserving federated framework for cross-domain
recommendation"): each domain (an organisation) keeps its own model and ratings; the
domains exchange only user representations of the overlapping users, perturbed for
privacy, and each domain fuses the received representation with its own through a
gate. No code of the paper was read; what is adapted is listed in BUILD_NOTES §5,
baselines.

Here, for the cold-start direction source -> target:

1. The source silo releases, once per overlapping user it is asked about (the bridge
   users and the cold users), ``x_u = clip(p^s_u, C) + N(0, sigma^2 I)`` with the
   Gaussian mechanism of :mod:`pfcdr_jax.baselines.dp_emcdr` (sensitivity ``C``,
   add/remove; sigma from the stated ``(epsilon, delta)``). Nothing else leaves it.
2. The target silo holds its own pretrained user representations ``p^t_u`` and item
   matrix ``V_t`` (frozen). It learns a transfer ``T(x) = x A + a`` and a gate
   ``g = sigmoid([T(x), p^t_u] G + c)`` (elementwise, ``[d]``) and fuses
   ``h_u = g * T(x_u) + (1 - g) * p^t_u`` (P2FCDR's gated fusion of the two domains'
   user representations), trained on the bridge users' target ratings:
   ``mean (h_u . v_j - r)^2 + transfer_weight * mean (T(x_u) . v_j - r)^2``.
   The second term trains the transfer-only path that a cold user needs.
3. A cold user has no target representation (its gate input is missing), so the
   target predicts ``T(x_u) . v_j``.

What each party sends: source -> target: ``x_u`` (``[d]``, once per released user);
target -> source: nothing in this one-directional adaptation. By post-processing and
parallel composition the whole release is (epsilon, delta)-DP per user with respect to
the released source representation (the same caveat as DP-EMCDR: not DP of the source
model's training). ``epsilon=None`` clips but adds no noise.
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
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.infra.checks import check_index
from pfcdr_jax.models import minibatch


@dataclasses.dataclass(frozen=True)
class PF2CDRConfig:
  """PF2CDR settings.

  Attributes:
    epsilon: privacy budget of each released representation; None: no noise.
    delta: DP failure probability.
    clip_norm: L2 clip ``C`` of the released representations.
    mechanism: ``"analytic"`` or ``"classic"`` (see ``dp_emcdr``).
    lr: Adam learning rate.
    weight_decay: AdamW decoupled weight decay.
    epochs: passes over the bridge users' target ratings.
    batch_size: ratings per step.
    transfer_weight: weight of the transfer-only loss term.
  """
  epsilon: Optional[float] = 1.0
  delta: float = 1e-5
  clip_norm: float = 1.0
  mechanism: str = "analytic"
  lr: float = 0.005
  weight_decay: float = 0.0
  epochs: int = 10
  batch_size: int = 512
  transfer_weight: float = 1.0


class FusionParams(NamedTuple):
  """The target silo's transfer and gate.

  Attributes:
    a: ``[d, d]`` and b: ``[d]``: transfer ``T(x) = x a + b``.
    gate_w: ``[2d, d]`` and gate_b: ``[d]``: gate logits from ``[T(x), p^t]``.
  """
  a: jax.Array
  b: jax.Array
  gate_w: jax.Array
  gate_b: jax.Array


class Release(NamedTuple):
  """What the source silo sends: ``vectors[k]`` is user ``users[k]``'s ``x_u``.

  Attributes:
    users: ``int32[n]`` released (overlap) users, sorted.
    vectors: ``[n, d]`` their clipped, noised source representations.
    sigma: the noise std used.
  """
  users: np.ndarray
  vectors: jax.Array
  sigma: float


def release(src_user_emb: np.ndarray, users: np.ndarray, cfg: PF2CDRConfig,
            key: jax.Array) -> Release:
  """The source silo's Gaussian-mechanism release of ``users``' representations."""
  users = np.unique(np.asarray(users, np.int32))
  sigma = 0.0
  if cfg.epsilon is not None:
    sigma = mechanisms.gaussian_sigma(cfg.epsilon, cfg.delta,
                                    mechanisms.sensitivity_of(cfg.clip_norm, "add_remove"),
                                    cfg.mechanism)
  x = mechanisms.privatize(jnp.asarray(src_user_emb, jnp.float32)[users], key, sigma,
                         cfg.clip_norm)
  return Release(users, x, float(sigma))


def init(key: jax.Array, d: int, mean_target_user: jax.Array) -> FusionParams:
  """Transfer 0 plus the mean target user (predicts the mean user untrained); gate ~0.5."""
  w = jax.random.normal(key, (2 * d, d)) * 0.01
  return FusionParams(jnp.zeros((d, d)), jnp.asarray(mean_target_user, jnp.float32), w,
                      jnp.zeros((d,)))


def transfer(params: FusionParams, x: jax.Array) -> jax.Array:
  """``T(x) = x A + a`` for ``x [..., d]``."""
  return x @ params.a + params.b[(None,) * (x.ndim - 1)]


def fuse(params: FusionParams, x: jax.Array, p_t: jax.Array) -> jax.Array:
  """Gated fusion of one user: ``g * T(x) + (1 - g) * p_t`` (``[d]`` each)."""
  chex.assert_rank([x, p_t], [1, 1])
  tx = transfer(params, x)
  g = jax.nn.sigmoid(jnp.concatenate([tx, p_t]) @ params.gate_w + params.gate_b)
  return g * tx + (1.0 - g) * p_t


def loss_fn(params: FusionParams, x: jax.Array, p_t: jax.Array, v: jax.Array,
            rating: jax.Array, weight: jax.Array, transfer_weight: float) -> jax.Array:
  """Fused + transfer-only squared error on a minibatch (``[B, d]`` inputs, ``[B]`` rest)."""
  fused = jnp.sum(jax.vmap(fuse, in_axes=(None, 0, 0))(params, x, p_t) * v, axis=-1)
  alone = jnp.sum(transfer(params, x) * v, axis=-1)
  err = (fused - rating) ** 2 + transfer_weight * (alone - rating) ** 2
  return jnp.sum(weight * err) / jnp.maximum(weight.sum(), 1.0)


@functools.partial(jax.jit, static_argnames=("cfg",))
def train(params: FusionParams, x_rows: jax.Array, p_t_rows: jax.Array, v_t: jax.Array,
          row: jax.Array, item: jax.Array, rating: jax.Array, key: jax.Array,
          cfg: PF2CDRConfig):
  """AdamW over shuffled minibatches of the bridge ratings (``minibatch.optimize_epochs``).

  Args:
    params: initial fusion parameters.
    x_rows: ``[n, d]`` released vectors; p_t_rows: ``[n, d]`` target representations of
      the same users.
    v_t: ``[N_t, d]`` target item matrix (frozen).
    row, item, rating: ``[R]`` bridge ratings (``row`` indexes ``x_rows``).
    key: shuffles.
    cfg: settings.

  Returns:
    ``(params, curve float32[epochs])``.
  """
  grad_fn = jax.value_and_grad(loss_fn)

  def loss_and_grad(p, j, valid):
    k = row[j]
    return grad_fn(p, x_rows[k], p_t_rows[k], v_t[item[j]], rating[j], valid,
                   cfg.transfer_weight)

  return minibatch.optimize_epochs(loss_and_grad, params,
                                   optax.adamw(cfg.lr, weight_decay=cfg.weight_decay),
                                   n=row.shape[0], batch_size=cfg.batch_size,
                                   epochs=cfg.epochs, key=key)


def fit_predict(target_train: tuple[np.ndarray, np.ndarray, np.ndarray],
                pairs: tuple[np.ndarray, np.ndarray], *, train_users: np.ndarray,
                src_user_emb: np.ndarray, tgt_user_emb: np.ndarray,
                tgt_item_emb: np.ndarray, cfg: PF2CDRConfig, key: jax.Array) -> np.ndarray:
  """PF2CDR predictions for cold (user, target item) pairs.

  Args:
    target_train: ``(user, item, rating)`` target training ratings (only the bridge
      users' are used).
    pairs: ``(user int[P], item int[P])`` cold overlap users and target items.
    train_users: ``int[n]`` bridge users.
    src_user_emb: ``[U_s, d]`` source user representations (stay in the source silo).
    tgt_user_emb: ``[U_t, d]``; tgt_item_emb: ``[N_t, d]`` the target silo's model.
    cfg: settings.
    key: PRNG key (release noise, init, shuffles).

  Returns:
    ``float32[P]`` predictions ``T(x_u) . v_j``.
  """
  tu, ti, tr = (np.asarray(a) for a in target_train)
  pu, pi = (np.asarray(a, np.int32) for a in pairs)
  bridge = np.asarray(train_users, np.int32)
  d = src_user_emb.shape[1]
  if tgt_user_emb.shape[1] != d or tgt_item_emb.shape[1] != d:
    raise ValueError("PF2CDR needs one representation size d in both domains")
  check_index(pu, src_user_emb.shape[0], "pair user (source)")
  check_index(pi, tgt_item_emb.shape[0], "pair item")
  check_index(bridge, min(src_user_emb.shape[0], tgt_user_emb.shape[0]), "train_users")
  if np.intersect1d(bridge, pu).size:
    raise ValueError("train_users and predicted users overlap")
  sel = np.isin(tu, bridge)
  if not sel.any():
    raise ValueError("PF2CDR: no target training ratings for train_users")
  k_rel, k_init, k_train = jax.random.split(key, 3)
  rel = release(src_user_emb, np.union1d(bridge, pu), cfg, k_rel)
  p_t = jnp.asarray(tgt_user_emb, jnp.float32)
  v_t = jnp.asarray(tgt_item_emb, jnp.float32)
  params = init(k_init, d, p_t[bridge].mean(0))
  params, _ = train(params, rel.vectors, p_t[rel.users], v_t,
                    jnp.asarray(np.searchsorted(rel.users, tu[sel]), jnp.int32),
                    jnp.asarray(ti[sel], jnp.int32), jnp.asarray(tr[sel], jnp.float32),
                    k_train, cfg)
  with phase_timer.predicting(pu.size, params, rel):
    x = rel.vectors[np.searchsorted(rel.users, pu)]
    return np.asarray(jnp.sum(transfer(params, x) * v_t[pi], axis=-1), np.float32)
