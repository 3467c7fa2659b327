"""FedCDR (documented adaptation): federated cross-domain recommendation, simulated.

After Wu et al., "FedCDR: Federated Cross-Domain Recommendation for Privacy-Preserving
Rating Prediction" (CIKM'22): every user is a client that keeps its personal model on
its own device; a server holds the shared item model and only ever receives model
updates; the cross-domain knowledge transfer happens on the client, which holds the
user's data of both domains. This module is a small, explicit version of that protocol
(no code of the paper was read); what is adapted is listed in BUILD_NOTES §5, baselines.

Model (per domain ``D in {s, t}``, rank ``d``): a client ``u`` holds ``x_u = [p_u, b_u]``
(``[d+1]``, embedding + user bias), the server holds ``y_j = [q_j, c_j]`` for every item
and predicts ``r_uj = mu_D + b_u + c_j + p_u . q_j``; ``mu_D`` is the domain's mean
training rating (one securely aggregated ``(sum, count)`` before round 1). The
cross-domain part is a shared linear map ``f(x) = x A + a`` (``[d+1] -> [d+1]``) held by
the server and trained federatedly by the clients that are in both domains, on their
target ratings predicted from ``f(x^s_u)`` (``x^s_u`` is not changed by this loss:
a cold user's source representation is trained exactly like a bridge user's). A cold
user predicts, on its own device, ``mu_t + f(x^s_u) . [q_j, 1] + c_j``.

Rounds (``lax.scan``; all clients take part in every round; clients are vectorised with
``jax.vmap``). In round ``r`` every client, in each domain it has ratings in, takes its
next ``local_batch`` ratings (a fixed per-client shuffle, cycled), downloads those items'
rows, and computes the gradient of its squared error. It applies the gradient of its
own ``x_u`` locally (Adam; the stacked per-client Adam steps are elementwise, so one
optax Adam on the stacked table is the same computation) and sends the rest, an
:class:`Upload`. The server sums the uploads (secure aggregation is assumed: it sees the
sum only), optionally adds Gaussian noise, divides by the number of ratings used and
takes an Adam step on ``(y^s, y^t, A, a)``.

What each party sends (also :class:`Upload`):
  * client -> server, per round: the item ids of its local batch and the gradients of
    those items' rows (per domain it has data in), and, for bridge users, the gradient
    of ``(A, a)``. Never ``x_u``, never a rating.
  * server -> client, per round: the current rows of the items in its batch and
    ``(A, a)``; at the end the whole target item table and ``(A, a)`` (for prediction).
  * before round 1: ``(sum of ratings, count)`` per domain, securely aggregated.

Differential privacy (optional, ``clip_norm`` and ``epsilon``): DP-FedAvg style. Each of
a person's (up to three) upload parts is clipped to ``C / sqrt(3)``, so the whole
upload of one person in one round has L2 norm ``<= C``; the server adds ``N(0, (z C)^2)``
to every coordinate of the summed update. With full participation, ``T`` rounds of the
Gaussian mechanism with noise multiplier ``z`` compose exactly to ``sqrt(T)/z``-GDP
(Dong, Roth & Su 2022, Cor. 2); :func:`noise_multiplier` picks the smallest ``z`` whose
GDP curve gives the stated ``(epsilon, delta)`` (user-level, add/remove one person,
w.r.t. everything the server sees; the pre-round sums and the local predictions are
not charged: the means, and the per-round count of ratings used, ``sum_u min(B, n_u)``,
the same in every round, are treated as public).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import sparse

from pfcdr_jax.infra import phase_timer
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.infra.checks import check_index

N_UPLOAD_PARTS = 3  # source rows, target rows, map gradient


@dataclasses.dataclass(frozen=True)
class FedCDRConfig:
  """FedCDR settings.

  Attributes:
    dim: rank ``d`` of the user and item embeddings.
    rounds: communication rounds ``T``.
    local_batch: ratings a client uses per round and domain.
    lr: Adam learning rate of the clients and of the server.
    l2: squared-L2 penalty on every embedding row in the loss (per rating).
    init_scale: std of the N(0, s^2) initial embeddings (biases and map start at 0).
    clip_norm: per-person L2 clip ``C`` of a round's upload; None: no clipping.
    epsilon: user-level privacy budget over all rounds (needs ``clip_norm``); None:
      no noise.
    delta: DP failure probability.
  """
  dim: int = 10
  rounds: int = 100
  local_batch: int = 64
  lr: float = 0.01
  l2: float = 1e-3
  init_scale: float = 0.1
  clip_norm: Optional[float] = None
  epsilon: Optional[float] = None
  delta: float = 1e-5


class ClientTables(NamedTuple):
  """The clients' local state, stacked: row ``u`` lives on client ``u``'s device.

  Attributes:
    x_s: ``[U_s, d+1]`` source representations ``[p_u, b_u]``.
    x_t: ``[U_t, d+1]`` target representations.
  """
  x_s: jax.Array
  x_t: jax.Array


class ServerModel(NamedTuple):
  """The server's shared model.

  Attributes:
    y_s: ``[N_s, d+1]`` source item rows ``[q_j, c_j]``.
    y_t: ``[N_t, d+1]`` target item rows.
    a_map: ``[d+1, d+1]`` cross-domain map weight ``A``.
    b_map: ``[d+1]`` its bias ``a``.
  """
  y_s: jax.Array
  y_t: jax.Array
  a_map: jax.Array
  b_map: jax.Array


class Upload(NamedTuple):
  """What clients send in one round (stacked over clients; zeros where absent).

  Attributes:
    src_items: ``int32[U_s, B]`` source item ids of each client's batch.
    src_grads: ``[U_s, B, d+1]`` gradients of those item rows.
    tgt_items: ``int32[U_t, B]``; tgt_grads: ``[U_t, B, d+1]`` the same in the target.
    map_a: ``[n_bridge, d+1, d+1]``; map_b: ``[n_bridge, d+1]`` gradients of the map
      from the bridge (training overlap) users.
  """
  src_items: jax.Array
  src_grads: jax.Array
  tgt_items: jax.Array
  tgt_grads: jax.Array
  map_a: jax.Array
  map_b: jax.Array


class Domain(NamedTuple):
  """One domain's ratings as per-client padded lists (a fixed per-client shuffle).

  Attributes:
    items: ``int32[U, L]``; ratings: ``float32[U, L]``; count: ``int32[U]`` valid length.
    mu: the domain's mean training rating.
  """
  items: jax.Array
  ratings: jax.Array
  count: jax.Array
  mu: jax.Array


def noise_multiplier(epsilon: float, delta: float, rounds: int) -> float:
  """Smallest ``z`` such that ``rounds`` Gaussian rounds of multiplier ``z`` are (eps, delta)-DP.

  ``T`` compositions of ``1/z``-GDP are ``sqrt(T)/z``-GDP, the privacy curve of one
  Gaussian mechanism with sensitivity 1 and noise ``z / sqrt(T)``; so ``z = sqrt(T)
  sigma_analytic(eps, delta, 1)`` (Balle & Wang's exact calibration).
  """
  if rounds < 1:
    raise ValueError(f"rounds must be >= 1 for a DP guarantee, got {rounds}")
  return math.sqrt(rounds) * mechanisms.analytic_gaussian_sigma(epsilon, delta, 1.0)


def client_lists(user: np.ndarray, item: np.ndarray, rating: np.ndarray, n_users: int,
                 key: jax.Array) -> Domain:
  """Per-client padded rating lists, each client's ratings in a random order (no loop)."""
  tiebreak = np.asarray(jax.random.permutation(key, user.size))
  order = np.lexsort((tiebreak, user))
  u, i, r = user[order], item[order], rating[order]
  count = np.bincount(u, minlength=n_users).astype(np.int32)
  starts = np.concatenate([[0], np.cumsum(count)[:-1]])
  pos = np.arange(u.size) - starts[u]
  width = max(int(count.max(initial=0)), 1)
  items = np.zeros((n_users, width), np.int32)
  ratings = np.zeros((n_users, width), np.float32)
  items[u, pos], ratings[u, pos] = i, r
  mu = float(rating.mean()) if rating.size else 0.0
  return Domain(jnp.asarray(items), jnp.asarray(ratings), jnp.asarray(count),
                jnp.asarray(mu, jnp.float32))


def round_batch(dom: Domain, r: jax.Array, batch: int) -> tuple[jax.Array, ...]:
  """Round ``r``'s local batch of every client: ``(items, ratings, mask)``, ``[U, B]``.

  Positions ``(r B + k) mod n_u`` for ``k < min(B, n_u)``: distinct items, cycling
  through the client's list.
  """
  k = jnp.arange(batch)
  n = jnp.maximum(dom.count, 1)[:, None]
  pos = (r * batch + k[None, :]) % n
  mask = k[None, :] < dom.count[:, None]
  take = lambda a: jnp.take_along_axis(a, pos, axis=1)
  return take(dom.items), take(dom.ratings), mask


def observed_items(dom: Domain, rounds: int, batch: int, n_items: int
                   ) -> sparse.csr_matrix:
  """bool csr[U, n_items]: the items each client names in its uploads over ``rounds``.

  Round ``r`` uses list positions ``(r B + k) mod n_u``, ``k < min(B, n_u)``
  (:func:`round_batch`), so rounds ``0..T-1`` together name the first
  ``min(n_u, T B)`` items of the client's list: all of them once ``T B >= n_u``.
  The server needs these ids to send the rows and to apply the gradients, so it sees
  them with or without secure aggregation of the gradient values.
  """
  items, count = np.asarray(dom.items), np.asarray(dom.count)
  seen = np.arange(items.shape[1])[None, :] < np.minimum(count, rounds * batch)[:, None]
  rows = np.broadcast_to(np.arange(items.shape[0])[:, None], items.shape)
  out = sparse.csr_matrix((np.ones(int(seen.sum()), bool), (rows[seen], items[seen])),
                          shape=(items.shape[0], n_items))
  out.sum_duplicates()
  return out


def predict_one(x: jax.Array, y: jax.Array, mu: jax.Array) -> jax.Array:
  """``mu + b_u + c_j + p_u . q_j`` for ``x = [p_u, b_u]``, rows ``y [B, d+1]``: ``[B]``."""
  return mu + x[-1] + y[:, -1] + y[:, :-1] @ x[:-1]


def client_grads(x: jax.Array, y: jax.Array, rating: jax.Array, mask: jax.Array,
                 mu: jax.Array, l2: float) -> tuple[jax.Array, jax.Array]:
  """One client's gradients in one domain (summed squared error + L2).

  Args:
    x: ``[d+1]`` the client's representation; y: ``[B, d+1]`` downloaded item rows.
    rating, mask: ``[B]``; mu: scalar.
    l2: penalty.

  Returns:
    ``(grad_x [d+1] (kept local), grad_y [B, d+1] (uploaded))``.
  """
  chex.assert_rank([x, y], [1, 2])

  def loss(x, y):
    err = jnp.where(mask, predict_one(x, y, mu) - rating, 0.0)
    reg = l2 * jnp.sum(mask[:, None] * (y ** 2 + x[None, :] ** 2))
    return 0.5 * jnp.sum(err ** 2) + 0.5 * reg

  return jax.grad(loss, argnums=(0, 1))(x, y)


def map_grads(a_map: jax.Array, b_map: jax.Array, x_src: jax.Array, y: jax.Array,
              rating: jax.Array, mask: jax.Array, mu: jax.Array) -> tuple[jax.Array, ...]:
  """A bridge client's gradient of the map on its target batch (``x_src`` fixed)."""
  def loss(a, b):
    pred = predict_one(x_src @ a + b, y, mu)
    return 0.5 * jnp.sum(jnp.where(mask, pred - rating, 0.0) ** 2)

  return jax.grad(loss, argnums=(0, 1))(a_map, b_map)


def clip_parts(up: Upload, clip: float) -> Upload:
  """Clips each client's part of each upload to ``clip`` (per person: ``<= clip sqrt(3)``)."""
  def scale(g, axes):
    norm = jnp.sqrt(jnp.sum(g ** 2, axis=axes, keepdims=True))
    return g * jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-12))

  map_norm = jnp.sqrt(jnp.sum(up.map_a ** 2, axis=(1, 2)) + jnp.sum(up.map_b ** 2, axis=1))
  f = jnp.minimum(1.0, clip / jnp.maximum(map_norm, 1e-12))
  return up._replace(src_grads=scale(up.src_grads, (1, 2)), tgt_grads=scale(up.tgt_grads, (1, 2)),
                     map_a=up.map_a * f[:, None, None], map_b=up.map_b * f[:, None])


