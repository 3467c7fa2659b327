"""What each method sends across domains on a prepared run (``stages.prepare``).

Each builder returns a :class:`Transfer`: the rows the receiving domain gets, whose
user each row is, the space the rows live in, and the item-score map an attacker B
would use. The DP methods' releases are rebuilt with the PRNG key, settings and
released-user set that their registry runner used (``baselines.registry``: the run's
baseline key folded with the crc32 of the method's name), so the vectors attacked are
the very ones whose cold-start MAE is reported.

The paper's private baselines:

* PF2CDR: the source silo's release ``clip(U_i, C) + N(0, sigma^2)`` (``pf2cdr.release``).
* PPGenCDR: the DP generator the source sends (``ppgencdr_generator.source_release``), per
  released user as ``[h_u, 1]`` (its hidden layer at the user's code), from which the
  generated preference vector is ``G(u) = sigmoid([h_u, 1] @ [W2; b2])``; attacker B
  scores the source items with those logits (the ranking of ``G(u)`` itself).
* FedCDR: no vector crosses domains, but each client uploads item-row gradients to
  the server every round. Without secure aggregation (which FedCDR's simulation
  assumes) a row ``g_j = e_j [p_u, 1] + l2 y_j`` of the client's source upload gives
  its current source embedding exactly, ``p_u = (g_j - l2 y_j)[:d] / (g_j - l2 y_j)[d]``,
  since the server knows its own ``y_j``. The row is the client's final-round upload,
  read this way (:func:`fedcdr_upload_vectors`): ``[p_u, 1]``, in FedCDR's own factor
  space, scored by attacker B (the server) with its source item table
  ``p_u . q_j + c_j``. The uploads also name their items: over its rounds a client
  names the first ``min(n_u, T B)`` items of its list, all of them at the default
  T = 100, B = 64 (``fedcdr.observed_items``), and the server needs those ids (to
  send the rows, to apply the gradients) even under secure aggregation of the values.
  They are the transfer's ``observed`` rows: the membership and n_ratings attackers
  read them (``leakage.attack_transfer``).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np
from scipy import sparse

import jax.numpy as jnp

from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.plus import config as plus_config
from pfcdr_jax.plus import release as plus_release
from pfcdr_jax.baselines import dp_emcdr
from pfcdr_jax.baselines import registry
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.baselines import fedcdr
from pfcdr_jax.baselines import pf2cdr
from pfcdr_jax.baselines import ppgencdr_config
from pfcdr_jax.baselines import ppgencdr_generator
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
    observed: bool csr[n, N_s] source items the receiver sees named in each user's
      messages besides ``vectors`` (FedCDR's upload ids), or None.
  """
  name: str
  users: np.ndarray
  vectors: np.ndarray
  in_user_space: bool
  item_scores: np.ndarray | None
  mae: float | None
  settings: dict
  observed: sparse.csr_matrix | None = None


def registry_key(run, name: str) -> jax.Array:
  """The PRNG key the registry gives method `name` (``"DP-EMCDR(eps=1)"``) on this run
  (``registry.method_key``: its base name, and its budget when the name has one)."""
  base, options = registry.parse_name(name)
  return registry.method_key(run.keys.baselines, base, options)


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


def pfcdr_plus_scalars(run, kappa: float = 0.0, cfg=None) -> np.ndarray:
  """float64[U_s, 2]: PFCDR+'s two scalars per user, ``[o_u, a_u]``, at shrinkage kappa.

  The debiased source offset and the crowd agreement exactly as ``plus_release``
  computes them from the source ratings (``cfg``, default ``PlusConfig()``: no DP);
  kappa = 0, the least shrunk point of the grid, is the most revealing one a user can
  send.
  """
  cfg = cfg or plus_config.PlusConfig()
  s = run.data.source
  n = max(run.data.target_train.n_users, int(np.max(s.user)) + 1)   # as plus_release
  source = (s.user, s.item, s.rating)
  o = plus_release.sent_offsets(source, n, cfg, kappa)
  a = plus_release.sent_crowd(source, n, cfg, kappa)
  return np.stack([o, a], axis=1)


