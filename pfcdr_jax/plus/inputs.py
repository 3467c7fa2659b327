"""What PFCDR+ reads: :class:`PlusInputs` of a split (built from PFCDR's run by
:func:`plus_inputs`: prototypes, bridge, target representations) and the :class:`Pairs`
to predict."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np

from pfcdr_jax.pfcdr import method as method_lib


class Pairs(NamedTuple):
  """(user, item) pairs to predict: int[P] each."""
  user: np.ndarray
  item: np.ndarray


class PlusInputs(NamedTuple):
  """What PFCDR+ reads, all numpy.

  Attributes:
    source: (user, item, rating) of every source rating.
    target: (user, item, rating) of the target training ratings.
    n_users, n_items_t: target user / item index sizes (users shared with the source).
    bridge_users: int[B] overlap users with target training ratings.
    cold_users: int[C] validation then test users.
    protos_src: float[n_r, B + C, d] source prototypes (bridge users then cold users)
      at each inversion target rating of ``rs``.
    rs: the inversion target ratings of ``protos_src`` (the neighbours use ``rs[-1]``).
    P_hat: float[C, d] cold users' prototypes at ``rs[-1]`` through PFCDR's bridge.
    W_t: float[U_t, d] target user representations; V_t: float[N_t, d] target items.
    trained: bool[U_t] users with target training ratings (neighbour candidates).
  """
  source: tuple
  target: tuple
  n_users: int
  n_items_t: int
  bridge_users: np.ndarray
  cold_users: np.ndarray
  protos_src: np.ndarray
  rs: tuple
  P_hat: np.ndarray
  W_t: np.ndarray
  V_t: np.ndarray
  trained: np.ndarray


def plus_inputs(scorer, params_s, params_t, data, keys, bridge_cfg, inversion_cfg,
                rs: tuple[float, ...] = (5.0,),
                source_release: Callable[[np.ndarray], np.ndarray] | None = None
                ) -> PlusInputs:
  """:class:`PlusInputs` of a split and its pretrained scorers.

  The prototypes at ``rs[-1]`` and the bridge are PFCDR's own (``method.invert_run``
  and ``method.fit_bridge`` with the run's stage keys), so ``P_hat`` is what PFCDR
  matches with; the other r only add source prototypes (same keys, other target).

  Args:
    source_release: what the source applies to its prototypes (float[B + C, d], bridge
      users then cold users) before they leave it, e.g. a Gaussian mechanism
      (``privacy.dp_prototypes.release``); the bridge and every feature then use the
      released vectors only. One release per user: only with a single ``rs``.
  """
  rs = tuple(float(r) for r in rs)
  if source_release is not None and len(rs) != 1:
    raise ValueError(f"a source release spends its budget once per user: one inversion "
                     f"target rating, got rs={rs}")
  main = method_lib.invert_run(scorer, params_s, params_t, data, keys,
                               dataclasses.replace(inversion_cfg, target_rating=rs[-1]))
  if source_release is not None:
    main = main._replace(source=np.asarray(source_release(np.asarray(main.source))))
  n_b = len(method_lib.bridge_users(data))
  W_map, _ = method_lib.fit_bridge(main.source[:n_b], main.target, keys.bridge, bridge_cfg)
  protos = []
  for r in rs[:-1]:
    protos.append(np.asarray(method_lib.prototypes(
        scorer, params_s, data.source.n_users, method_lib.source_prototype_users(data),
        keys.inversion_source, dataclasses.replace(inversion_cfg, target_rating=r)
    ).prototypes))
  protos.append(main.source)
  W_t, V_t = method_lib.representations(scorer, params_t, data.target_train.n_users)
  s, t = data.source, data.target_train
  return PlusInputs(
      source=(s.user, s.item, s.rating), target=(t.user, t.item, t.rating),
      n_users=t.n_users, n_items_t=t.n_items, bridge_users=method_lib.bridge_users(data),
      cold_users=method_lib.cold_users(data).users, protos_src=np.stack(protos), rs=rs,
      P_hat=method_lib.transfer(W_map, main.source[n_b:]), W_t=np.asarray(W_t),
      V_t=np.asarray(V_t), trained=np.asarray(data.target_trained, bool))
