"""The attacks' scores: embedding recovery, preference recovery, linkage, attributes.

Each function scores an attacker's output against the truth; what the attacker
computes (the direct estimate, a decoder, a classifier) is chosen by ``study``. All
are plain numpy (and scikit-learn for the attribute classifier): they run once per
study on a few thousand users, not inside a training loop.

Shapes: ``n`` attacked users, ``d`` / ``m`` vector sizes, ``N`` source items, ``P``
linkage pool (every source user).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import linear_model
from sklearn import preprocessing


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Area under the ROC curve of `scores` for ``labels == 1`` (ties count half).

  The Mann-Whitney statistic ``(sum of positive ranks - n1 (n1 + 1) / 2) / (n1 n0)``
  with average ranks: equal to scikit-learn's ``roc_auc_score`` (tested) and about 30x
  cheaper per call, which matters in :func:`preference_auc`'s loop over users. Returns
  nan when a class is empty.
  """
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
  n1, n0 = int(labels.sum()), int((~labels).sum())
  if n1 == 0 or n0 == 0:
    return float("nan")
  ranks = stats.rankdata(scores)
  return float((ranks[labels].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _row_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
  return np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-12)


def embedding_recovery(est: np.ndarray, truth: np.ndarray, center: np.ndarray) -> dict:
  """How close an estimate of each user's embedding is to the truth.

  Args:
    est: float[n, d] the attacker's estimates of ``U_i``.
    truth: float[n, d] the true ``U_i``.
    center: float[d] the mean user embedding (of the auxiliary users) that the
      centred scores subtract: users share a large common component, so the raw
      cosine of any two users is high (the controls show it).

  Returns:
    ``{"cos": median raw cosine, "cos_centered": median cosine of est - center and
    truth - center, "r2": 1 - SSE / SST}`` with ``SST = sum ||truth - center||^2``
    (R^2 of the estimate as a predictor, negative when worse than the center).
  """
  est, truth = np.asarray(est, np.float64), np.asarray(truth, np.float64)
  if est.shape != truth.shape:
    raise ValueError(f"estimate {est.shape} and truth {truth.shape} differ in shape")
  c = np.asarray(center, np.float64)[None, :]
  sse = float(np.sum((truth - est) ** 2))
  sst = float(np.sum((truth - c) ** 2))
  return {"cos": float(np.median(_row_cos(est, truth))),
          "cos_centered": float(np.median(_row_cos(est - c, truth - c))),
          "r2": 1.0 - sse / max(sst, 1e-12)}


def preference_auc(scores: np.ndarray, rows: np.ndarray, items: np.ndarray,
                   ratings: np.ndarray, high: float = 4.0) -> dict:
  """Preference recovery: per-user AUC of item scores, averaged over users.

  Args:
    scores: float[n, N] the attacker's score of every source item for each user.
    rows: int[R] row (0..n-1) of each known source rating; items: int[R]; ratings:
      float[R] the users' true source ratings.
    high: ratings >= high are "liked", the user's other rated items "disliked".

  Returns:
    ``{"high_low": mean AUC of liked above disliked items (users with both),
    "rated_unrated": mean AUC of rated above unrated items, "n_users_high_low",
    "n_users_rated"}``.
  """
  scores = np.asarray(scores, np.float64)
  n, n_items = scores.shape
  hl, ru = [], []
  order = np.argsort(rows, kind="stable")
  bounds = np.searchsorted(rows[order], np.arange(n + 1))
  for i in range(n):
    sel = order[bounds[i]:bounds[i + 1]]
    if sel.size == 0:
      continue
    it, r = items[sel], ratings[sel]
    a = auc(scores[i, it], r >= high)
    if np.isfinite(a):
      hl.append(a)
    rated = np.zeros(n_items, bool)
    rated[it] = True
    a = auc(scores[i], rated)
    if np.isfinite(a):
      ru.append(a)
  return {"high_low": float(np.mean(hl)) if hl else float("nan"),
          "rated_unrated": float(np.mean(ru)) if ru else float("nan"),
          "n_users_high_low": len(hl), "n_users_rated": len(ru)}


def sign_agreement(scores: np.ndarray, true_scores: np.ndarray) -> float:
  """Share of (user, item) entries where ``sign(scores) == sign(true_scores)``.

  The statistic quoted for PFCDR's prototypes (``sign(V P_i)`` against
  ``sign(V U_i)``); its chance level depends on how many of the true scores share one
  sign, which the controls measure.
  """
  return float(np.mean(np.sign(scores) == np.sign(true_scores)))


def linkage(est: np.ndarray, pool: np.ndarray, true_index: np.ndarray,
            ks: tuple[int, ...] = (1, 10), chunk: int = 1024) -> dict:
  """Re-identification: rank of each user's true row among all users.

  Similarity is the cosine after centring each side by its own mean (the estimates
  by the mean over the attacked users, the pool by the mean user): the receiver knows
  both means, and without centring every pair of users looks alike. The rank of user
  ``i`` is ``1 + #{j : sim(i, j) > sim(i, true_i)}`` (ties in the user's favour).

  Args:
    est: float[n, m] one vector per attacked user (the transferred vector or a
      decoder's estimate, in the pool's space).
    pool: float[P, m] the source user table.
    true_index: int[n] each attacked user's row in `pool`.
    ks: the top-k accuracies reported.
    chunk: rows of `est` per matrix product (memory).

  Returns:
    ``{"top1": .., "top10": .., "chance_top1": 1/P, "chance_top10": 10/P,
    "median_rank": ..}`` (keys follow `ks`).
  """
  est = np.asarray(est, np.float64)
  pool = np.asarray(pool, np.float64)
  true_index = np.asarray(true_index)
  if est.shape[1] != pool.shape[1]:
    raise ValueError(f"estimates have {est.shape[1]} columns, the pool {pool.shape[1]}")
  e = est - est.mean(0, keepdims=True)
  p = pool - pool.mean(0, keepdims=True)
  e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
  p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
  ranks = np.empty(len(e), np.int64)
  for s in range(0, len(e), chunk):
    sim = e[s:s + chunk] @ p.T
    own = sim[np.arange(sim.shape[0]), true_index[s:s + chunk]]
    ranks[s:s + chunk] = 1 + np.sum(sim > own[:, None], axis=1)
  out = {f"top{k}": float(np.mean(ranks <= k)) for k in ks}
  out.update({f"chance_top{k}": min(1.0, k / len(pool)) for k in ks})
  out["median_rank"] = float(np.median(ranks))
  return out


def attribute_inference(x_aux: np.ndarray, y_aux: np.ndarray, x_eval: np.ndarray,
                        y_eval: np.ndarray, seed: int = 0) -> dict:
  """A classifier of a user attribute from the transferred vector (attacker C).

  Multinomial logistic regression on standardised features, fitted on the
  auxiliary users. Binary attributes score ROC AUC, others accuracy; the majority
  class of the auxiliary users is reported next to it.

  Returns:
    ``{"auc": ..}`` (binary) or ``{"accuracy": .., "majority": ..}``.
  """
  y_aux, y_eval = np.asarray(y_aux), np.asarray(y_eval)
  scaler = preprocessing.StandardScaler().fit(x_aux)
  clf = linear_model.LogisticRegression(max_iter=2000, random_state=seed)
  clf.fit(scaler.transform(x_aux), y_aux)
  z = scaler.transform(x_eval)
  if len(clf.classes_) == 2:
    return {"auc": auc(clf.predict_proba(z)[:, 1], y_eval == clf.classes_[1])}
  values, counts = np.unique(y_aux, return_counts=True)
  return {"accuracy": float(np.mean(clf.predict(z) == y_eval)),
          "majority": float(np.mean(y_eval == values[np.argmax(counts)]))}