def pfcdr_plus(run, protos: method_lib.Prototypes, mae: float | None,
               kappas: tuple[float, ...] | None = None, *, name: str = "PFCDR+",
               cfg=None) -> list[Transfer]:
  """PFCDR+: the prototypes with the two scalars, and the two scalars alone.

  ``[P_u, o_u(k), a_u(k) for k in kappas]`` (default: ``cfg``'s whole kappa grid, what
  a bridge or validation user sends; a test user sends one kappa, so this is an upper
  bound for them). Attacker B scores the source items with the prototype part
  (``V P_u``; the scalars get zero item weights). ``cfg`` (with ``rating_epsilon``:
  the DP variant ``PFCDR+(eps=E)``) says how the scalars are made.
  """
  cfg = cfg or plus_config.PlusConfig()
  kappas = tuple(cfg.offset_shrinkage if kappas is None else kappas)
  _, V = _source_reprs(run)
  users = method_lib.source_prototype_users(run.data)
  sc = np.concatenate([pfcdr_plus_scalars(run, k, cfg)[users] for k in kappas],
                      axis=1).astype(np.float32)
  full = np.concatenate([np.asarray(protos.source, np.float32), sc], axis=1)
  scores = np.concatenate([V.T, np.zeros((sc.shape[1], V.shape[0]), np.float32)], axis=0)
  d = int(np.asarray(protos.source).shape[1])
  # Where the offsets o_u(kappa) sit in the full vector (leakage's kappa_ratio attack).
  settings = {"kappas": list(kappas), "offset_columns": [d + 2 * j for j in range(len(kappas))]}
  if cfg.rating_epsilon is not None:
    settings.update(epsilon=cfg.rating_epsilon, per="rating",
                    laplace_scale=mechanisms.laplace_scale(cfg.rating_epsilon,
                                                            cfg.rating_scale))
  return [Transfer(name, users, full, False, scores, mae, settings),
          Transfer(f"{name} scalars (o_u, a_u)", users, sc, False, None, None, settings)]


def pfcdr_plus_dp(run, protos: method_lib.Prototypes, name: str, epsilon: float,
                  noise_seed: int, mae: float | None) -> list[Transfer]:
  """PFCDR+(eps=E): :func:`pfcdr_plus` with the scalars made from the per-rating-DP
  release (``plus_release.rating_dp_release``; noise seed = the run's seed, as the
  registry runs it)."""
  cfg = plus_config.PlusConfig(rating_epsilon=epsilon, noise_seed=noise_seed)
  return pfcdr_plus(run, protos, mae, name=name, cfg=cfg)


def _cold_with_ratings(data) -> np.ndarray:
  """The cold users a registry runner is asked about (those with target ratings)."""
  return np.unique(np.concatenate([data.target_val.user, data.target_test.user]))


def dp_emcdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """DP-EMCDR: ``clip(U_i, C) + N(0, sigma^2)`` as ``dp_emcdr.fit_predict`` releases it."""
  W, V = _source_reprs(run)
  opts = dict(chosen)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  cfg = dp_emcdr.DPEMCDRConfig(**_fields(dp_emcdr.DPEMCDRConfig, opts))
  sigma = 0.0 if cfg.epsilon is None else mechanisms.gaussian_sigma(
      cfg.epsilon, cfg.delta, mechanisms.sensitivity_of(cfg.clip_norm, cfg.neighboring),
      cfg.mechanism)
  users = np.union1d(np.asarray(run.data.train_users, np.int32), _cold_with_ratings(run.data))
  x = mechanisms.privatize(W[users], registry_key(run, name), sigma, cfg.clip_norm)
  return Transfer(name, users.astype(np.int32), np.asarray(x), True, V.T, mae,
                  {"clip_norm": cfg.clip_norm, "sigma": sigma, "epsilon": cfg.epsilon})


def pricdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """PriCDR-S: the published matrix ``Y`` (every source user's row)."""
  opts = dict(chosen)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  cfg = pricdr.PriCDRConfig(**_fields(pricdr.PriCDRConfig, opts))
  s = run.data.source
  k_pub = jax.random.split(registry_key(run, name), 3)[0]
  y, sigma = pricdr.publish((s.user, s.item, s.rating), s.n_users, s.n_items, cfg, k_pub)
  phi = pricdr.sjlt(jax.random.split(k_pub)[0], s.n_items, cfg.proj_dim, cfg.sparsity)
  dense = np.asarray(pricdr.sjlt_dense(phi, cfg.proj_dim), np.float32)
  n_u = np.bincount(np.asarray(s.user), minlength=s.n_users)
  return Transfer(name, np.arange(s.n_users, dtype=np.int32), np.asarray(y, np.float32),
                  False, dense.T, mae, {"proj_dim": cfg.proj_dim, "sigma": sigma,
                                        "epsilon": cfg.epsilon, "unit": cfg.unit,
                                        "delta": cfg.delta, "max_ratings": int(n_u.max()),
                                        "n_items": int(s.n_items),
                                        "phi_norm": float(pricdr.sjlt_spectral_norm(
                                            phi, cfg.proj_dim))})


