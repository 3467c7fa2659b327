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
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

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
  """
  name: str
  init: Callable[..., Params]
  user_repr: Callable[[Params, jax.Array], jax.Array]
  item_matrix: Callable[[Params], jax.Array]
  predict: Callable[[Params, jax.Array, jax.Array], jax.Array]
  predict_soft: Callable[[Params, jax.Array, jax.Array], jax.Array]
  linear_in_b: bool


def _embeddings(key: jax.Array, n_users: int, n_items: int, dim: int) -> dict:
  ku, ki = jax.random.split(key)
  return {
      "user": EMB_STD * jax.random.normal(ku, (n_users, dim), jnp.float32),
      "item": EMB_STD * jax.random.normal(ki, (n_items, dim), jnp.float32),
  }


def _item_matrix(params: Params) -> jax.Array:
  return params["item"]


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

def _make(name: str, init, user_repr) -> Scorer:

  def predict_soft(params: Params, users: jax.Array,
                   item_vecs: jax.Array) -> jax.Array:
    """``user_repr(u) . item_vec``; users int[B], item_vecs [B, d] -> [B]."""
    chex.assert_rank([users, item_vecs], [1, 2])
    return jnp.sum(user_repr(params, users) * item_vecs, axis=-1)

  def predict(params: Params, users: jax.Array, items: jax.Array) -> jax.Array:
    """Rating prediction; users, items int[B] -> [B]."""
    chex.assert_rank([users, items], [1, 1])
    return predict_soft(params, users, params["item"][items])

  return Scorer(name=name, init=init, user_repr=user_repr,
                item_matrix=_item_matrix, predict=predict,
                predict_soft=predict_soft, linear_in_b=True)


SCORERS = {
    "mf": _make("mf", mf_init, mf_user_repr),
    "gmf": _make("gmf", gmf_init, gmf_user_repr),
    "dnn": _make("dnn", dnn_init, dnn_user_repr),
}


def get_scorer(name: str, *, dnn_tower: str = "linear") -> Scorer:
  """Returns the scorer called ``name`` ("mf", "gmf" or "dnn").

  Args:
    name: the base model.
    dnn_tower: YouTube-DNN's user tower, "linear" (default) or "mlp"; ignored by the
      other scorers.
  """
  try:
    scorer = SCORERS[name.lower()]
  except KeyError:
    raise ValueError(f"unknown scorer {name!r}; choose from {sorted(SCORERS)}") from None
  if scorer.name != "dnn" or dnn_tower == "linear":
    return scorer
  if dnn_tower not in DNN_TOWERS:
    raise ValueError(f"unknown DNN tower {dnn_tower!r}; choose from {DNN_TOWERS}")
  return scorer._replace(init=functools.partial(dnn_init, tower=dnn_tower))
