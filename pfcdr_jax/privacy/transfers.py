"""What each method sends across domains on a prepared run (``pipeline.prepare``).

Each builder returns a :class:`Transfer`: the rows the receiving domain gets, whose
user each row is, the space the rows live in, and the item-score map an attacker B
would use. The DP methods' releases are rebuilt with the PRNG key, settings and
released-user set that their registry runner used (``baselines.registry``: the run's
baseline key folded with the crc32 of the method's name), so the vectors attacked are
the very ones whose cold-start MAE is reported.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import NamedTuple

import jax
import numpy as np

from pfcdr_jax import method as method_lib
from pfcdr_jax.baselines import dp_emcdr
from pfcdr_jax.baselines import pricdr
from pfcdr_jax.privacy import dp_prototypes


class Transfer(NamedTuple):
  """One method's transferred vectors.

  Attributes:
    name: the table name (``registry.display_name``, or a control's label).
    users: int[n] source user index of each row.
    vectors: float[n, m] what the receiving domain gets.
    in_user_space: the rows live in the source user-embedding space (``m = d``,
      prototypes included: they are item-space vectors of the same size, scored
      against ``U`` as the paper's ``U_i . P_i = r`` does), so a direct estimate and
      direct linkage apply.
    item_scores: float[m, N] with ``x @ item_scores`` = attacker B's score of every
      source item (``V^T``; ``Phi^T`` for PriCDR-S), or None.
    mae: cold-start test MAE of the method (None for controls).
    settings: the release's settings (chosen on validation where there was a grid).
  """
  name: str
  users: np.ndarray
  vectors: np.ndarray
  in_user_space: bool
  item_scores: np.ndarray | None
  mae: float | None
  settings: dict


def registry_key(run, base: str) -> jax.Array:
  """The PRNG key the registry gives method `base` on this run."""
  return jax.random.fold_in(run.keys.baselines, zlib.crc32(base.encode()) & 0x7FFFFFFF)


def _source_reprs(run) -> tuple[np.ndarray, np.ndarray]:
  W, V = method_lib.representations(run.scorer, run.params_s, run.data.source.n_users)
  return np.asarray(W, np.float32), np.asarray(V, np.float32)


def _fields(cls, chosen: dict) -> dict:
  names = {f.name for f in dataclasses.fields(cls)}
  return {k: v for k, v in chosen.items() if k in names}


def pfcdr(run, protos: method_lib.Prototypes, mae: float | None) -> Transfer:
  """PFCDR: the source prototypes of the bridge and cold users."""
  _, V = _source_reprs(run)
  return Transfer("PFCDR", method_lib.source_prototype_users(run.data),
                  np.asarray(protos.source, np.float32), True, V.T, mae, {})


def emcdr(run, mae: float | None) -> Transfer:
  """EMCDR: the source user representations themselves (= the ceiling)."""
  W, V = _source_reprs(run)
  users = method_lib.source_prototype_users(run.data)
  return Transfer("EMCDR", users, W[users], True, V.T, mae, {})


def _cold_with_ratings(data) -> np.ndarray:
  """The cold users a registry runner is asked about (those with target ratings)."""
  return np.unique(np.concatenate([data.target_val.user, data.target_test.user]))


def dp_emcdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """DP-EMCDR: ``clip(U_i, C) + N(0, sigma^2)`` as ``dp_emcdr.fit_predict`` releases it."""
  W, V = _source_reprs(run)
  opts = dict(chosen)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  cfg = dp_emcdr.DPEMCDRConfig(**_fields(dp_emcdr.DPEMCDRConfig, opts))
  sigma = 0.0 if cfg.epsilon is None else dp_emcdr.gaussian_sigma(
      cfg.epsilon, cfg.delta, dp_emcdr.sensitivity_of(cfg.clip_norm, cfg.neighboring),
      cfg.mechanism)
  users = np.union1d(np.asarray(run.data.train_users, np.int32), _cold_with_ratings(run.data))
  x = dp_emcdr.privatize(W[users], registry_key(run, "DP-EMCDR"), sigma, cfg.clip_norm)
  return Transfer(name, users.astype(np.int32), np.asarray(x), True, V.T, mae,
                  {"clip_norm": cfg.clip_norm, "sigma": sigma, "epsilon": cfg.epsilon})


def pricdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """PriCDR-S: the published matrix ``Y`` (every source user's row)."""
  opts = dict(chosen)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  cfg = pricdr.PriCDRConfig(**_fields(pricdr.PriCDRConfig, opts))
  s = run.data.source
  k_pub = jax.random.split(registry_key(run, "PriCDR-S"), 3)[0]
  y, sigma = pricdr.publish((s.user, s.item, s.rating), s.n_users, s.n_items, cfg, k_pub)
  phi = pricdr.sjlt(jax.random.split(k_pub)[0], s.n_items, cfg.proj_dim, cfg.sparsity)
  dense = np.asarray(pricdr.sjlt_dense(phi, cfg.proj_dim), np.float32)
  return Transfer(name, np.arange(s.n_users, dtype=np.int32), np.asarray(y, np.float32),
                  False, dense.T, mae, {"proj_dim": cfg.proj_dim, "sigma": sigma,
                                        "epsilon": cfg.epsilon, "unit": cfg.unit})


def pfcdr_dp_transfer(run, name: str, protos: method_lib.Prototypes, chosen: dict,
                      inversion, mae: float | None) -> Transfer:
  """PFCDR-DP: the released prototypes (``dp_prototypes.release``)."""
  _, V = _source_reprs(run)
  opts = dict(chosen)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  cfg = dp_prototypes.DPPrototypeConfig(**_fields(dp_prototypes.DPPrototypeConfig, opts))
  rel = dp_prototypes.released_prototypes(run.scorer, run.params_s, run.params_t, run.data,
                                          run.keys, inversion, cfg,
                                          registry_key(run, "PFCDR-DP"), protos)
  return Transfer(name, method_lib.source_prototype_users(run.data), rel.source, True, V.T,
                  mae, {"clip_norm": cfg.clip_norm, "sigma": dp_prototypes.noise_scale(cfg),
                        "epsilon": cfg.epsilon})
