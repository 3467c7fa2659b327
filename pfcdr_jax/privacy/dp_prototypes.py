"""PFCDR-DP: PFCDR whose transferred source prototypes pass a Gaussian mechanism.

Every source prototype that crosses the domain boundary (the bridge users', which
fit the bridge, and the cold users', which are transferred at prediction time) is
released once as

    x_i = c + clip(P_i - c, C) + N(0, sigma^2 I_d),   clip(p, C) = p min(1, C / ||p||),

with ``sigma`` of the Gaussian mechanism for L2 sensitivity ``Delta = C``
(add/remove: a user's released vector against its absence) or ``2 C`` (replace),
classic (Dwork & Roth, eps < 1) or analytic (Balle & Wang 2018), exactly as
DP-EMCDR (``baselines.mechanisms.gaussian_sigma``).

The centre ``c``. With ``center_share = 0`` it is public: the mean source item embedding
``c0 = mean_j V_j`` (``center=True``). That is a poor centre: on comedy2drama the
prototypes' mean lies 1.95 from ``c0`` while a prototype lies only 0.42 from that mean
(seed 0), so clipping around ``c0`` spends the clip -- and the noise -- on a part that is
the same for every user. With ``center_share = s > 0`` (the default since issue 29) the
centre is itself released: the mean of the released users' prototypes, each clipped to
``center_clip`` around ``c0``, through the Gaussian mechanism at budget ``(s eps, s
delta)`` (sum sensitivity ``center_clip``, divided by the public number of released
users); every vector then gets ``((1 - s) eps, (1 - s) delta)``. By basic composition
each user's whole release is (eps, delta)-DP, the budget the name states. The receiver then runs PFCDR unchanged on the released vectors (bridge on the
bridge users' released prototypes and their target prototypes, which never leave
the target domain; K chosen on the validation users; top-k and Eq. 14).

Guarantee: each user's released vector is (eps, delta)-DP with respect to that
user's prototype, and by parallel composition the whole release is (eps, delta)-DP
per user. Caveats, as for DP-EMCDR: the prototype is a function of the user's
embedding and of the shared item matrix, so this is DP of the transfer step, not of
source-model training; the clip norm ``C`` and K are chosen on validation users and
that search is not charged to the budget.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.infra import phase_timer
from pfcdr_jax.privacy import mechanisms
from pfcdr_jax.config import BridgeConfig, TopKConfig
from pfcdr_jax.data.splits import CDRData, DomainData
from pfcdr_jax.pfcdr.inversion import InversionConfig


@dataclasses.dataclass(frozen=True)
class DPPrototypeConfig:
  """PFCDR-DP's release.

  Attributes:
    epsilon: privacy budget per user; None clips but adds no noise.
    delta: failure probability in (0, 1).
    clip_norm: ``C``, the clip of ``P_i - c``.
    mechanism: ``"analytic"`` (any epsilon) or ``"classic"`` (epsilon < 1).
    neighboring: ``"add_remove"`` (Delta = C) or ``"replace"`` (Delta = 2 C).
    center: subtract a centre before clipping (False: the origin).
    center_share: share of (epsilon, delta) spent on releasing the centre, the
      clipped mean of the released prototypes (0: the public mean item embedding).
    center_clip: clip of each prototype around the mean item embedding in that mean.
  """
  epsilon: Optional[float] = 1.0
  delta: float = 1e-5
  clip_norm: float = 1.0
  mechanism: str = "analytic"
  neighboring: str = "add_remove"
  center: bool = True
  center_share: float = 0.05
  center_clip: float = 4.0

  def __post_init__(self):
    if not 0.0 <= self.center_share < 1.0:
      raise ValueError(f"center_share must be in [0, 1), got {self.center_share}")
    if not self.center_clip > 0:
      raise ValueError(f"center_clip must be > 0, got {self.center_clip}")


def _vector_budget(cfg: DPPrototypeConfig) -> tuple[float, float]:
  """(epsilon, delta) of each released vector: what the centre leaves."""
  keep = 1.0 - (cfg.center_share if cfg.center else 0.0)
  return cfg.epsilon * keep, cfg.delta * keep


def noise_scale(cfg: DPPrototypeConfig) -> float:
  """The Gaussian mechanism's sigma for `cfg` (0 when epsilon is None)."""
  if cfg.epsilon is None:
    return 0.0
  eps, delta = _vector_budget(cfg)
  return mechanisms.gaussian_sigma(eps, delta,
                                 mechanisms.sensitivity_of(cfg.clip_norm, cfg.neighboring),
                                 cfg.mechanism)


def center_noise_scale(cfg: DPPrototypeConfig) -> float:
  """sigma of the released centre's sum (0 without a budget or a released centre)."""
  if cfg.epsilon is None or not cfg.center or cfg.center_share == 0:
    return 0.0
  return mechanisms.gaussian_sigma(
      cfg.epsilon * cfg.center_share, cfg.delta * cfg.center_share,
      mechanisms.sensitivity_of(cfg.center_clip, cfg.neighboring), cfg.mechanism)