def client_uploads(clients: ClientTables, server: ServerModel, src: Domain, tgt: Domain,
                   bridge: jax.Array, r: jax.Array, cfg: FedCDRConfig):
  """Every client's round-``r`` computation (vmapped): local grads and the :class:`Upload`."""
  grads = jax.vmap(client_grads, in_axes=(0, 0, 0, 0, None, None))
  it_s, ra_s, m_s = round_batch(src, r, cfg.local_batch)
  it_t, ra_t, m_t = round_batch(tgt, r, cfg.local_batch)
  gx_s, gy_s = grads(clients.x_s, server.y_s[it_s], ra_s, m_s, src.mu, cfg.l2)
  gx_t, gy_t = grads(clients.x_t, server.y_t[it_t], ra_t, m_t, tgt.mu, cfg.l2)
  mg = jax.vmap(map_grads, in_axes=(None, None, 0, 0, 0, 0, None))
  g_a, g_b = mg(server.a_map, server.b_map, jax.lax.stop_gradient(clients.x_s[bridge]),
                server.y_t[it_t[bridge]], ra_t[bridge], m_t[bridge], tgt.mu)
  up = Upload(it_s, gy_s, it_t, gy_t, g_a, g_b)
  n_used = m_s.sum() + m_t.sum() + m_t[bridge].sum()
  return ClientTables(gx_s, gx_t), up, n_used


