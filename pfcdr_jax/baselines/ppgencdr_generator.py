"""PPGenCDR's source silo: the DP-SGD-trained generator of user preference vectors.

Computes ``G(u) = sigmoid(relu(e_u W1 + b1) W2 + b2)``, the exact per-user clipped
gradient sum of its loss, the Gaussian noise, the full-batch DP-SGD training loop, its
noise multiplier, and the :class:`Release` the source sends (``ppgencdr`` module
docstring, items 1-3).
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.baselines.ppgencdr_config import PPGenCDRConfig
from pfcdr_jax.infra.checks import check_index

# Largest U_s * N_s for which the generator trains on dense [U_s, N_s] matrices.
DENSE_MAX = 20_000_000


class Generator(NamedTuple):
  """The source generator ``G(u) = sigmoid(relu(codes[u] w1 + b1) w2 + b2)``.

  Attributes:
    codes: ``[U, k]`` per-user codes (``U``: every source user while training; the
      released users in a :class:`Release`).
    w1: ``[k, H]``; b1: ``[H]``; w2: ``[H, N_s]``; b2: ``[N_s]`` shared layers.
  """
  codes: jax.Array
  w1: jax.Array
  b1: jax.Array
  w2: jax.Array
  b2: jax.Array


class Release(NamedTuple):
  """What the source sends: the DP generator restricted to ``users``.

  Attributes:
    users: ``int32[n]`` released (overlap) users, sorted; ``generator.codes[k]`` is
      user ``users[k]``'s code.
    generator: :class:`Generator` with ``codes [n, k]``.
    noise_multiplier: ``z`` of the DP-SGD steps (0: no noise).
    epsilon: the budget (None: no noise); delta: its delta.
  """
  users: np.ndarray
  generator: Generator
  noise_multiplier: float
  epsilon: Optional[float]
  delta: float


def hidden(gen: Generator, codes: jax.Array) -> jax.Array:
  """The generator's hidden layer ``relu(codes w1 + b1)``: ``[B, H]`` for codes ``[B, k]``."""
  chex.assert_rank(codes, 2)
  return jax.nn.relu(codes @ gen.w1 + gen.b1[None, :])


def generate(gen: Generator, codes: jax.Array) -> jax.Array:
  """Generated preference vectors ``[B, N_s]`` (values in (0, 1)) of codes ``[B, k]``."""
  return jax.nn.sigmoid(hidden(gen, codes) @ gen.w2 + gen.b2[None, :])


def vectors(rel: Release) -> jax.Array:
  """``[n, N_s]``: ``G(u)`` of every released user (row ``k`` = ``rel.users[k]``)."""
  return generate(rel.generator, rel.generator.codes)


def init_generator(key: jax.Array, n_users: int, n_items: int,
                   cfg: PPGenCDRConfig) -> Generator:
  """N(0, s^2) codes, He-scaled ``w1``, small ``w2``, zero biases (predicts mid-scale)."""
  k_c, k_1, k_2 = jax.random.split(key, 3)
  k, h = cfg.gen_dim, cfg.gen_hidden
  return Generator(cfg.init_scale * jax.random.normal(k_c, (n_users, k)),
                   jax.random.normal(k_1, (k, h)) * jnp.sqrt(2.0 / k), jnp.zeros((h,)),
                   jax.random.normal(k_2, (h, n_items)) * 0.01, jnp.zeros((n_items,)))


class SparseRatings(NamedTuple):
  """Source ratings as ``[R]`` arrays (one per (user, item)): any size.

  Attributes:
    user, item: ``int32[R]``; y: ``[R]`` ratings normalised to [0, 1]; weight: ``[R]``
      per-rating weight ``1 / n_u``.
  """
  user: jax.Array
  item: jax.Array
  y: jax.Array
  weight: jax.Array


class DenseRatings(NamedTuple):
  """The same as ``[U, N_s]`` matrices (``weight`` 0 where unrated): dense matmuls, much
  faster on CPU than the sparse gathers and scatters while ``U N_s`` is small.

  Attributes:
    y: ``[U, N_s]``; weight: ``[U, N_s]``.
  """
  y: jax.Array
  weight: jax.Array


