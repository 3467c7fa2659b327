"""Rating scorers MF, GMF and YouTube-DNN as pure functions of a params pytree.

Every scorer predicts ``pred(u, j) = user_repr(params, u) . V[j]`` (Eq. 7 for MF),
so its prediction is linear in an item-weight vector ``b`` once the item input is
the soft mix ``b @ V`` (Eq. 8-9). That is what lets the inversion use a closed form
(``linear_in_b=True``).

YouTube-DNN's user tower is one Linear d -> d with a bias by default, as in the
authors' public code (github.com/walcheng/PFCDR, ``DNNBase``: ``Linear(emb_dim,
emb_dim)`` on the user embedding, dot product with the raw item embedding);
``get_scorer("dnn", dnn_tower="mlp")`` gives the deeper tower Dense(2d) -> ReLU ->
Dense(d) this project used before (``PretrainConfig.dnn_tower``, ``--dnn_tower``).
``user_repr`` reads which tower a params pytree holds from its keys.

Initialisation (documented choice): user/item embeddings ~ N(0, 0.1^2), like a
small-Gaussian ``nn.Embedding`` init; GMF's output vector ``h`` starts at ones so
GMF starts out as MF; the linear DNN tower and the MLP's output layer use
LeCun-normal weights, the MLP's ReLU layer He-normal, all biases zero.

Rating offsets (``get_scorer(..., offsets=...)``, ``PretrainConfig.offsets``). The
paper's models predict the bare product ``w_u . v_j``, which starts at 0 on a 1-5 scale:
on sparse data (few ratings per item, items in the held-out slice never seen in
training) that zero start is a saddle the training does not leave, and every learned
method then predicts ~0. ``offsets="bias"`` (the project's default) adds the classic
biased-MF terms ``mu + b_u + c_j`` (global mean, user and item bias; ``mu`` starts at
the training mean, the biases at 0, so a model starts as the mean predictor), and
``"global"`` adds ``mu`` alone. Both are written as two (one) extra columns of the same
dot product, ``user_repr(u) = [w_u, 1, b_u]`` and ``item_rows(j) = [v_j, mu + c_j, 1]``,
so every scorer still predicts ``user_repr(u) . V[j]``: the inversion (linear in the
item-weight vector ``b``), the bridge, the top-k match and Eq. (14) run unchanged on
the augmented representations (a soft item ``b @ V`` carries ``b``'s weighted item
bias and its total weight). ``offsets="none"`` is the paper's form.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

Params = Any
EMB_STD = 0.1


class Scorer(NamedTuple):
  """A rating model as a bundle of pure functions.

  Attributes:
    name: "mf", "gmf" or "dnn".
    init: ``init(key, n_users, n_items, dim) -> params``.
    user_repr: ``user_repr(params, users:int[B]) -> [B, d]``.
    item_matrix: ``item_matrix(params) -> V [N, d]``.
    predict: ``predict(params, users:int[B], items:int[B]) -> [B]``.
    predict_soft: ``predict_soft(params, users:int[B], item_vecs:[B, d]) -> [B]``.
    linear_in_b: prediction is ``user_repr . (b @ V)``, linear in ``b``.
    offsets: "none", "global" or "bias" (module docstring).
  """
  name: str
  init: Callable[..., Params]
  user_repr: Callable[[Params, jax.Array], jax.Array]
  item_matrix: Callable[[Params], jax.Array]
  predict: Callable[[Params, jax.Array, jax.Array], jax.Array]
  predict_soft: Callable[[Params, jax.Array, jax.Array], jax.Array]
  linear_in_b: bool
  offsets: str = "none"


_MIN_DRAW = 1 << 16


@functools.partial(jax.jit, static_argnums=1)
def _flat_normal(key: jax.Array, size: int) -> jax.Array:
  return jax.random.normal(key, (size,), jnp.float32)


def normal_table(key: jax.Array, n_rows: int, dim: int) -> jax.Array:
  """``EMB_STD * jax.random.normal(key, (n_rows, dim))``, bit for bit, from a draw that
  tables of many sizes share.

  With ``jax_threefry_partitionable`` (JAX's default) entry ``i`` of a draw depends on
  the key and ``i`` only, so the first ``n_rows * dim`` entries of a longer flat draw
  are the table. The draw's length is the next power of two (at least ``2**16``): one
  compiled sampler serves every table up to that size. Compiling the sampler costs
  about 0.8 s on a 2-core CPU, and a run draws four tables of four sizes. Without
  the flag, or under a trace, it draws the table's own shape.
  """
  size = n_rows * dim
  if (not jax.config.jax_threefry_partitionable or size == 0
      or isinstance(key, jax.core.Tracer)):
    return EMB_STD * jax.random.normal(key, (n_rows, dim), jnp.float32)
  draw = np.asarray(_flat_normal(key, max(_MIN_DRAW, 1 << (size - 1).bit_length())))
  # The scale is applied on its own, as the eager product does (fused into the draw,
  # XLA rounds some entries differently).
  return jax.device_put(draw[:size].reshape(n_rows, dim) * np.float32(EMB_STD))


def _embeddings(key: jax.Array, n_users: int, n_items: int, dim: int) -> dict:
  ku, ki = jax.random.split(key)
  return {"user": normal_table(ku, n_users, dim), "item": normal_table(ki, n_items, dim)}


# --- MF ----------------------------------------------------------------------

def mf_init(key: jax.Array, n_users: int, n_items: int, dim: int = 10) -> dict:
  """MF params ``{"user": [U, d], "item": [N, d]}`` ~ N(0, 0.1^2)."""
  return _embeddings(key, n_users, n_items, dim)


def mf_user_repr(params: Params, users: jax.Array) -> jax.Array:
  """MF user representation ``U_u`` (Eq. 7). users: int[B] -> [B, d]."""
  return params["user"][users]


# --- GMF ---------------------------------------------------------------------

def gmf_init(key: jax.Array, n_users: int, n_items: int, dim: int = 10) -> dict:
  """GMF params: embeddings plus the output vector ``h`` [d] (init ones)."""
  params = _embeddings(key, n_users, n_items, dim)
  params["h"] = jnp.ones((dim,), jnp.float32)
  return params


def gmf_user_repr(params: Params, users: jax.Array) -> jax.Array:
  """GMF: ``h . (U_u * V_j) = (h * U_u) . V_j``; returns ``h * U_u`` [B, d]."""
  return params["user"][users] * params["h"][None, :]


# --- YouTube-DNN two-tower -----------------------------------------------------

DNN_TOWERS = ("linear", "mlp")


def dnn_init(key: jax.Array, n_users: int, n_items: int, dim: int = 10,
             hidden: int | None = None, tower: str = "linear") -> dict:
  """Two-tower params: embeddings plus the user tower.

  ``tower="linear"``: ``{"w": [d, d], "b": [d]}`` (one Linear, the public code's);
  ``tower="mlp"``: ``{"w1": [d, h], "b1": [h], "w2": [h, d], "b2": [d]}``
  (Dense(h) -> ReLU -> Dense(d), ``h = 2d`` unless given).
  """
  if tower not in DNN_TOWERS:
    raise ValueError(f"unknown DNN tower {tower!r}; choose from {DNN_TOWERS}")
  hidden = 2 * dim if hidden is None else hidden
  ke, k1, k2 = jax.random.split(key, 3)
  params = _embeddings(ke, n_users, n_items, dim)
  if tower == "linear":
    params["tower"] = {
        "w": jnp.sqrt(1.0 / dim) * jax.random.normal(k1, (dim, dim), jnp.float32),
        "b": jnp.zeros((dim,), jnp.float32),
    }
    return params
  params["tower"] = {
      "w1": jnp.sqrt(2.0 / dim) * jax.random.normal(k1, (dim, hidden), jnp.float32),
      "b1": jnp.zeros((hidden,), jnp.float32),
      "w2": jnp.sqrt(1.0 / hidden) * jax.random.normal(k2, (hidden, dim), jnp.float32),
      "b2": jnp.zeros((dim,), jnp.float32),
  }
  return params


def dnn_tower(tower: dict, x: jax.Array) -> jax.Array:
  """User tower (linear or MLP, by the keys of `tower`). x: [B, d] -> [B, d]."""
  if "w" in tower:
    return x @ tower["w"] + tower["b"][None, :]
  h = jax.nn.relu(x @ tower["w1"] + tower["b1"][None, :])
  return h @ tower["w2"] + tower["b2"][None, :]


def dnn_user_repr(params: Params, users: jax.Array) -> jax.Array:
  """YouTube-DNN user representation ``tower(U_u)`` [B, d]."""
  return dnn_tower(params["tower"], params["user"][users])


# --- shared ------------------------------------------------------------------

OFFSETS = ("none", "global", "bias")
# Extra representation columns each offset form adds to the embedding dimension.
_EXTRA_COLUMNS = {"none": 0, "global": 1, "bias": 2}


def repr_dim(emb_dim: int, offsets: str = "none") -> int:
  """Width of ``user_repr`` / ``item_matrix`` for an embedding dim and offset form."""
  return emb_dim + _EXTRA_COLUMNS[offsets]


def _item_rows(params: Params, items: jax.Array) -> jax.Array:
  """Item rows ``[B, d']`` of the (augmented) item matrix: ``[v_j]`` or with offsets
  ``[v_j, mu (+ c_j)(, 1)]`` (the keys of ``params`` say which)."""
  v = params["item"][items]
  if "mu" not in params:
    return v
  if "item_bias" not in params:
    return jnp.concatenate([v, jnp.broadcast_to(params["mu"], v.shape[:1])[:, None]], -1)
  shift = params["mu"] + params["item_bias"][items]
  return jnp.concatenate([v, shift[:, None], jnp.ones_like(shift)[:, None]], -1)


def _with_offsets(init, user_repr, offsets: str):
  """(init, user_repr) of the offset form ``offsets`` around a bare scorer's."""
  if offsets == "none":
    return init, user_repr

  def init_offsets(key, n_users, n_items, dim=10, **kwargs):
    params = init(key, n_users, n_items, dim, **kwargs)
    params["mu"] = jnp.zeros((), jnp.float32)   # the trainer sets the training mean
    if offsets == "bias":
      params["user_bias"] = jnp.zeros((n_users,), jnp.float32)
      params["item_bias"] = jnp.zeros((n_items,), jnp.float32)
    return params

  def user_repr_offsets(params, users):
    w = user_repr(params, users)
    cols = [w, jnp.ones_like(w[:, :1])]
    if offsets == "bias":
      cols.append(params["user_bias"][users][:, None])
    return jnp.concatenate(cols, -1)

  return init_offsets, user_repr_offsets


def _make(name: str, init, user_repr, offsets: str = "none") -> Scorer:
  init, user_repr = _with_offsets(init, user_repr, offsets)

  def predict_soft(params: Params, users: jax.Array,
                   item_vecs: jax.Array) -> jax.Array:
    """``user_repr(u) . item_vec``; users int[B], item_vecs [B, d] -> [B]."""
    chex.assert_rank([users, item_vecs], [1, 2])
    return jnp.sum(user_repr(params, users) * item_vecs, axis=-1)

  def predict(params: Params, users: jax.Array, items: jax.Array) -> jax.Array:
    """Rating prediction; users, items int[B] -> [B]."""
    chex.assert_rank([users, items], [1, 1])
    return predict_soft(params, users, _item_rows(params, items))

  def item_matrix(params: Params) -> jax.Array:
    return _item_rows(params, jnp.arange(params["item"].shape[0]))

  return Scorer(name=name, init=init, user_repr=user_repr,
                item_matrix=item_matrix, predict=predict,
                predict_soft=predict_soft, linear_in_b=True, offsets=offsets)


_BARE = {"mf": (mf_init, mf_user_repr), "gmf": (gmf_init, gmf_user_repr),
         "dnn": (dnn_init, dnn_user_repr)}


def get_scorer(name: str, *, dnn_tower: str = "linear", offsets: str = "none") -> Scorer:
  """Returns the scorer called ``name`` ("mf", "gmf" or "dnn"), one object per settings.

  Args:
    name: the base model.
    dnn_tower: YouTube-DNN's user tower, "linear" (default) or "mlp"; ignored by the
      other scorers.
    offsets: "none" (the paper's bare product), "global" (``+ mu``) or "bias"
      (``+ mu + b_u + c_j``); module docstring.
  """
  if name.lower() not in _BARE:
    raise ValueError(f"unknown scorer {name!r}; choose from {sorted(_BARE)}")
  if dnn_tower not in DNN_TOWERS:
    raise ValueError(f"unknown DNN tower {dnn_tower!r}; choose from {DNN_TOWERS}")
  if offsets not in OFFSETS:
    raise ValueError(f"unknown offsets {offsets!r}; choose from {OFFSETS}")
  name = name.lower()
  return _scorer(name, dnn_tower if name == "dnn" else "linear", offsets)


@functools.lru_cache(maxsize=None)
def _scorer(name: str, dnn_tower: str, offsets: str) -> Scorer:
  init, user_repr = _BARE[name]
  if dnn_tower != "linear":
    init = functools.partial(dnn_init, tower=dnn_tower)
  return _make(name, init, user_repr, offsets)