def pfcdr_dp_transfer(run, name: str, protos: method_lib.Prototypes, chosen: dict,
                      inversion, mae: float | None) -> Transfer:
  """PFCDR-DP: the released prototypes (``dp_prototypes.release``)."""
  _, V = _source_reprs(run)
  opts = dict(chosen)
  opts["epsilon"] = float(opts.pop("eps")) if "eps" in opts else None
  cfg = dp_prototypes.DPPrototypeConfig(**_fields(dp_prototypes.DPPrototypeConfig, opts))
  rel = dp_prototypes.released_prototypes(run.scorer, run.params_s, run.params_t, run.data,
                                          run.keys, inversion, cfg,
                                          registry_key(run, name), protos)
  return Transfer(name, method_lib.source_prototype_users(run.data), rel.source, True, V.T,
                  mae, {"clip_norm": cfg.clip_norm, "sigma": dp_prototypes.noise_scale(cfg),
                        "epsilon": cfg.epsilon, "center_share": cfg.center_share,
                        "center_sigma": dp_prototypes.center_noise_scale(cfg)})


def _emb_dim(run) -> int:
  return int(np.asarray(run.params_t["item"]).shape[1])   # the embedding width, no offsets


def _released_users(run) -> np.ndarray:
  """The users a silo-style runner releases: the bridge users and the asked-about cold."""
  return np.union1d(np.asarray(run.data.train_users, np.int32), _cold_with_ratings(run.data))


def _eps_options(chosen: dict) -> dict:
  opts = dict(chosen)
  if "eps" in opts:
    opts["epsilon"] = float(opts.pop("eps"))
  return opts


def pf2cdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """PF2CDR: ``clip(U_i, C) + N(0, sigma^2)`` as ``pf2cdr.fit_predict`` releases it."""
  W, V = _source_reprs(run)
  cfg = pf2cdr.PF2CDRConfig(**_fields(pf2cdr.PF2CDRConfig, _eps_options(chosen)))
  k_rel = jax.random.split(registry_key(run, name), 3)[0]
  rel = pf2cdr.release(W, _released_users(run), cfg, k_rel)
  return Transfer(name, rel.users.astype(np.int32), np.asarray(rel.vectors, np.float32), True,
                  V.T, mae, {"clip_norm": cfg.clip_norm, "sigma": rel.sigma,
                             "epsilon": cfg.epsilon})


def ppgencdr_release(run, chosen: dict, name: str = "PPGenCDR"
                     ) -> ppgencdr_generator.Release:
  """The :class:`ppgencdr_generator.Release` that ``ppgencdr.fit_predict`` made in the
  registry run."""
  cfg = ppgencdr_config.PPGenCDRConfig(gen_dim=_emb_dim(run),
                                       **_fields(ppgencdr_config.PPGenCDRConfig,
                                                 _eps_options(chosen)))
  s = run.data.source
  k_src = jax.random.split(registry_key(run, name), 3)[0]
  return ppgencdr_generator.source_release((s.user, s.item, s.rating), s.n_users, s.n_items,
                                           _released_users(run), cfg, k_src)


def ppgencdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """PPGenCDR: per released user, ``[h_u, 1]`` with ``h_u`` the released generator's
  hidden layer at the user's code; ``item_scores = [W2; b2]`` gives the logits of the
  generated vector, ``G(u) = sigmoid(x @ item_scores)``: the information of ``G(u)``
  (``[N_s]``) in ``H + 1`` coordinates (attacking the 948-wide ``G(u)`` itself took
  ~11 min of attribute classifiers on comedy2drama)."""
  rel = ppgencdr_release(run, chosen, name)
  gen = rel.generator
  h = np.asarray(ppgencdr_generator.hidden(gen, gen.codes), np.float32)
  x = np.concatenate([h, np.ones((h.shape[0], 1), np.float32)], axis=1)
  scores = np.concatenate([np.asarray(gen.w2), np.asarray(gen.b2)[None, :]], axis=0)
  return Transfer(name, rel.users.astype(np.int32), x, False, scores.astype(np.float32), mae,
                  {"clip_norm": float(chosen.get("clip_norm",
                                                 ppgencdr_config.PPGenCDRConfig.clip_norm)),
                   "noise_multiplier": rel.noise_multiplier, "epsilon": rel.epsilon,
                   "delta": rel.delta})


class FedCDRState(NamedTuple):
  """FedCDR's simulation as its registry run set it up, after some rounds.

  Attributes:
    clients, server: the state; src, tgt: the per-client lists; bridge: ``int32[n]``;
    cfg: the settings; sigma: the server's noise std; key: the noise key.
  """
  clients: fedcdr.ClientTables
  server: fedcdr.ServerModel
  src: fedcdr.Domain
  tgt: fedcdr.Domain
  bridge: jax.Array
  cfg: fedcdr.FedCDRConfig
  sigma: float
  key: jax.Array


