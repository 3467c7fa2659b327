"""EMCDR (Man et al., IJCAI'17): embed, then map source user embeddings to target.

A linear map (no bias) is fit from the source to the target user embeddings of
the training overlap users with the same MSE/Adam routine as PFCDR's prototype
bridge (`pfcdr_jax.bridge`), so the two differ only in what they transfer: EMCDR
ships user embeddings (user-sensitive), PFCDR ships prototypes. For GMF and
YouTube-DNN the raw user embedding table is mapped (as the PFCDR paper does in
Sec. 5.3) and the target model's own user transform is applied afterwards.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax import bridge as bridge_lib


def user_embeddings(params) -> jax.Array:
  """The raw user embedding table of a scorer's params: [U, d]."""
  return params["user"]


def map_user_embeddings(params_s, params_t, bridge_users: np.ndarray, key: jax.Array, *,
                        lr: float, epochs: int, batch_size: int) -> jax.Array:
  """Fits the EMCDR map on `bridge_users`; returns W: [d_s, d_t]."""
  users = jnp.asarray(bridge_users)
  return bridge_lib.fit_linear_bridge(user_embeddings(params_s)[users],
                                      user_embeddings(params_t)[users], key, lr=lr,
                                      epochs=epochs, batch_size=batch_size)


def fit_predict(scorer, params_s, params_t, bridge_users: np.ndarray, test_user: np.ndarray,
                test_item: np.ndarray, key: jax.Array, *, lr: float, epochs: int,
                batch_size: int) -> np.ndarray:
  """EMCDR predictions for cold users' target ratings.

  Args:
    scorer: the base model (`pfcdr_jax.models.scorers.Scorer`).
    params_s, params_t: pretrained source / target params.
    bridge_users: int[n] overlap users with target training ratings.
    test_user, test_item: int[T] the ratings to predict (cold users).
    key: PRNG key of the map's training.
    lr, epochs, batch_size: map training settings.

  Returns:
    float32[T] predictions.
  """
  W = map_user_embeddings(params_s, params_t, bridge_users, key, lr=lr, epochs=epochs,
                          batch_size=batch_size)
  cold = np.unique(test_user)
  mapped = bridge_lib.apply_bridge(W, user_embeddings(params_s)[jnp.asarray(cold)])
  params = dict(params_t)
  params["user"] = params_t["user"].at[jnp.asarray(cold)].set(mapped)
  return np.asarray(scorer.predict(params, jnp.asarray(test_user), jnp.asarray(test_item)))