def aggregate(up: Upload, server: ServerModel, n_used: jax.Array, sigma: float,
              key: jax.Array) -> ServerModel:
  """The server's view: the sum of the uploads (+ noise), per rating used, as dense grads."""
  d1 = server.y_s.shape[1]
  seg = lambda items, g, n: jax.ops.segment_sum(g.reshape(-1, d1), items.reshape(-1), n)
  total = ServerModel(seg(up.src_items, up.src_grads, server.y_s.shape[0]),
                      seg(up.tgt_items, up.tgt_grads, server.y_t.shape[0]),
                      up.map_a.sum(0), up.map_b.sum(0))
  leaves, tree = jax.tree_util.tree_flatten(total)
  keys = jax.random.split(key, len(leaves))
  noisy = [g + sigma * jax.random.normal(k, g.shape, g.dtype) for g, k in zip(leaves, keys)]
  scale = 1.0 / jnp.maximum(n_used, 1).astype(jnp.float32)
  return jax.tree_util.tree_unflatten(tree, [g * scale for g in noisy])


@functools.partial(jax.jit, static_argnames=("cfg", "sigma"))
def train(clients: ClientTables, server: ServerModel, src: Domain, tgt: Domain,
          bridge: jax.Array, key: jax.Array, cfg: FedCDRConfig, sigma: float):
  """``cfg.rounds`` federated rounds (``lax.scan``).

  Args:
    clients, server: initial state.
    src, tgt: the domains' per-client lists.
    bridge: ``int32[n]`` bridge users (same index in both domains).
    key: noise key.
    cfg: settings.
    sigma: std of the noise added to the summed update (0: none).

  Returns:
    ``(clients, server, loss_proxy float32[rounds])`` (the mean squared gradient norm
    of the server update, a cheap progress trace).
  """
  c_opt, s_opt = optax.adam(cfg.lr), optax.adam(cfg.lr)

  def one_round(carry, r):
    cl, sv, c_state, s_state = carry
    gx, up, n_used = client_uploads(cl, sv, src, tgt, bridge, r, cfg)
    if cfg.clip_norm is not None:
      up = clip_parts(up, cfg.clip_norm / math.sqrt(N_UPLOAD_PARTS))
    g_server = aggregate(up, sv, n_used, sigma, jax.random.fold_in(key, r))
    c_upd, c_state = c_opt.update(gx, c_state, cl)
    s_upd, s_state = s_opt.update(g_server, s_state, sv)
    trace = sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(g_server))
    return (optax.apply_updates(cl, c_upd), optax.apply_updates(sv, s_upd), c_state,
            s_state), trace

  carry = (clients, server, c_opt.init(clients), s_opt.init(server))
  (clients, server, _, _), trace = jax.lax.scan(one_round, carry, jnp.arange(cfg.rounds))
  return clients, server, trace