def source_ratings(user: np.ndarray, item: np.ndarray, y: np.ndarray, n_users: int,
                   n_items: int) -> SparseRatings | DenseRatings:
  """The generator's training data, dense when ``n_users n_items <= DENSE_MAX``."""
  weight = (1.0 / np.bincount(user, minlength=n_users)[user]).astype(np.float32)
  if n_users * n_items > DENSE_MAX:
    return SparseRatings(jnp.asarray(user, jnp.int32), jnp.asarray(item, jnp.int32),
                         jnp.asarray(y, jnp.float32), jnp.asarray(weight))
  dense_y = np.zeros((n_users, n_items), np.float32)
  dense_w = np.zeros((n_users, n_items), np.float32)
  dense_y[user, item], dense_w[user, item] = y, weight
  return DenseRatings(jnp.asarray(dense_y), jnp.asarray(dense_w))


def _deltas(gen: Generator, data: SparseRatings | DenseRatings):
  """``(loss, h [U, H], d_codes [U, k], d1 [U, H], d2, out_sq [U])``: one backward pass with
  zero probes on the pre-activations; ``d2`` is ``[R]`` (sparse) or ``[U, N_s]``."""
  n_users = gen.codes.shape[0]
  dense = isinstance(data, DenseRatings)

  def loss(codes, probe1, probe2):
    h = jax.nn.relu(codes @ gen.w1 + gen.b1[None, :] + probe1)
    if dense:
      logit = h @ gen.w2 + gen.b2[None, :] + probe2
    else:
      logit = (jnp.sum(h[data.user] * gen.w2.T[data.item], axis=-1) + gen.b2[data.item]
               + probe2)
    return jnp.sum(data.weight * (jax.nn.sigmoid(logit) - data.y) ** 2), h

  probes = (jnp.zeros((n_users, gen.b1.shape[0])), jnp.zeros_like(data.y))
  (value, h), (d_codes, d1, d2) = jax.value_and_grad(loss, argnums=(0, 1, 2),
                                                     has_aux=True)(gen.codes, *probes)
  out_sq = (jnp.sum(d2 ** 2, axis=1) if dense
            else jax.ops.segment_sum(d2 ** 2, data.user, n_users))
  return value, h, d_codes, d1, d2, out_sq


def clipped_grad_sum(gen: Generator, data: SparseRatings | DenseRatings,
                     clip: jax.Array) -> tuple[Generator, jax.Array, jax.Array]:
  """``sum_u clip(grad L_u, C)`` over all generator parameters, exact per user.

  ``L_u = sum_{j rated by u} weight_uj (G(u)_j - y_uj)^2``. A dense layer's per-user
  gradient is ``outer(input_u, delta_u)``, so its norm is ``|input_u| |delta_u|``; the
  output layer's per-user gradient touches the distinct columns of the user's items
  (one rating per (user, item)), so its squared norm is ``(|h_u|^2 + 1) sum_j
  delta_uj^2``. No per-user gradient is materialised.

  Args:
    gen: generator over all ``U`` source users.
    data: the ratings (:func:`source_ratings`).
    clip: ``C``.

  Returns:
    ``(clipped gradient sum as a Generator, per-user unclipped norms [U], sum_u L_u)``.
  """
  n_items = gen.b2.shape[0]
  value, h, d_codes, d1, d2, out_sq = _deltas(gen, data)
  sq = (jnp.sum(d_codes ** 2, 1) + (jnp.sum(gen.codes ** 2, 1) + 1.0) * jnp.sum(d1 ** 2, 1)
        + (jnp.sum(h ** 2, 1) + 1.0) * out_sq)
  norm = jnp.sqrt(sq)
  c = jnp.minimum(1.0, clip / jnp.maximum(norm, 1e-12))
  d1c = c[:, None] * d1
  if isinstance(data, DenseRatings):
    d2c = c[:, None] * d2
    w2, b2 = h.T @ d2c, d2c.sum(0)
  else:
    d2c = c[data.user] * d2
    w2 = jax.ops.segment_sum(d2c[:, None] * h[data.user], data.item, n_items).T
    b2 = jax.ops.segment_sum(d2c, data.item, n_items)
  grads = Generator(c[:, None] * d_codes, gen.codes.T @ d1c, d1c.sum(0), w2, b2)
  return grads, norm, value


def add_noise(grads: Generator, std: jax.Array, key: jax.Array) -> Generator:
  """``grads + N(0, std^2)`` on every coordinate of every parameter."""
  leaves, tree = jax.tree_util.tree_flatten(grads)
  keys = jax.random.split(key, len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [g + std * jax.random.normal(k, g.shape, g.dtype) for g, k in zip(leaves, keys)])


