"""Ground-truth and transferred target embeddings of cold users (the paper's Figure 4).

Ground truth: a test user's target representation fitted to their own target ratings
with the pretrained target item matrix held fixed (ridge regression per user:
``min_u sum_j (r_uj - u . V[j])^2 + lam |u|^2``), so it lives in the same space as the
target model's trained users, which is the space both transfers land in (two
separately trained target models would differ by an arbitrary rotation). ``lam`` is
chosen from a small grid on a held-out fifth of each user's ratings.

Transferred: EMCDR's mapped source embedding as its predictions use it (the target
model's user representation of the mapped row, ``baselines.emcdr``), and PFCDR's mean
of the K neighbors' representations (``method.neighbor_representations``, K chosen on
the validation users).

Numbers, per method, in the original d-dim space: the mean distance of a transferred
embedding to its own ground truth (and, as a reference, to a random other user's),
the spread (mean distance to the cloud's centroid), and the unbiased MMD^2 between the
two clouds with a Gaussian kernel (bandwidth: the median pairwise distance of the
pooled points) with a permutation p-value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.harness import stages
from pfcdr_jax.baselines import emcdr as emcdr_lib
from pfcdr_jax.studies import k_sweep

LAMBDAS = (0.01, 0.1, 1.0, 10.0)


def ridge_fit(V: np.ndarray, row: np.ndarray, item: np.ndarray, rating: np.ndarray,
              n_rows: int, lam: float) -> np.ndarray:
  """Per-row ridge solutions ``(V_r^T V_r + lam I)^-1 V_r^T y_r``: float64[n_rows, d].

  Args:
    V: [N, d] item matrix; row, item: int[R]; rating: float[R]; n_rows: rows out.
    lam: ridge strength (> 0 keeps rows with few ratings solvable).
  """
  V = np.asarray(V, np.float64)
  d = V.shape[1]
  x = V[item]
  A = np.zeros((n_rows, d, d))
  np.add.at(A, row, x[:, :, None] * x[:, None, :])
  b = np.zeros((n_rows, d))
  np.add.at(b, row, x * np.asarray(rating, np.float64)[:, None])
  return np.linalg.solve(A + lam * np.eye(d)[None], b[:, :, None])[:, :, 0]


def choose_lambda(V, row, item, rating, n_rows: int, seed: int,
                  lambdas: Sequence[float] = LAMBDAS) -> tuple[float, dict[float, float]]:
  """``lam`` with the lowest MSE on a random held-out fifth of the ratings."""
  held = np.random.default_rng(seed).random(row.size) < 0.2
  mse = {}
  for lam in lambdas:
    U = ridge_fit(V, row[~held], item[~held], rating[~held], n_rows, lam)
    pred = np.sum(U[row[held]] * np.asarray(V, np.float64)[item[held]], -1)
    mse[float(lam)] = float(np.mean((pred - rating[held]) ** 2))
  return min(mse, key=mse.get), mse


def truth(run, users: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
  """Ground-truth target representations of `users` (test users) from their ratings."""
  V = np.asarray(run.scorer.item_matrix(run.params_t))
  t = run.data.target_test
  pos = np.full(run.data.target_train.n_users, -1)
  pos[users] = np.arange(len(users))
  keep = pos[t.user] >= 0
  row, item, rating = pos[t.user[keep]], t.item[keep], t.rating[keep]
  lam, mse = choose_lambda(V, row, item, rating, len(users), seed)
  U = ridge_fit(V, row, item, rating, len(users), lam)
  fit_mse = float(np.mean((np.sum(U[row] * V[item], -1) - rating) ** 2))
  return U.astype(np.float32), {"lambda": lam, "heldout_mse": mse, "fit_mse": fit_mse}


def emcdr_transferred(run, cfg, users: np.ndarray) -> np.ndarray:
  """EMCDR's transferred representations of `users` (as its predictions use them):
  ``emcdr.transfer`` with the registry's space (the tower output on YouTube-DNN)."""
  b = cfg.bridge
  return np.asarray(emcdr_lib.transfer(
      run.scorer, run.params_s, run.params_t, np.asarray(run.data.train_users, np.int32),
      np.asarray(users), run.keys.emcdr, lr=b.lr, epochs=b.epochs, batch_size=b.batch_size))


def pfcdr_transferred(setup, data, cfg, users: np.ndarray) -> tuple[np.ndarray, int]:
  """PFCDR's mean top-K representations of `users` and the validation-chosen K."""
  r = cfg.inversion.target_rating
  k, _ = method_lib.select_k(setup.P_hat, setup.W_t, setup.valid, setup.V_t, data.target_val,
                             setup.cold, cfg.topk, r)
  rows = setup.cold.row_of_user[users]
  mean_w = method_lib.neighbor_representations(setup.P_hat[rows], setup.W_t, setup.valid, k,
                                               cfg.topk, r)
  return np.asarray(mean_w), int(k)


