"""Shilling detectors a platform runs over its users' implicit profiles.

The platform holds a binary user-item matrix (genuine users, then the injected
ones). Per user it computes profile features adapted to implicit data
(``FEATURES``):

* ``length``: number of items (degree);
* ``pop_mean`` / ``pop_std``: mean and standard deviation of the popularity
  (share of users holding it) of the profile's items;
* ``degsim``: mean cosine similarity to the ``k`` most similar other users
  (DegSim);
* ``rdma``: an RDMA-like popularity deviation: the mean over the profile's
  items of ``(1 - pop_i) / n_i`` -- the deviation of an implicit "1" from the
  item's acceptance rate ``pop_i``, weighted by the inverse of its
  interaction count ``n_i``;
* ``pca``: the user's sum of squared coefficients on the top principal
  components of the user-item matrix with users as variables (rows z-scored),
  as in Mehta & Nejdl's PCA-VarSelect.

Detectors (``DETECTORS``) turn them into suspicion scores, higher = more
suspicious: each of the first five features by its two-sided robust z-score
(distance to the median in MADs: fakes may sit on either side), ``pca`` by its
negative (users with the smallest coefficients are suspicious), and
``logreg``, a scikit-learn logistic regression on all six features trained on
generated fake profiles (of other target items) against the genuine users,
cross-fitted so that no evaluated user is scored by a model trained on it.

Metrics per detector (``detection_metrics``): ROC AUC of injected vs genuine
users, and the recall at the budget -- the share of the injected profiles
among the ``budget`` highest-scored users, ties shared out at random in
expectation.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
from sklearn import linear_model
from sklearn import metrics as sk_metrics
from sklearn import pipeline as sk_pipeline
from sklearn import preprocessing
from sklearn.utils import extmath

FEATURES = ("length", "pop_mean", "pop_std", "degsim", "rdma", "pca")
DETECTORS = FEATURES + ("logreg",)
MAD_SCALE = 1.4826  # MAD of a standard normal


def to_matrix(profiles: Sequence[np.ndarray], n_items: int) -> np.ndarray:
  """Binary rows of item-id profiles (-1 entries ignored). bool[n, N]."""
  out = np.zeros((len(profiles), n_items), bool)
  for r, p in enumerate(profiles):
    p = np.asarray(p)
    out[r, p[p >= 0]] = True
  return out


def _degsim(m: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
  inter = m @ m.T
  norm = np.sqrt(np.maximum(lengths, 1.0))
  sim = inter / norm[:, None] / norm[None, :]
  np.fill_diagonal(sim, -np.inf)
  k = max(1, min(k, len(m) - 1))
  return np.partition(sim, -k, axis=1)[:, -k:].mean(1)


def _pca_coefficients(m: np.ndarray, n_components: int,
                      seed: int) -> np.ndarray:
  x = m - m.mean(1, keepdims=True)
  std = x.std(1, keepdims=True)
  x = x / np.where(std > 0, std, 1.0)
  k = max(1, min(n_components, min(x.shape) - 1))
  u, _, _ = extmath.randomized_svd(x, k, random_state=seed)
  return (u ** 2).sum(1)


def profile_features(matrix: np.ndarray, k: int = 10, n_components: int = 3,
                     seed: int = 0) -> np.ndarray:
  """The ``FEATURES`` of every user of the platform. float64[U, 6].

  Args:
    matrix: bool[U, N] every user's profile (genuine and injected alike).
    k: neighbours of ``degsim``.
    n_components: principal components of ``pca``.
    seed: seed of the randomized SVD.
  """
  m = np.asarray(matrix, np.float64)
  n_users = len(m)
  lengths = m.sum(1)
  counts = m.sum(0)
  pop = counts / max(n_users, 1)
  safe_len = np.maximum(lengths, 1.0)
  pop_mean = (m @ pop) / safe_len
  pop_std = np.sqrt(np.maximum((m @ pop ** 2) / safe_len - pop_mean ** 2,
                               0.0))
  dev = np.where(counts > 0, (1.0 - pop) / np.maximum(counts, 1.0), 0.0)
  rdma = (m @ dev) / safe_len
  return np.stack([lengths, pop_mean, pop_std, _degsim(m, lengths, k), rdma,
                   _pca_coefficients(m, n_components, seed)], 1)


def robust_z(x: np.ndarray) -> np.ndarray:
  """``|x - median| / (1.4826 MAD)`` (the standard deviation if MAD is 0)."""
  med = np.median(x)
  scale = MAD_SCALE * np.median(np.abs(x - med))
  if scale <= 0:
    scale = x.std()
  return np.abs(x - med) / (scale if scale > 0 else 1.0)


def unsupervised_scores(features: np.ndarray) -> dict[str, np.ndarray]:
  """Suspicion of every user by each unsupervised detector (``FEATURES``)."""
  out = {name: robust_z(features[:, j]) for j, name in enumerate(FEATURES)}
  out["pca"] = -features[:, FEATURES.index("pca")]
  return out


class Supervised(NamedTuple):
  """The cross-fitted classifier of ``fit_supervised``.

  Attributes:
    models: one fitted scikit-learn pipeline per fold.
    genuine_fold: int[G] the fold of each genuine user: the model of that
      fold was trained without it.
    seed: seed of the injected users' fold draw.
  """

  models: list
  genuine_fold: np.ndarray
  seed: int


def fit_supervised(genuine: np.ndarray, fake_groups: Sequence[np.ndarray],
                   seed: int, n_folds: int = 2, k: int = 10,
                   n_components: int = 3) -> Supervised:
  """Logistic regression of generated fakes vs genuine users, cross-fitted.

  Each group of generated fakes is placed on the platform beside the genuine
  users and their features are computed there (as an injected attack's
  are); fold ``f``'s model learns every group's fakes against the genuine
  users outside fold ``f``, classes balanced.

  Args:
    genuine: bool[G, N] the genuine users' profiles.
    fake_groups: bool[F_g, N] per group of generated fake profiles (one
      attack on an item other than the evaluated ones).
    seed: seed of the fold draw, the SVD and the classifier.
    n_folds: folds of the genuine users.
    k: ``degsim`` neighbours.
    n_components: ``pca`` components.

  Returns:
    Supervised.
  """
  rng = np.random.default_rng(seed)
  fold = rng.permutation(len(genuine)) % n_folds
  pos, neg, neg_fold = [], [], []
  for group in fake_groups:
    f = profile_features(np.concatenate([genuine, group]), k, n_components,
                         seed)
    neg.append(f[:len(genuine)])
    neg_fold.append(fold)
    pos.append(f[len(genuine):])
  pos, neg, neg_fold = (np.concatenate(a) for a in (pos, neg, neg_fold))
  models = []
  for f in range(n_folds):
    x = np.concatenate([pos, neg[neg_fold != f]])
    y = np.concatenate([np.ones(len(pos)), np.zeros(int((neg_fold != f).sum()))])
    model = sk_pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(class_weight="balanced", max_iter=1000,
                                        random_state=seed))
    models.append(model.fit(x, y))
  return Supervised(models=models, genuine_fold=fold, seed=seed)


def supervised_scores(sup: Supervised, features: np.ndarray) -> np.ndarray:
  """Fake probability of every user (genuine first, as in ``fit_supervised``).

  A genuine user is scored by the model of its fold; each injected user by the
  model of a fold drawn at random: no user is scored by a model trained on it.
  """
  n_gen = len(sup.genuine_fold)
  n_inj = len(features) - n_gen
  draw = np.random.default_rng(sup.seed + 1).integers(0, len(sup.models), n_inj)
  fold = np.concatenate([sup.genuine_fold, draw])
  out = np.empty(len(features))
  for f, model in enumerate(sup.models):
    rows = fold == f
    if rows.any():
      out[rows] = model.predict_proba(features[rows])[:, 1]
  return out


def recall_at_budget(scores: np.ndarray, injected: np.ndarray,
                     budget: Optional[int] = None) -> float:
  """Share of the injected users among the ``budget`` highest-scored users.

  ``caught / n_injected``, ``caught`` the injected users among the top
  ``budget``; users tied with the ``budget``-th score share the remaining
  places in proportion (the expectation under a random tie-break).

  Args:
    scores: float[U] suspicion.
    injected: bool[U].
    budget: users inspected (default: the number injected).

  Returns:
    The recall in [0, 1] (NaN without injected users).
  """
  scores, injected = np.asarray(scores, np.float64), np.asarray(injected, bool)
  n_inj = int(injected.sum())
  if n_inj == 0:
    return float("nan")
  budget = min(n_inj if budget is None else int(budget), len(scores))
  if budget <= 0:
    return 0.0
  cut = np.sort(scores)[::-1][budget - 1]
  above, tied = scores > cut, scores == cut
  share = (budget - above.sum()) / tied.sum()
  caught = (injected & above).sum() + share * (injected & tied).sum()
  return float(caught / n_inj)


def detection_metrics(scores: np.ndarray, injected: np.ndarray,
                      budget: Optional[int] = None) -> dict:
  """{"auc": ROC AUC of injected vs genuine, "recall_at_budget"} (NaN AUC
  when a class is empty)."""
  injected = np.asarray(injected, bool)
  auc = (float(sk_metrics.roc_auc_score(injected, scores))
         if 0 < injected.sum() < len(injected) else float("nan"))
  return {"auc": auc,
          "recall_at_budget": recall_at_budget(scores, injected, budget)}


def evaluate_detectors(genuine: np.ndarray, injected: np.ndarray,
                       sup: Optional[Supervised] = None,
                       budget: Optional[int] = None, k: int = 10,
                       n_components: int = 3, seed: int = 0) -> dict:
  """Every detector on the platform of ``genuine`` users plus ``injected``.

  Args:
    genuine: bool[G, N].
    injected: bool[I, N] the attack's profiles.
    sup: ``fit_supervised``'s classifier on the same genuine users (None:
      the unsupervised detectors only).
    budget: users inspected by ``recall_at_budget`` (default: I).
    k: ``degsim`` neighbours.
    n_components: ``pca`` components.
    seed: seed of the SVD.

  Returns:
    {detector: {"auc", "recall_at_budget"}}.
  """
  feats = profile_features(np.concatenate([genuine, injected]), k,
                           n_components, seed)
  is_inj = np.arange(len(feats)) >= len(genuine)
  scores = unsupervised_scores(feats)
  if sup is not None:
    scores["logreg"] = supervised_scores(sup, feats)
  return {name: detection_metrics(s, is_inj, budget)
          for name, s in scores.items()}
