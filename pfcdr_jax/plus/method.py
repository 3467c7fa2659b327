"""PFCDR+: PFCDR's prototypes with a bias floor, a task-oriented bridge and neighbours.

What crosses domains is what PFCDR sends -- each user's source prototype
``P_u = b_u* @ V_s`` (``method.prototypes``, one per inversion target rating r) -- plus
two scalars per user computed in the source domain: the *offset* ``o_u``, the user's
shrunk mean of ``r - mu_s - b^s_i`` (how much they rate above the source mean after
the source items' own biases; ``offset_debias=False``: of ``r - mu_s``), and the
*crowd agreement* ``a_u`` (:func:`crowd_agreement`: the shrunk slope of the user's
centred source ratings on the source item biases, i.e. how strongly they follow the
crowd). Bridge and validation users send them once per kappa of the grid, so that kappa
can be chosen; test users only at the chosen kappa.

Told plainly (issue 29): in practice PFCDR+ is a two-scalar bias model -- without the
prototypes it is within 0.0005 MAE of the default (``docs/results/ablate_plus_*.json``)
-- and what it sends is not private. The kappa grid gives each user's number of source
ratings exactly, ``n_u = kappa / (o(0) / o(kappa) - 1)``, and the offset is the user's
rating level (``privacy/leakage.py``: R² of the mean rating ~0.8 on comedy2drama). Its
``rating_epsilon`` variant noises rating *values* only: n_u, sum_u b_i and sum_u b_i^2
are released exactly, so it has no finite user-level epsilon (``privacy/units.py``).
The registry's ``PFCDR-Bilinear`` is this model with both scalars off: it sends PFCDR's
prototypes and nothing else. The offset can be noised by the Gaussian mechanism (:func:`noise_offsets`,
clip to [-c, c], sensitivity 2c: user-level, offset only), or both scalars computed
from a per-rating Laplace-DP release of the source (``rating_epsilon``,
:func:`rating_dp_release`). In the target
domain (which has its own ratings) the prediction of a cold user u on item j is

  floor(u, j)  = mu + b_j(lambda)                               (global + item bias)
  bilinear     = z_u^T M x_j,  z_u = [P_u(r) for r in rs, o_u, a_u, 1],
                               x_j = [v_j, b_j, 1]
  neighbours   = beta * (w_bar_u - w_all) . v_j                 (residual form), or
                 (1 - beta) * (floor + bilinear) + beta * w_bar_u . v_j    ("blend")
  pred(u, j)   = clip(floor + bilinear + neighbours, [r_min, r_max])

with ``b_j = sum(r - mu) / (n_j + lambda)`` over the target training ratings, ``v_j``
the pretrained target item vectors, ``M`` fit on the residual ``r - floor`` of the
bridge (training overlap) users' target training ratings over the features
``z_u (x) x_j`` (linear in M): a ridge regression in closed form, then (``fit_loss``)
refit to least absolute deviations by IRLS (:func:`irls_l1`), since MAE is the metric.
Its special case z_u = [o_u, 1], x_j = [1] is the BiasFloor of a fitted scale gamma;
``a_u * b_j`` lets a user follow the item biases more or less than average.
``w_bar_u`` is the similarity-weighted mean of the target user representations:
weights ``softmax(-|r - w_t . P_hat_u| / tau)`` over the trained target users (Eq. 13's
distance) or a uniform mean over the K closest (Eq. 14), ``P_hat_u`` the prototype
transferred by PFCDR's linear bridge, ``w_all`` the mean over all trained target users.

Selection (:func:`fit_predict_plus`): on the validation users (pseudo-cold overlap
users, never the test users), greedily in this order -- lambda (floor alone), raw
offset, (kappa, ridge strength) of the ridge fit, ridge vs its L1 refit, then (K or
tau, beta) jointly -- each by validation MAE, each step kept only if it lowers the
validation MAE. The test users' ratings are never read. Every part can be switched off
in :class:`PlusConfig`, which is how ``experiments/ablate_plus.py`` measures each one.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.infra import phase_timer
from pfcdr_jax.plus.config import PlusConfig
from pfcdr_jax.plus.features import item_bias
from pfcdr_jax.plus.features import item_features
from pfcdr_jax.plus.features import source_spread
from pfcdr_jax.plus.features import user_features
from pfcdr_jax.plus.inputs import Pairs
from pfcdr_jax.plus.inputs import PlusInputs
from pfcdr_jax.plus.neighbours import neighbour_means
from pfcdr_jax.plus.release import sent_crowd
from pfcdr_jax.plus.release import sent_offsets
from pfcdr_jax.plus.solvers import bilinear_predict
from pfcdr_jax.plus.solvers import irls_l1
from pfcdr_jax.plus.solvers import normal_equations
from pfcdr_jax.plus.solvers import ridge_solve


class PlusFit(NamedTuple):
  """What :func:`fit_predict_plus` returns.

  Attributes:
    pred: float32[P] predictions of the requested pairs.
    chosen: the settings chosen on validation.
    val_mae: validation MAE after each step ({"floor": .., "bilinear": .., ...}).
    predict: ``(user int[Q], item int[Q]) -> float32[Q]``, the chosen model on any
      (cold user, target item) pairs (``pred`` is it on the requested pairs).
  """
  pred: np.ndarray
  chosen: dict
  val_mae: dict
  predict: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _best(maes: dict):
  """The key of the lowest validation MAE (first on ties, in insertion order)."""
  return min(maes, key=maes.get)


class _Step(NamedTuple):
  """A candidate model: its validation predictions, and (unclipped) predictions of
  any (user, item) pairs, evaluated only for the chosen model (the testing step)."""
  val: np.ndarray
  predict: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _floor_step(inp: PlusInputs, val: tuple, cfg: PlusConfig, clip, chosen,
                maes) -> tuple[_Step, np.ndarray, float]:
  """mu + b_j(lambda), lambda on validation. Returns (step, b, mu)."""
  _, ti, tr = inp.target
  mu = float(np.mean(tr))
  by_lam = {lam: item_bias(ti, tr, inp.n_items_t, mu, lam) for lam in cfg.item_shrinkage}
  val_mae = {lam: float(metrics_lib.mae(clip(mu + b[val[1]]), val[2]))
             for lam, b in by_lam.items()}
  lam = _best(val_mae)
  chosen["item_shrinkage"], maes["floor"] = lam, val_mae[lam]
  b = by_lam[lam]
  return _Step(mu + b[val[1]], lambda u, i: mu + b[i]), b, mu


def _bilinear_step(inp: PlusInputs, val: tuple, pairs: Pairs, cfg: PlusConfig, clip,
                   floor: _Step, b: np.ndarray, mu: float, base: _Step, chosen, maes
                   ) -> _Step:
  """floor + z_u^T M x_j, M by ridge (or L1) on the bridge users, chosen on validation.

  With ``cfg.select_steps`` the step before (`base`) is a candidate too (ridge None).
  """
  users = np.concatenate([inp.bridge_users, inp.cold_users])
  row_of = np.full(inp.n_users, -1, np.int64)
  row_of[users] = np.arange(len(users))
  for name, u in (("validation", val[0]), ("predicted", pairs.user)):
    if np.any(row_of[u] < len(inp.bridge_users)):
      raise ValueError(f"PFCDR+: every {name} user must be a cold user")
  X = item_features(inp.V_t if cfg.item_side else None, inp.n_items_t,
                    b if cfg.item_bias_feature else None)
  tu, ti, tr = inp.target
  keep = np.isin(tu, inp.bridge_users)
  fit = (row_of[tu[keep]], ti[keep], tr[keep] - mu - b[ti[keep]])
  su, _, sr = inp.source
  n_src = max(inp.n_users, int(np.max(su)) + 1)
  steps, fits = {}, {}

  def add(key, theta, Z):
    fits[key] = (theta, Z)
    steps[key] = _Step(
        floor.val + bilinear_predict(theta, Z, X, row_of[val[0]], val[1]),
        lambda u, i: floor.predict(u, i) + bilinear_predict(theta, Z, X, row_of[u], i))

  for kappa in (cfg.offset_shrinkage if cfg.use_offset else (None,)):
    offsets = None if kappa is None else sent_offsets(inp.source, inp.n_users, cfg, kappa)[users]
    spread = (source_spread(su, sr, n_src, kappa or 0.0)[users] if cfg.spread else None)
    crowd = sent_crowd(inp.source, n_src, cfg, kappa or 0.0)[users] if cfg.crowd else None
    Z = user_features(inp.protos_src if cfg.use_prototype else None, offsets, spread,
                      crowd)
    A, c = normal_equations(Z, X, *fit)
    for strength in cfg.ridge:
      add((kappa, strength, "l2"), ridge_solve(A, c, strength), Z)
  mae_of = lambda st: float(metrics_lib.mae(clip(st.val), val[2]))
  if cfg.fit_loss != "l2":
    kappa, strength, _ = min(steps, key=lambda k: mae_of(steps[k]))
    theta, Z = fits[(kappa, strength, "l2")]
    add((kappa, strength, "l1"), irls_l1(Z, X, *fit, strength, theta,
                                         steps=cfg.irls_steps, delta=cfg.irls_delta), Z)
    if cfg.fit_loss == "l1":
      steps = {k: v for k, v in steps.items() if k[2] == "l1"}
  if cfg.select_steps:
    steps[(None, None, None)] = base     # no bilinear part: the step before
  val_mae = {k: mae_of(st) for k, st in steps.items()}
  best = _best(val_mae)
  chosen["offset_shrinkage"], chosen["ridge"], chosen["fit_loss"] = best
  chosen["n_features"] = int(Z.shape[1] * X.shape[1])
  maes["bilinear"] = val_mae[best]
  return steps[best]


def _neighbour_step(inp: PlusInputs, val: tuple, cfg: PlusConfig, clip,
                    base: _Step, chosen, maes) -> _Step:
  """base + beta * neighbour term; (K or tau, beta) on validation."""
  row_of = np.full(inp.n_users, -1, np.int64)
  row_of[inp.cold_users] = np.arange(len(inp.cold_users))
  V = np.asarray(inp.V_t, np.float64)
  w_all = np.mean(np.asarray(inp.W_t, np.float64)[np.asarray(inp.trained, bool)], axis=0)

  def term(w_bar, users, items):
    w = np.asarray(w_bar, np.float64)[row_of[users]]
    return np.sum(((w - w_all) if cfg.combine == "residual" else w) * V[items], axis=1)

  def mix(b, t, beta):
    return b + beta * t if cfg.combine == "residual" else (1 - beta) * b + beta * t

  def candidate(w_bar, t_val, beta):
    return _Step(mix(base.val, t_val, beta),
                 lambda u, i: mix(base.predict(u, i), term(w_bar, u, i), beta))

  val_mae, steps = {}, {}
  for setting, w_bar in neighbour_means(inp, cfg).items():
    t_val = term(w_bar, val[0], val[1])
    for beta in (b for b in cfg.betas if b != 0 or cfg.select_steps):
      steps[setting + (beta,)] = candidate(w_bar, t_val, beta)
      val_mae[setting + (beta,)] = float(metrics_lib.mae(clip(steps[setting + (beta,)].val),
                                                          val[2]))
  best = _best(val_mae)
  if cfg.select_steps and cfg.neighbour_folds and not _helps_out_of_fold(
      {k: st.val for k, st in steps.items()}, base.val, val, clip):
    best = None
    chosen["neighbours_cross_fold"] = "rejected"
  if best is None:
    chosen["beta"] = 0.0
    return base
  chosen[best[0]], chosen["beta"], maes["neighbours"] = best[1], best[2], val_mae[best]
  return steps[best]


def _helps_out_of_fold(candidates: dict, base: np.ndarray, val: tuple, clip) -> bool:
  """Whether choosing among `candidates` on one half of the validation users beats
  `base` on the other half, in both directions (halves by user id parity).

  Args:
    candidates: {setting: float[V] validation predictions}; base: float[V] those of
      the step before.
  """
  half = (np.asarray(val[0]) % 2).astype(bool)
  for fit_on in (half, ~half):
    if not fit_on.any() or fit_on.all():
      return False
    err = lambda p, m: float(np.mean(np.abs(clip(p[m]) - val[2][m])))
    pick = min(candidates, key=lambda k: err(candidates[k], fit_on))
    if err(candidates[pick], ~fit_on) >= err(base, ~fit_on):
      return False
  return True


def fit_predict_plus(inp: PlusInputs, val: tuple, pairs: Pairs,
                     cfg: PlusConfig = PlusConfig()) -> PlusFit:
  """PFCDR+ on one split: predictions of `pairs`, every setting chosen on `val`.

  Args:
    inp: the split's arrays (:class:`PlusInputs`).
    val: (user, item, rating) of the validation users' target ratings (cold users).
    pairs: the (cold user, item) pairs to predict (e.g. validation then test pairs).
    cfg: grids and switches.

  Returns:
    :class:`PlusFit`.

  Raises:
    ValueError: no validation ratings, or a validation / predicted user that is not cold.
  """
  if len(val[2]) == 0:
    raise ValueError("PFCDR+ chooses its settings on validation users; there are none")
  tr = inp.target[2]
  lo, hi = float(np.min(tr)), float(np.max(tr))
  clip = (lambda p: np.clip(p, lo, hi)) if cfg.clip else (lambda p: p)
  chosen, maes = {}, {}
  floor, b, mu = _floor_step(inp, val, cfg, clip, chosen, maes)
  step = floor
  if cfg.use_offset and (cfg.select_steps or not cfg.bilinear):
    o = sent_offsets(inp.source, inp.n_users, cfg, cfg.offset_shrinkage[0])
    with_offset = _Step(floor.val + o[val[0]], lambda u, i: floor.predict(u, i) + o[u])
    maes["floor+offset"] = float(metrics_lib.mae(clip(with_offset.val), val[2]))
    chosen["raw_offset"] = not cfg.select_steps or maes["floor+offset"] < maes["floor"]
    step = with_offset if chosen["raw_offset"] else floor
  if cfg.bilinear:
    step = _bilinear_step(inp, val, pairs, cfg, clip, floor, b, mu, step, chosen, maes)
  if cfg.neighbours != "none":
    step = _neighbour_step(inp, val, cfg, clip, step, chosen, maes)
  predict = lambda u, i: clip(step.predict(np.asarray(u), np.asarray(i))).astype(np.float32)
  with phase_timer.predicting(len(pairs.user)):
    pred = predict(pairs.user, pairs.item)
  return PlusFit(pred, chosen, maes, predict)
