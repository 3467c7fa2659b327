"""EMCDR (Man et al., IJCAI'17): embed, then map source user embeddings to target.

A linear map (no bias) is fit from the source to the target user embeddings of
the training overlap users with the same MSE/Adam routine as PFCDR's prototype
bridge (`pfcdr_jax.pfcdr.bridge`), so the two differ only in what they transfer: EMCDR
ships user embeddings (user-sensitive), PFCDR ships prototypes.

Which embedding is mapped (``space``), as in the authors' public code
(github.com/walcheng/PFCDR, ``models.py``, stages ``train_map`` / ``test_map``):

- ``"repr"``: the scorer's user representation ``user_repr`` -- for YouTube-DNN the
  user-tower output ``tower(U_s)`` is mapped onto ``tower(U_t)`` and the mapped vector
  is dotted with the target item embedding directly (the tower is not re-applied);
- ``"raw"``: the raw user embedding table ``U`` is mapped and the target model's own
  user transform is applied afterwards (GMF: ``h * (U_s W)``; YouTube-DNN:
  ``tower_t(U_s W)``, kept as an option, not the default:
  the nonlinear tower applied to a vector from outside its training range is what gave
  EMCDR-DNN an MAE of 0.98 on comedy2drama);
- ``"auto"`` (default): ``"repr"`` for YouTube-DNN, ``"raw"`` for MF (where the two are
  the same) and GMF (the public code maps raw ``U`` and predicts with ``h``; ``h * U`` is
  a per-dimension rescaling of ``U``, so a linear map has the same function class).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import bridge as bridge_lib

SPACES = ("auto", "repr", "raw")


def user_embeddings(params) -> jax.Array:
  """The raw user embedding table of a scorer's params: [U, d]."""
  return params["user"]


def resolve_space(space: str, scorer) -> str:
  """``"auto"`` -> ``"repr"`` for YouTube-DNN, ``"raw"`` otherwise."""
  if space not in SPACES:
    raise ValueError(f"EMCDR space must be one of {SPACES}, got {space!r}")
  if space == "auto":
    return "repr" if scorer.name == "dnn" else "raw"
  return space


def _vectors(scorer, params, users: jax.Array, space: str) -> jax.Array:
  """What is mapped for `users`: [n, d] user representations or raw embeddings."""
  return scorer.user_repr(params, users) if space == "repr" else user_embeddings(params)[users]


def map_user_embeddings(params_s, params_t, bridge_users: np.ndarray, key: jax.Array, *,
                        lr: float, epochs: int, batch_size: int, scorer=None,
                        space: str = "raw") -> jax.Array:
  """Fits the EMCDR map on `bridge_users`; returns W: [d_s, d_t].

  ``space="repr"`` needs `scorer` (its ``user_repr``); ``"raw"`` maps the raw tables.
  """
  users = jnp.asarray(bridge_users)
  if space == "repr" and scorer is None:
    raise ValueError("map_user_embeddings: space='repr' needs the scorer")
  return bridge_lib.fit_linear_bridge(_vectors(scorer, params_s, users, space),
                                      _vectors(scorer, params_t, users, space), key, lr=lr,
                                      epochs=epochs, batch_size=batch_size)


def transfer(scorer, params_s, params_t, bridge_users: np.ndarray, users: np.ndarray,
             key: jax.Array, *, lr: float, epochs: int, batch_size: int,
             space: str = "auto") -> jax.Array:
  """EMCDR's target user representations of `users`: [n, d].

  What its predictions dot with the target item embeddings (``pred = rep . V_t[j]``):
  the mapped vector itself for ``space="repr"``, the target model's user transform of
  the mapped raw embedding for ``"raw"``. Arguments as :func:`fit_predict`.
  """
  space = resolve_space(space, scorer)
  W = map_user_embeddings(params_s, params_t, bridge_users, key, lr=lr, epochs=epochs,
                          batch_size=batch_size, scorer=scorer, space=space)
  u = jnp.asarray(users)
  mapped = bridge_lib.apply_bridge(W, _vectors(scorer, params_s, u, space))
  if space == "repr":
    return mapped
  params = dict(params_t)
  params["user"] = params_t["user"].at[u].set(mapped)
  return scorer.user_repr(params, u)


def fit_predict(scorer, params_s, params_t, bridge_users: np.ndarray, test_user: np.ndarray,
                test_item: np.ndarray, key: jax.Array, *, lr: float, epochs: int,
                batch_size: int, space: str = "auto") -> np.ndarray:
  """EMCDR predictions for cold users' target ratings.

  Args:
    scorer: the base model (`pfcdr_jax.models.scorers.Scorer`).
    params_s, params_t: pretrained source / target params.
    bridge_users: int[n] overlap users with target training ratings.
    test_user, test_item: int[T] the ratings to predict (cold users).
    key: PRNG key of the map's training.
    lr, epochs, batch_size: map training settings.
    space: what is mapped: "auto", "repr" or "raw" (module docstring).

  Returns:
    float32[T] predictions.
  """
  cold = np.unique(test_user)
  reps = transfer(scorer, params_s, params_t, bridge_users, cold, key, lr=lr, epochs=epochs,
                  batch_size=batch_size, space=space)
  rows = jnp.asarray(np.searchsorted(cold, test_user))
  items = scorer.item_matrix(params_t)[jnp.asarray(test_item)]
  return np.asarray(jnp.sum(reps[rows] * items, axis=-1))
