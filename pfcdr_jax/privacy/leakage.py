"""Leakage per target quantity under the strongest attacker, on one [0, 1] scale.

For one transferred vector per user (``x``, a :class:`transfers.Transfer`'s rows), the
attacker (C of the package docstring: it knows the true source data of its auxiliary
users) tries to recover, for each attacked user, each of these *quantities*:

=============  =======================================================  ==========
quantity       target                                                   score
=============  =======================================================  ==========
embedding      the user's source representation ``U_i`` [d]             R² (pooled)
n_ratings      ``log(1 + n_u)``, n_u the user's number of source        R²
               ratings
mean_rating    the user's mean source rating                            R²
membership     which source items the user rated (rated vs unrated)     AUC per user,
                                                                        averaged
gender, age,   the user's attributes (ML-1M tasks only)                 AUC (binary)
occupation                                                              / accuracy
=============  =======================================================  ==========

Attacker families, each fitted on 80 % of the auxiliary users and scored on the other
20 % (the attacker's own held-out users); the family with the best held-out score is
*the* attacker of that quantity, and only its score on the attacked users counts:

* regression (embedding, n_ratings, mean_rating): ``ridge`` (closed form, three
  penalties, each a family member), ``mlp`` (one hidden layer of 64, early stopping),
  ``gbt`` (histogram gradient-boosted trees, one model per output);
* classification (attributes): ``logistic``, ``mlp``, ``gbt``;
* membership: ``ridge`` (penalties up to 1e6, where it *is* the popularity prior),
  ``mlp`` (multi-output, unstandardised indicators) and ``knn`` (the mean indicator of
  the 20 or 100 nearest auxiliary users) from ``x`` to the user's rated-item
  indicator (no trees: one model per source item would be thousands of fits), plus
  ``direct`` / ``direct_abs`` (``x @ item_scores`` and its magnitude, attacker B's
  scores, no fitting) where the transfer has an item map;
* ``kappa_ratio`` (n_ratings, PFCDR+'s release only): the exact inversion of its
  kappa grid, ``n_u = kappa / (o(0) / o(kappa) - 1)`` (no fitting);
* ``observed_items`` (membership) and ``observed_count`` (n_ratings), where the
  receiver also reads item ids in the user's messages (``observed``; FedCDR's uploads
  name the items of every round's local batch): the named items ranked first, the rest
  by popularity among the auxiliary users, and ``log(1 + number of items named)`` (no
  fitting).

Chance is a property of the quantity, computed by the best attacker that sees no user
information: R² 0 (the auxiliary mean), the majority class's accuracy, AUC 0.5 for a
binary attribute, and for membership the AUC of ranking items by their popularity
among the auxiliary users (a user's rated items are popular ones whoever the user is).
*Advantage* puts every score on [0, 1]: ``max(0, (score - chance) / (1 - chance))``,
which is ``max(R², 0)`` for R², ``2 (AUC - 0.5)`` for a binary AUC and
``(acc - chance) / (1 - chance)`` for accuracy. A transfer's leakage is its largest
advantage over the quantities (a quantity that cannot be scored -- an attribute with
fewer than two classes of 20+ auxiliary users -- is listed in ``not_scored``). Each
quantity is also attacked on a control (the chosen attacker on a derangement of the
rows: each user gets another user's vector), reported raw beside it: a fitted attacker
lands near chance, a fixed one (``kappa_ratio``, ``direct``) can land far below it. The
floor of the whole pipeline (selection, clipping at 0, the maximum over quantities) is
measured by attacking pure noise (``frontier_study``'s ItemMean row).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable

import numpy as np
from scipy import sparse
from scipy import stats
from threadpoolctl import threadpool_limits
from sklearn import ensemble
from sklearn import exceptions as sk_exceptions
from sklearn import linear_model
from sklearn import neural_network
from sklearn import preprocessing

from pfcdr_jax.privacy import attacks
from pfcdr_jax.privacy import controls

REGRESSION = ("embedding", "n_ratings", "mean_rating")
RIDGE_PENALTIES = (1e-2, 1.0, 100.0)
# Membership: up to penalties where the ridge is the popularity prior itself (so the
# family never sits below chance by construction), and k-nearest auxiliary users.
MEMBERSHIP_PENALTIES = (1.0, 100.0, 1e4, 1e6)
KNN_K = (20, 100)
HOLDOUT_SHARE = 0.2
MLP_HIDDEN = (64,)
GBT_ITERS = 50


@dataclasses.dataclass(frozen=True)
class Targets:
  """The per-user truth the attacks are scored against (index = source user).

  Attributes:
    embedding: float[U_s, d] source user representations.
    n_ratings: float[U_s] ``log(1 + n_u)``.
    mean_rating: float[U_s] mean source rating (the global mean for users without).
    membership: bool csr[U_s, N_s] which source items each user rated.
    attributes: name -> int[U_s] codes (-1 unknown).
  """
  embedding: np.ndarray
  n_ratings: np.ndarray
  mean_rating: np.ndarray
  membership: sparse.csr_matrix
  attributes: dict


def targets(U: np.ndarray, ratings: tuple, n_items: int, attributes: dict) -> Targets:
  """:class:`Targets` from the source representations and ratings ``(user, item, r)``."""
  user, item, rating = (np.asarray(a) for a in ratings)
  n_users = U.shape[0]
  n = np.bincount(user, minlength=n_users).astype(np.float64)
  s = np.bincount(user, weights=rating, minlength=n_users)
  mean = np.where(n > 0, s / np.maximum(n, 1), float(np.mean(rating)))
  member = sparse.csr_matrix((np.ones(len(user), bool), (user, item)),
                             shape=(n_users, n_items))
  member.sum_duplicates()
  member.data[:] = True
  return Targets(np.asarray(U, np.float64), np.log1p(n), mean, member, dict(attributes))


# --- scores -------------------------------------------------------------------------


def r2(pred: np.ndarray, truth: np.ndarray, center: np.ndarray) -> float:
  """``1 - SSE / SST`` pooled over outputs, SST around `center` (the auxiliary mean)."""
  pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
  sst = float(np.sum((truth - center) ** 2))
  return 1.0 - float(np.sum((truth - pred) ** 2)) / max(sst, 1e-12)


def membership_auc(scores: np.ndarray, member: sparse.csr_matrix) -> float:
  """Mean over users (with at least one rated and one unrated item) of the AUC of
  their rated items' scores above their unrated items' (ties count half)."""
  scores = np.asarray(scores, np.float64)
  rated = np.asarray(member.todense(), bool)
  ranks = stats.rankdata(scores, axis=1)
  n1 = rated.sum(1).astype(np.float64)
  n0 = rated.shape[1] - n1
  ok = (n1 > 0) & (n0 > 0)
  if not ok.any():
    return float("nan")
  u = (np.sum(ranks * rated, 1) - n1 * (n1 + 1) / 2.0)[ok] / (n1 * n0)[ok]
  return float(np.mean(u))


def advantage(score: float, chance: float) -> float:
  """``max(0, (score - chance) / (1 - chance))``: 0 at chance, 1 at perfect recovery."""
  if not np.isfinite(score):
    return float("nan")
  return float(max(0.0, (score - chance) / max(1.0 - chance, 1e-12)))


# --- attacker families --------------------------------------------------------------


def _quiet(fn: Callable) -> Callable:
  def wrapped(*a, **k):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", sk_exceptions.ConvergenceWarning)
      return fn(*a, **k)
  return wrapped


def _ridge(x, y, penalty):
  mx, my = x.mean(0), y.mean(0)
  sd = x.std(0) + 1e-12
  xs = (x - mx) / sd
  w = np.linalg.solve(xs.T @ xs + penalty * np.eye(x.shape[1]), xs.T @ (y - my))
  return lambda z: ((z - mx) / sd) @ w + my


def _knn(x, y, k):
  """Mean target of the k nearest fitting users (standardised Euclidean distance)."""
  mx, sd = x.mean(0), x.std(0) + 1e-12
  xs = (x - mx) / sd
  k = min(k, len(x))

  def predict(z):
    zs = (z - mx) / sd
    out = np.empty((len(z), y.shape[1]), np.float64)
    for s in range(0, len(z), 512):
      d = (np.sum(zs[s:s + 512] ** 2, 1)[:, None] - 2 * zs[s:s + 512] @ xs.T
           + np.sum(xs ** 2, 1)[None, :])
      nn = np.argpartition(d, k - 1, axis=1)[:, :k]
      out[s:s + 512] = y[nn].mean(1)
    return out
  return predict


@_quiet
def _mlp_regress(x, y, seed, standardize_y: bool = True):
  scaler = preprocessing.StandardScaler().fit(x)
  ys = (y.std(0) + 1e-12) if standardize_y else np.ones(y.shape[1:])
  my = y.mean(0)
  net = neural_network.MLPRegressor(hidden_layer_sizes=MLP_HIDDEN, alpha=1e-3,
                                    early_stopping=True, max_iter=300, random_state=seed)
  net.fit(scaler.transform(x), ((y - my) / ys).squeeze())
  return lambda z: (net.predict(scaler.transform(z)).reshape((len(z),) + y.shape[1:])
                    * ys + my)


def _gbt_regress(x, y, seed):
  y2 = y.reshape(len(y), -1)
  models = [ensemble.HistGradientBoostingRegressor(max_iter=GBT_ITERS, random_state=seed)
            .fit(x, y2[:, j]) for j in range(y2.shape[1])]
  return lambda z: np.stack([m.predict(z) for m in models], 1).reshape(
      (len(z),) + y.shape[1:])


def regressors(seed: int) -> dict[str, Callable]:
  """name -> ``(x_fit, y_fit) -> fitted predictor x -> y`` of every regression family."""
  out = {f"ridge={p:g}": (lambda x, y, p=p: _ridge(x, y, p)) for p in RIDGE_PENALTIES}
  out["mlp"] = lambda x, y: _mlp_regress(x, y, seed)
  out["gbt"] = lambda x, y: _gbt_regress(x, y, seed)
  return out


@_quiet
def _classify(kind, x, y, seed):
  """A fitted classifier: ``x -> (classes, probabilities)``."""
  scaler = preprocessing.StandardScaler().fit(x)
  if kind == "logistic":
    clf = linear_model.LogisticRegression(max_iter=2000, random_state=seed)
  elif kind == "mlp":
    clf = neural_network.MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, alpha=1e-3,
                                       early_stopping=True, max_iter=300, random_state=seed)
  else:
    clf = ensemble.HistGradientBoostingClassifier(max_iter=GBT_ITERS, early_stopping=True,
                                                  random_state=seed)
  clf.fit(scaler.transform(x), y)
  return lambda z: (clf.classes_, clf.predict_proba(scaler.transform(z)))


CLASSIFIERS = ("logistic", "mlp", "gbt")
MIN_CLASS_COUNT = 20   # a class needs this many auxiliary users (stratified splits)


def _class_score(classes, proba, y_true) -> float:
  """AUC of the positive class (binary) or accuracy (more classes)."""
  if len(classes) == 2:
    return attacks.auc(proba[:, 1], y_true == classes[1])
  return float(np.mean(classes[np.argmax(proba, 1)] == y_true))


# --- the attack on one quantity -----------------------------------------------------


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  perm = np.random.default_rng([seed, 29]).permutation(n)
  k = max(1, int(round(HOLDOUT_SHARE * n)))
  return perm[k:], perm[:k]


def _choose(fitted: dict, score_on: Callable, side: dict | None = None
            ) -> tuple[str, dict]:
  """The fitted attacker with the best held-out score (ties: the first); ``side``:
  held-out scores of attackers that read something besides ``x``."""
  scores = {name: score_on(model) for name, model in fitted.items()}
  scores.update(side or {})
  finite = {k: v for k, v in scores.items() if np.isfinite(v)}
  best = max(finite, key=finite.get) if finite else next(iter(scores))
  return best, scores


def _control_rows(n: int, seed: int) -> np.ndarray:
  """The derangement ``controls.random_users(x, seed)`` applies to ``n`` rows."""
  return controls.derangement(n, np.random.default_rng(seed))


def attack_regression(x_aux, y_aux, x_eval, y_eval, seed: int,
                      fixed: dict[str, Callable] | None = None,
                      side: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
                      ) -> dict:
  """The strongest regression attacker of one quantity (module docstring).

  Args:
    x_aux, y_aux: the auxiliary users' vectors and true values (float[n_aux, m],
      float[n_aux] or float[n_aux, d]).
    x_eval, y_eval: the attacked users'.
    seed: the holdout split and the models' initialisation.
    fixed: name -> ``x -> prediction`` attackers without fitting (e.g. kappa_ratio).
    side: name -> (predictions of the auxiliary users, of the attacked users) of
      attackers without fitting that read something besides ``x`` (e.g.
      observed_count); their control takes the attacked users' predictions in the
      order of the control's derangement.

  Returns:
    ``{"attacker", "score" (R² on the attacked users), "chance": 0.0, "advantage",
    "holdout": {name: held-out R²}, "control": R² of the chosen attacker on a
    derangement of the rows}``.
  """
  fit, hold = _split(len(x_aux), seed)
  fams = regressors(seed)
  center = y_aux[fit].mean(0)
  fitted = {name: f(x_aux[fit], y_aux[fit]) for name, f in fams.items()}
  fitted.update(fixed or {})
  side = side or {}
  best, holdout = _choose(fitted, lambda m: r2(m(x_aux[hold]), y_aux[hold], center),
                          {k: r2(a[hold], y_aux[hold], center) for k, (a, _) in side.items()})
  shuffled = controls.random_users(x_eval, seed + 1)
  if best in side:
    pred = side[best][1]
    ctrl = pred[_control_rows(len(x_eval), seed + 1)]
  elif best in fams:   # the control refits the chosen family on deranged rows
    pred = fitted[best](x_eval)
    ctrl = fams[best](controls.random_users(x_aux[fit], seed + 2), y_aux[fit])(shuffled)
  else:
    pred = fitted[best](x_eval)
    ctrl = fitted[best](shuffled)
  score = r2(pred, y_eval, center)
  return {"attacker": best, "score": score, "chance": 0.0,
          "advantage": advantage(score, 0.0), "holdout": holdout,
          "control": r2(ctrl, y_eval, center)}


def attack_attribute(x_aux, y_aux, x_eval, y_eval, seed: int) -> dict:
  """The strongest classifier of one attribute (codes < 0 = unknown, dropped)."""
  values, counts = np.unique(y_aux[y_aux >= 0], return_counts=True)
  common = values[counts >= MIN_CLASS_COUNT]   # rarer classes: dropped, as unknown codes
  ka, ke = np.isin(y_aux, common), np.isin(y_eval, common)
  if len(common) < 2 or ke.sum() == 0:
    return {"attacker": None, "score": float("nan"), "chance": float("nan"),
            "metric": None, "advantage": float("nan"), "holdout": {},
            "control": float("nan"), "dropped": "fewer than 2 classes with "
            f"{MIN_CLASS_COUNT}+ auxiliary users"}
  x_aux, y_aux, x_eval, y_eval = x_aux[ka], y_aux[ka], x_eval[ke], y_eval[ke]
  fit, hold = _split(len(x_aux), seed)
  values, counts = np.unique(y_aux, return_counts=True)
  binary = len(values) == 2
  chance = 0.5 if binary else float(np.mean(y_eval == values[np.argmax(counts)]))

  fitted = {k: _classify(k, x_aux[fit], y_aux[fit], seed) for k in CLASSIFIERS}
  best, holdout = _choose(fitted, lambda m: _class_score(*m(x_aux[hold]), y_aux[hold]))
  score = _class_score(*fitted[best](x_eval), y_eval)
  ctrl = _classify(best, controls.random_users(x_aux[fit], seed + 2), y_aux[fit], seed)
  control = _class_score(*ctrl(controls.random_users(x_eval, seed + 1)), y_eval)
  return {"attacker": best, "score": score, "chance": chance,
          "metric": "auc" if binary else "accuracy",
          "advantage": advantage(score, chance), "holdout": holdout, "control": control}


def named_item_scores(named: sparse.csr_matrix, popularity: np.ndarray) -> np.ndarray:
  """float64[n, N]: items named in a user's messages first, the rest by popularity.

  ``named + 1e-3 popularity`` (popularity in [0, 1]): every named item outranks every
  other, and ties within each group are broken by how many auxiliary users rated it.
  """
  return np.asarray(named.todense(), np.float64) + 1e-3 * np.asarray(popularity)[None, :]


def attack_membership(x_aux, m_aux: sparse.csr_matrix, x_eval, m_eval: sparse.csr_matrix,
                      seed: int, item_scores: np.ndarray | None = None,
                      observed: tuple[sparse.csr_matrix, sparse.csr_matrix] | None = None
                      ) -> dict:
  """The strongest attacker of which items each user rated (AUC per user, averaged).

  Chance: ranking items by their popularity among the auxiliary users. ``observed``:
  bool csr of the items the receiver sees named in each user's messages (auxiliary
  rows, attacked rows), which adds the ``observed_items`` attacker.
  """
  fit, hold = _split(len(x_aux), seed)
  y_aux = np.asarray(m_aux.todense(), np.float32)
  fams = {f"ridge={p:g}": (lambda x, y, p=p: _ridge(x, y, p)) for p in MEMBERSHIP_PENALTIES}
  fams["mlp"] = lambda x, y: _mlp_regress(x, y, seed, standardize_y=False)
  for k in KNN_K:
    fams[f"knn={k}"] = lambda x, y, k=k: _knn(x, y, k)
  fitted = {name: f(x_aux[fit], y_aux[fit]) for name, f in fams.items()}
  if item_scores is not None:
    fitted["direct"] = lambda x: x @ item_scores
    fitted["direct_abs"] = lambda x: np.abs(x @ item_scores)
  side = {}
  if observed is not None:
    o_aux, o_eval = (sparse.csr_matrix(o) for o in observed)
    pop = y_aux[fit].mean(0)
    side["observed_items"] = (named_item_scores(o_aux[hold], pop),
                              named_item_scores(o_eval, pop))
  best, holdout = _choose(fitted, lambda m: membership_auc(m(x_aux[hold]), m_aux[hold]),
                          {k: membership_auc(a, m_aux[hold]) for k, (a, _) in side.items()})
  popularity = np.broadcast_to(y_aux[fit].mean(0), (x_eval.shape[0], y_aux.shape[1]))
  chance = membership_auc(popularity, m_eval)
  shuffled = controls.random_users(x_eval, seed + 1)
  if best in side:
    pred = side[best][1]
    ctrl = pred[_control_rows(len(x_eval), seed + 1)]
  elif best in fams:
    pred = fitted[best](x_eval)
    ctrl = fams[best](controls.random_users(x_aux[fit], seed + 2), y_aux[fit])(shuffled)
  else:
    pred = fitted[best](x_eval)
    ctrl = fitted[best](shuffled)
  score = membership_auc(pred, m_eval)
  return {"attacker": best, "score": score, "chance": chance,
          "advantage": advantage(score, chance), "holdout": holdout,
          "control": membership_auc(ctrl, m_eval)}


# --- every quantity on one transfer ---------------------------------------------------


def kappa_ratio_counts(x: np.ndarray, offset_columns: list[int],
                       kappas: list[float]) -> np.ndarray:
  """float[n]: ``log(1 + n_u)`` read off PFCDR+'s offsets at several shrinkages.

  ``o(kappa) = S_u / (n_u + kappa)`` for one sum S_u, so ``o(0) / o(kappa) = (n_u +
  kappa) / n_u`` and ``n_u = kappa / (o(0) / o(kappa) - 1)``; the median over the
  kappas > 0 whose ratio is defined (S_u = 0 gives none: then 0).
  """
  x = np.asarray(x, np.float64)
  k0 = [c for c, k in zip(offset_columns, kappas) if k == 0]
  if not k0:
    raise ValueError("kappa_ratio needs the offset at kappa = 0")
  o0 = x[:, k0[0]]
  est = []
  for c, k in zip(offset_columns, kappas):
    if k <= 0:
      continue
    with np.errstate(divide="ignore", invalid="ignore"):
      n = k / (o0 / x[:, c] - 1.0)
    est.append(np.where(np.isfinite(n) & (n > 0), n, np.nan))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    n = np.nanmedian(np.stack(est, 1), axis=1)
  return np.log1p(np.nan_to_num(n, nan=0.0))


QUANTITIES = ("embedding", "n_ratings", "mean_rating", "membership")


def attack_transfer(x_aux: np.ndarray, x_eval: np.ndarray, aux_users: np.ndarray,
                    eval_users: np.ndarray, truth: Targets, *, seed: int,
                    item_scores: np.ndarray | None = None,
                    kappa_layout: tuple[list[int], list[float]] | None = None,
                    quantities: tuple[str, ...] = QUANTITIES,
                    observed: tuple[sparse.csr_matrix, sparse.csr_matrix] | None = None
                    ) -> dict:
  """Every quantity's strongest attacker on one transfer.

  Args:
    x_aux, x_eval: float[n_aux, m], float[n, m] the transferred vectors of the
      auxiliary and of the attacked users (rows in the order of `aux_users`,
      `eval_users`).
    truth: :class:`Targets`.
    seed: the attacker's holdout draw, the models' initialisation, the controls.
    item_scores: float[m, N_s] attacker B's item map (``direct`` membership scores).
    kappa_layout: (offset columns, their kappas) of a PFCDR+ release: adds the
      ``kappa_ratio`` attacker of n_ratings.
    quantities: which of :data:`QUANTITIES` to attack (attributes always, if any).
    observed: (auxiliary rows, attacked rows) bool csr[n, N_s] of the source items
      the receiver sees named in each user's messages besides ``x`` (FedCDR's upload
      ids): adds the ``observed_items`` (membership) and ``observed_count``
      (n_ratings) attackers.

  Returns:
    ``{"quantities": {quantity: the attack_* result}, "leakage_max": the largest
    advantage, "leakage_argmax": its quantity}``.
  """
  with threadpool_limits(1):   # OpenMP trees oversubscribe busy cores: far slower threaded
    return _attack_transfer(np.asarray(x_aux, np.float64), np.asarray(x_eval, np.float64),
                            aux_users, eval_users, truth, seed, item_scores, kappa_layout,
                            quantities, observed)


def _attack_transfer(x_aux, x_eval, aux_users, eval_users, truth, seed, item_scores,
                     kappa_layout, quantities, observed=None):
  out = {}
  for q in quantities:
    if q == "membership":
      out[q] = attack_membership(x_aux, truth.membership[aux_users], x_eval,
                                 truth.membership[eval_users], seed, item_scores, observed)
      continue
    y = getattr(truth, q)
    fixed, side = None, None
    if q == "n_ratings" and kappa_layout is not None:
      cols, kappas = kappa_layout
      fixed = {"kappa_ratio": lambda x: kappa_ratio_counts(x, cols, kappas)}
    if q == "n_ratings" and observed is not None:
      side = {"observed_count": tuple(np.log1p(sparse.csr_matrix(o).getnnz(axis=1))
                                      .astype(np.float64) for o in observed)}
    out[q] = attack_regression(x_aux, y[aux_users], x_eval, y[eval_users], seed, fixed,
                               side)
  for name, codes in truth.attributes.items():
    out[name] = attack_attribute(x_aux, codes[aux_users], x_eval, codes[eval_users], seed)
  adv = {q: r["advantage"] for q, r in out.items() if np.isfinite(r["advantage"])}
  best = max(adv, key=adv.get) if adv else None
  return {"quantities": out, "leakage_max": adv[best] if best else float("nan"),
          "leakage_argmax": best, "not_scored": sorted(set(out) - set(adv))}