def init(key: jax.Array, n_users_src: int, n_items_src: int, n_users_tgt: int,
         n_items_tgt: int, cfg: FedCDRConfig) -> tuple[ClientTables, ServerModel]:
  """N(0, s^2) embeddings with zero biases; the map starts at 0 (predicts ``mu_t + c_j``)."""
  ks = jax.random.split(key, 4)
  d = cfg.dim

  def table(k, n):
    emb = cfg.init_scale * jax.random.normal(k, (n, d))
    return jnp.concatenate([emb, jnp.zeros((n, 1))], axis=1)

  clients = ClientTables(table(ks[0], n_users_src), table(ks[1], n_users_tgt))
  server = ServerModel(table(ks[2], n_items_src), table(ks[3], n_items_tgt),
                       jnp.zeros((d + 1, d + 1)), jnp.zeros((d + 1,)))
  return clients, server


def fit_predict(source: tuple[np.ndarray, np.ndarray, np.ndarray],
                target_train: tuple[np.ndarray, np.ndarray, np.ndarray],
                pairs: tuple[np.ndarray, np.ndarray], *, n_users_src: int, n_items_src: int,
                n_users_tgt: int, n_items_tgt: int, train_users: np.ndarray,
                cfg: FedCDRConfig, key: jax.Array) -> np.ndarray:
  """Simulates FedCDR's rounds and predicts the cold (user, target item) pairs.

  Args:
    source: ``(user, item, rating)`` all source ratings (each on its user's device).
    target_train: target training ratings.
    pairs: ``(user int[P], item int[P])`` cold overlap users and target items.
    n_users_src, n_items_src, n_users_tgt, n_items_tgt: domain sizes.
    train_users: ``int[n]`` bridge users (train the map); disjoint from ``pairs``' users.
    cfg: settings.
    key: PRNG key (list shuffles, init, DP noise).

  Returns:
    ``float32[P]`` predictions ``mu_t + f(x^s_u) . [q_j, 1] + c_j``.
  """
  su, si, sr = (np.asarray(a) for a in source)
  tu, ti, tr = (np.asarray(a) for a in target_train)
  pu, pi = (np.asarray(a, np.int32) for a in pairs)
  bridge = np.asarray(train_users, np.int32)
  for idx, n, name in ((su, n_users_src, "source user"), (si, n_items_src, "source item"),
                       (tu, n_users_tgt, "target user"), (ti, n_items_tgt, "target item"),
                       (pu, n_users_src, "pair user"), (pi, n_items_tgt, "pair item"),
                       (bridge, min(n_users_src, n_users_tgt), "train_users")):
    check_index(idx, n, name)
  if np.intersect1d(bridge, pu).size:
    raise ValueError("train_users and predicted users overlap")
  if cfg.epsilon is not None and cfg.clip_norm is None:
    raise ValueError("FedCDR: epsilon needs clip_norm (the noise is calibrated to it)")
  sigma = 0.0
  if cfg.epsilon is not None:
    sigma = noise_multiplier(cfg.epsilon, cfg.delta, cfg.rounds) * cfg.clip_norm
  k_s, k_t, k_init, k_noise = jax.random.split(key, 4)
  src = client_lists(su, si, sr.astype(np.float32), n_users_src, k_s)
  tgt = client_lists(tu, ti, tr.astype(np.float32), n_users_tgt, k_t)
  clients, server = init(k_init, n_users_src, n_items_src, n_users_tgt, n_items_tgt, cfg)
  clients, server, _ = train(clients, server, src, tgt, jnp.asarray(bridge), k_noise, cfg,
                             float(sigma))
  with phase_timer.predicting(pu.size, clients, server):
    x_hat = clients.x_s[pu] @ server.a_map + server.b_map[None, :]
    y = server.y_t[pi]
    pred = tgt.mu + x_hat[:, -1] + y[:, -1] + jnp.sum(x_hat[:, :-1] * y[:, :-1], axis=-1)
    return np.asarray(pred, np.float32)