def released_center(prototypes: np.ndarray, public: np.ndarray, key: jax.Array,
                    cfg: DPPrototypeConfig) -> np.ndarray:
  """float[d]: the centre the vectors are clipped around (module docstring)."""
  if not cfg.center or cfg.center_share == 0:
    return np.asarray(public, np.float32)
  P = jnp.asarray(prototypes, jnp.float32)
  c0 = jnp.asarray(public, jnp.float32)[None, :]
  total = jnp.sum(mechanisms.clip_rows(P - c0, cfg.center_clip), axis=0)
  noise = center_noise_scale(cfg) * jax.random.normal(key, total.shape, jnp.float32)
  return np.asarray(c0[0] + (total + noise) / P.shape[0])


def public_center(item_matrix: np.ndarray, cfg: DPPrototypeConfig) -> np.ndarray:
  """float[d]: the centre ``c`` (mean item embedding, or zeros)."""
  V = np.asarray(item_matrix, np.float32)
  return V.mean(0) if cfg.center else np.zeros(V.shape[1], np.float32)


def release(prototypes: np.ndarray, center: np.ndarray, key: jax.Array,
            cfg: DPPrototypeConfig) -> np.ndarray:
  """``c + clip(P - c, C) + N(0, sigma^2 I)`` per row.

  Args:
    prototypes: float[n, d] source prototypes (each user's released once).
    center: float[d] the public centre ``c0`` (:func:`public_center`); with
      ``cfg.center_share > 0`` the centre used is :func:`released_center`.
    key: PRNG key of the noise (row i gets its own draw; the centre its own key).
    cfg: the mechanism.

  Returns:
    float[n, d] the released prototypes.
  """
  if cfg.center and cfg.center_share > 0:
    key, k_center = jax.random.split(key)
    center = released_center(prototypes, center, k_center, cfg)
  c = jnp.asarray(center, jnp.float32)[None, :]
  P = jnp.asarray(prototypes, jnp.float32)
  out = c + mechanisms.privatize(P - c, key, noise_scale(cfg), cfg.clip_norm)
  return np.asarray(out)


def released_prototypes(scorer, params_s, params_t, data: CDRData, keys: method_lib.StageKeys,
                        inversion: InversionConfig, cfg: DPPrototypeConfig, key: jax.Array,
                        protos: method_lib.Prototypes | None = None) -> method_lib.Prototypes:
  """The run's prototypes with the source side released through the mechanism.

  Returns:
    ``method.Prototypes(source = released [n_bridge + C, d], target = unchanged)``.
  """
  if protos is None:
    protos = method_lib.invert_run(scorer, params_s, params_t, data, keys, inversion)
  center = public_center(scorer.item_matrix(params_s), cfg)
  return method_lib.Prototypes(release(protos.source, center, key, cfg), protos.target)


def fit_predict_pairs(scorer, params_s, params_t, data: CDRData,
                      pairs: tuple[np.ndarray, np.ndarray], *, cfg: DPPrototypeConfig,
                      inversion: InversionConfig, bridge: BridgeConfig, topk: TopKConfig,
                      key: jax.Array, seed: int,
                      protos: method_lib.Prototypes | None = None) -> np.ndarray:
  """PFCDR-DP predictions of (cold user, target item) pairs.

  The prototypes are the run's own (``method.StageKeys.from_seed(seed)``: the same
  as PFCDR's), released with `key`; K is chosen on ``data.target_val``.

  Args:
    pairs: ``(user int[P], item int[P])``; every user must be a cold (validation or
      test) user.

  Returns:
    float32[P] predictions.
  """
  keys = method_lib.StageKeys.from_seed(seed)
  rel = released_prototypes(scorer, params_s, params_t, data, keys, inversion, cfg, key,
                            protos)
  n_bridge = len(method_lib.bridge_users(data))
  W_map, _ = method_lib.fit_bridge(rel.source[:n_bridge], rel.target, keys.bridge, bridge)
  P_hat = method_lib.transfer(W_map, rel.source[n_bridge:])
  W_t, V_t = method_lib.representations(scorer, params_t, data.target_train.n_users)
  valid = method_lib.candidates(data, topk)
  cold = method_lib.cold_users(data)
  r = inversion.target_rating
  k, _ = method_lib.select_k(P_hat, W_t, valid, V_t, data.target_val, cold, topk, r)
  user, item = (np.asarray(a, np.int32) for a in pairs)
  if np.any(cold.row_of_user[user] < 0):
    raise ValueError("PFCDR-DP predicts cold (validation or test) users only")
  asked = DomainData(user=user, item=item, rating=np.zeros(user.shape, np.float32),
                     n_users=data.target_train.n_users, n_items=data.target_train.n_items)
  with phase_timer.predicting(user.size, P_hat, W_t, V_t, valid):
    return np.asarray(method_lib.predict_cold(P_hat, W_t, valid, V_t, asked, cold, k, topk, r))