@functools.partial(jax.jit, static_argnames=("steps",))
def train_generator(gen: Generator, data: SparseRatings | DenseRatings, noise_std: jax.Array,
                    key: jax.Array, *, steps: int, lr: jax.Array, clip: jax.Array,
                    weight_decay: jax.Array = 0.0) -> tuple[Generator, jax.Array]:
  """``steps`` full-batch DP-SGD steps (``lax.scan``), AdamW on the noisy clipped sum / U.

  Args:
    gen: initial generator over every source user.
    data: the source ratings (:func:`source_ratings`).
    noise_std: ``z C`` (0: no noise).
    key: noise key (step ``t`` uses ``fold_in(key, t)``).
    steps: ``T`` (static); lr, clip, weight_decay: AdamW rate, ``C``, decoupled decay
      (traced: a grid over them compiles once).

  Returns:
    ``(generator, loss float32[steps])`` (mean per-user loss before each step).
  """
  opt = optax.adamw(lr, weight_decay=weight_decay)
  n_users = gen.codes.shape[0]

  def step(carry, t):
    g, state = carry
    grads, _, value = clipped_grad_sum(g, data, clip)
    grads = add_noise(grads, noise_std, jax.random.fold_in(key, t))
    grads = jax.tree_util.tree_map(lambda x: x / n_users, grads)
    updates, state = opt.update(grads, state, g)
    return (optax.apply_updates(g, updates), state), value / n_users

  (gen, _), curve = jax.lax.scan(step, (gen, opt.init(gen)), jnp.arange(steps))
  return gen, curve


def noise_multiplier(cfg: PPGenCDRConfig) -> float:
  """``z`` for ``cfg.epsilon`` over ``cfg.gen_steps`` full-participation steps (0: none)."""
  if cfg.epsilon is None:
    return 0.0
  if cfg.gen_steps < 1:
    raise ValueError(f"PPGenCDR: gen_steps must be >= 1 for a DP guarantee, got "
                     f"{cfg.gen_steps}")
  return fedcdr.noise_multiplier(cfg.epsilon, cfg.delta, cfg.gen_steps)


def source_release(source: tuple[np.ndarray, np.ndarray, np.ndarray], n_users_src: int,
                   n_items_src: int, users: np.ndarray, cfg: PPGenCDRConfig,
                   key: jax.Array) -> Release:
  """The source silo's side: trains the DP generator on all its ratings, releases ``users``.

  Args:
    source: ``(user, item, rating)`` every source rating (one per (user, item)).
    n_users_src, n_items_src: source sizes.
    users: ``int[n]`` users to release (the overlap users the target asks about).
    cfg: settings; key: PRNG key (init, noise).

  Returns:
    The :class:`Release`.
  """
  su, si, sr = (np.asarray(a) for a in source)
  check_index(su, n_users_src, "source user")
  check_index(si, n_items_src, "source item")
  check_index(np.asarray(users), n_users_src, "released user")
  lo, hi = (float(v) for v in cfg.rating_range)
  if not hi > lo:
    raise ValueError(f"PPGenCDR: rating_range must be (lo, hi) with lo < hi, got "
                     f"{cfg.rating_range}")
  if sr.size and (sr.min() < lo or sr.max() > hi):
    raise ValueError(f"PPGenCDR: source ratings span [{sr.min():g}, {sr.max():g}], outside "
                     f"rating_range {cfg.rating_range}")
  if np.unique(su.astype(np.int64) * n_items_src + si).size != su.size:
    raise ValueError("PPGenCDR: source has several ratings of one (user, item); "
                     "deduplicate first")
  z = noise_multiplier(cfg)
  y = (sr.astype(np.float32) - lo) / (hi - lo)
  k_init, k_noise = jax.random.split(key)
  gen = init_generator(k_init, n_users_src, n_items_src, cfg)
  gen, _ = train_generator(gen, source_ratings(su, si, y, n_users_src, n_items_src),
                           jnp.asarray(z * cfg.clip_norm, jnp.float32), k_noise,
                           steps=cfg.gen_steps, lr=jnp.asarray(cfg.gen_lr, jnp.float32),
                           clip=jnp.asarray(cfg.clip_norm, jnp.float32),
                           weight_decay=jnp.asarray(cfg.gen_weight_decay, jnp.float32))
  users = np.unique(np.asarray(users, np.int32))
  return Release(users, gen._replace(codes=gen.codes[users]), float(z), cfg.epsilon,
                 cfg.delta)