def fedcdr_state(run, chosen: dict, rounds: int, name: str = "FedCDR") -> FedCDRState:
  """FedCDR after ``rounds`` of its rounds, with the key split, lists and init of
  ``fedcdr.fit_predict`` under the registry runner's settings (``rounds`` = the
  config's: the model whose MAE is reported)."""
  opts = _eps_options(chosen)
  if "epsilon" in opts:
    opts.setdefault("clip_norm", 1.0)   # as runners._run_fedcdr
  cfg = fedcdr.FedCDRConfig(dim=_emb_dim(run), **_fields(fedcdr.FedCDRConfig, opts))
  s, t = run.data.source, run.data.target_train
  sigma = 0.0
  if cfg.epsilon is not None:
    sigma = fedcdr.noise_multiplier(cfg.epsilon, cfg.delta, cfg.rounds) * cfg.clip_norm
  k_s, k_t, k_init, k_noise = jax.random.split(registry_key(run, name), 4)
  src = fedcdr.client_lists(s.user, s.item, s.rating.astype(np.float32), s.n_users, k_s)
  tgt = fedcdr.client_lists(t.user, t.item, t.rating.astype(np.float32), t.n_users, k_t)
  clients, server = fedcdr.init(k_init, s.n_users, s.n_items, t.n_users, t.n_items, cfg)
  bridge = jnp.asarray(np.asarray(run.data.train_users, np.int32))
  clients, server, _ = fedcdr.train(clients, server, src, tgt, bridge, k_noise,
                                    dataclasses.replace(cfg, rounds=rounds), float(sigma))
  return FedCDRState(clients, server, src, tgt, bridge, cfg, float(sigma), k_noise)


def fedcdr_upload_vectors(up: fedcdr.Upload, server: fedcdr.ServerModel, count: jax.Array,
                          l2: float) -> np.ndarray:
  """``[U, d+1]``: ``[p_u, 1]`` read off each client's source upload (module docstring).

  Uses, per client, the valid row with the largest ``|e_j|`` (the best conditioned).
  Exact for unclipped uploads (a clipped part is scaled by an unknown factor, which
  the ``l2 y_j`` term would have to be fitted against).
  """
  g = np.asarray(up.src_grads, np.float64)
  y = np.asarray(server.y_s, np.float64)[np.asarray(up.src_items)]
  valid = np.arange(g.shape[1])[None, :] < np.minimum(np.asarray(count), g.shape[1])[:, None]
  r = g - l2 * valid[:, :, None] * y
  best = np.argmax(np.where(valid, np.abs(r[:, :, -1]), -1.0), axis=1)
  row = r[np.arange(r.shape[0]), best]
  e = np.where(np.abs(row[:, -1]) > 0, row[:, -1], 1.0)
  return np.concatenate([row[:, :-1] / e[:, None], np.ones((r.shape[0], 1))],
                        axis=1).astype(np.float32)


def fedcdr_transfer(run, name: str, chosen: dict, mae: float | None) -> Transfer:
  """FedCDR: each client's final-round source upload, read without secure aggregation."""
  opts = _eps_options(chosen)
  rounds = int(opts.get("rounds", fedcdr.FedCDRConfig.rounds))
  if rounds < 1:
    raise ValueError(f"{name}: rounds must be >= 1 for an upload to exist, got {rounds}")
  if "epsilon" in opts or opts.get("clip_norm") is not None:
    raise ValueError(f"{name}: the upload is read exactly only without clipping (plain "
                     "FedCDR)")
  st = fedcdr_state(run, chosen, rounds - 1, name)
  _, up, _ = fedcdr.client_uploads(st.clients, st.server, st.src, st.tgt, st.bridge,
                                   jnp.asarray(rounds - 1), st.cfg)
  x = fedcdr_upload_vectors(up, st.server, st.src.count, st.cfg.l2)
  users = np.nonzero(np.asarray(st.src.count) > 0)[0].astype(np.int32)
  y_s = np.asarray(st.server.y_s, np.float32)
  scores = np.concatenate([y_s[:, :-1].T, y_s[None, :, -1]], axis=0)   # p.q_j + c_j
  named = fedcdr.observed_items(st.src, rounds, st.cfg.local_batch,
                                run.data.source.n_items)
  return Transfer(name, users, x[users], False, scores, mae,
                  {"view": "final-round source upload, no secure aggregation; the item "
                           "ids of every round's uploads",
                   "rounds": rounds, "lr": st.cfg.lr,
                   "local_batch": st.cfg.local_batch}, named[users])