def _sq_dists(X: np.ndarray) -> np.ndarray:
  sq = np.sum(X ** 2, 1)
  return np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)


def mmd2(X: np.ndarray, Y: np.ndarray, *, n_perm: int = 200, seed: int = 0
         ) -> tuple[float, float, float]:
  """Unbiased MMD^2 of two samples, Gaussian kernel; ``(mmd2, p_value, bandwidth)``.

  Bandwidth: the median pairwise distance of the pooled sample. p: the share of
  ``n_perm`` random relabellings of the pooled points with MMD^2 >= the observed
  (add-one smoothed).
  """
  X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
  Z = np.concatenate([X, Y])
  D = _sq_dists(Z)
  off = D[np.triu_indices(len(Z), 1)]
  sigma = float(np.sqrt(np.median(off))) if np.any(off > 0) else 1.0
  K = np.exp(-D / (2 * sigma ** 2))
  n = len(X)

  def stat(idx):
    a, b = idx[:n], idx[n:]
    kxx, kyy, kxy = K[np.ix_(a, a)], K[np.ix_(b, b)], K[np.ix_(a, b)]
    m, q = len(a), len(b)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) +
            (kyy.sum() - np.trace(kyy)) / (q * (q - 1)) - 2 * kxy.mean())

  obs = stat(np.arange(len(Z)))
  rng = np.random.default_rng(seed)
  perms = [stat(rng.permutation(len(Z))) for _ in range(n_perm)]
  p = (1 + sum(v >= obs for v in perms)) / (1 + n_perm)
  return float(obs), float(p), sigma


def compare(true: np.ndarray, transferred: np.ndarray, *, seed: int = 0,
            n_perm: int = 200) -> dict[str, float]:
  """Distance, spread and MMD^2 of a transferred cloud against the ground truth."""
  dist = np.linalg.norm(transferred - true, axis=1)
  perm = np.random.default_rng(seed).permutation(len(true))
  rand = np.linalg.norm(transferred - true[perm], axis=1)
  m, p, sigma = mmd2(true, transferred, n_perm=n_perm, seed=seed)
  spread = lambda X: float(np.mean(np.linalg.norm(X - X.mean(0), axis=1)))  # noqa: E731
  return {"mean_distance": float(dist.mean()), "mean_distance_random_pair": float(rand.mean()),
          "spread": spread(transferred), "spread_truth": spread(true), "mmd2": m,
          "mmd2_p": p, "kernel_bandwidth": sigma}


REFERENCE = "Mean target user"   # every cold user gets the mean trained target user


def run_cell(cfg, workdir, n_sample: int = 1000) -> dict:
  """One seed's Figure 4 data: sampled test users' truth, transfers and numbers."""
  run = stages.prepare(cfg, workdir)
  setup = k_sweep.cold_setup(run, stages.run_prototypes(run, cfg, workdir), cfg)
  test_users = np.asarray(run.data.test_users)
  rng = np.random.default_rng(cfg.seed)
  users = np.sort(rng.choice(test_users, size=min(n_sample, test_users.size), replace=False))
  true, fit_info = truth(run, users, cfg.seed)
  pf, k = pfcdr_transferred(setup, run.data, cfg, users)
  valid = np.asarray(setup.valid)
  mean_user = np.asarray(setup.W_t)[valid].mean(0)
  emb = {"EMCDR": emcdr_transferred(run, cfg, users), "PFCDR": pf,
         REFERENCE: np.tile(mean_user, (len(users), 1))}
  return {"seed": cfg.seed, "users": users.tolist(), "k": k, "truth_fit": fit_info,
          "truth": true.tolist(), "transferred": {m: e.tolist() for m, e in emb.items()},
          "stats": {m: compare(true, e, seed=cfg.seed) for m, e in emb.items()}}


def summarize(cells: Sequence[dict]) -> dict[str, dict[str, list[float]]]:
  """Per method and number: ``[mean, sample std]`` over seeds."""
  out: dict[str, dict[str, list[float]]] = {}
  for method in cells[0]["stats"]:
    for key in cells[0]["stats"][method]:
      v = np.array([c["stats"][method][key] for c in cells], np.float64)
      out.setdefault(method, {})[key] = [float(v.mean()),
                                         float(v.std(ddof=1)) if v.size > 1 else 0.0]
  return out
