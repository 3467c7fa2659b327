"""The attack suite on one run: every method's transfer, the controls, one JSON.

:func:`attack` runs every attack of ``attacks`` on one :class:`transfers.Transfer`
against a :class:`Truth`; :func:`run_privacy` prepares a run (``stages.prepare``,
stage cache shared with Table 1), gets each method's cold-start MAE (PFCDR through
``method.fit_predict``, the others through ``stages.run_baseline``, so cached
Table 1 predictions are reused), rebuilds what each method sends
(``transfers``), adds the controls, attacks them all and writes ``privacy.json``,
``privacy.md`` and ``privacy.png`` (``report``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.models import metrics as metrics_lib
from pfcdr_jax.harness import cache_keys
from pfcdr_jax.harness import stages
from pfcdr_jax.baselines import registry
from pfcdr_jax.data import movielens
from pfcdr_jax.privacy import attacks
from pfcdr_jax.privacy import controls
from pfcdr_jax.privacy import decoders
from pfcdr_jax.privacy import report
from pfcdr_jax.privacy import transfers

log = logging.getLogger(__name__)

ATTRIBUTE_TASKS = ("comedy2drama", "action2romance")   # ML-1M tasks: users.dat has them


class Truth(NamedTuple):
  """What the attacks are scored against (source-side truth).

  Attributes:
    U: float[U_s, d] source user representations (also the linkage pool).
    V: float[N_s, d] source item matrix.
    aux_users: int[n_aux] users whose truth attacker C knows.
    eval_users: int[n] attacked (held-out) users.
    ratings: ``(user, item, rating)`` source ratings.
    attributes: name -> int[U_s] attribute codes (-1 unknown); may be empty.
  """
  U: np.ndarray
  V: np.ndarray
  aux_users: np.ndarray
  eval_users: np.ndarray
  ratings: tuple[np.ndarray, np.ndarray, np.ndarray]
  attributes: dict


def _rows(users: np.ndarray, wanted: np.ndarray) -> np.ndarray:
  pos = {int(u): i for i, u in enumerate(users)}
  missing = [int(u) for u in wanted if int(u) not in pos]
  if missing:
    raise ValueError(f"{len(missing)} users have no transferred vector (e.g. {missing[0]})")
  return np.array([pos[int(u)] for u in wanted], np.int64)


def _preference(scores: np.ndarray, truth: Truth) -> dict:
  user, item, rating = truth.ratings
  row_of = np.full(truth.U.shape[0], -1, np.int64)
  row_of[truth.eval_users] = np.arange(len(truth.eval_users))
  sel = row_of[user] >= 0
  return attacks.preference_auc(scores, row_of[user[sel]], item[sel], rating[sel])


def _attributes(x_aux, x_eval, truth: Truth, seed: int) -> dict:
  out = {}
  for name, codes in truth.attributes.items():
    ya, ye = codes[truth.aux_users], codes[truth.eval_users]
    ka, ke = ya >= 0, ye >= 0
    out[name] = attacks.attribute_inference(x_aux[ka], ya[ka], x_eval[ke], ye[ke], seed)
  return out


def attack(tr: transfers.Transfer, truth: Truth, *, seed: int = 0,
           nonlinear: bool = True) -> dict:
  """Every attack on one transfer (see the package docstring for A / B / C).

  Returns:
    ``{"embedding": {"A_direct", "C_decoder"}, "preference": {"B", "C"},
    "linkage": {"A_direct", "C_decoder"}, "attributes": {...}, "decoder": {...}}``;
    an attack that does not apply to the transfer is absent.
  """
  x_aux = tr.vectors[_rows(tr.users, truth.aux_users)].astype(np.float64)
  x_eval = tr.vectors[_rows(tr.users, truth.eval_users)].astype(np.float64)
  U_aux, U_eval = truth.U[truth.aux_users], truth.U[truth.eval_users]
  center = U_aux.mean(0)
  est, info = decoders.decode(x_aux, U_aux, x_eval, seed=seed, nonlinear=nonlinear)
  out = {"embedding": {"C_decoder": attacks.embedding_recovery(est, U_eval, center)},
         "preference": {"C": _preference(est @ truth.V.T, truth)},
         "linkage": {"C_decoder": attacks.linkage(est, truth.U, truth.eval_users)},
         "attributes": _attributes(x_aux, x_eval, truth, seed), "decoder": info}
  if tr.in_user_space:
    out["embedding"]["A_direct"] = attacks.embedding_recovery(x_eval, U_eval, center)
    out["linkage"]["A_direct"] = attacks.linkage(x_eval, truth.U, truth.eval_users)
  if tr.item_scores is not None:
    scores = x_eval @ tr.item_scores
    out["preference"]["B"] = _preference(scores, truth)
    if tr.in_user_space:
      out["preference"]["B"]["sign_agreement"] = attacks.sign_agreement(
          scores, U_eval @ truth.V.T)
  return out


def control_transfers(base: transfers.Transfer, label: str, seed: int
                      ) -> list[transfers.Transfer]:
  """A random other user's vector, and pure noise, with `base`'s shape and spaces."""
  shuffled = base._replace(name=f"control: random user's {label}",
                           vectors=controls.random_users(base.vectors, seed), mae=None)
  noise = base._replace(name=f"control: noise like {label}",
                        vectors=controls.pure_noise(base.vectors, seed + 1), mae=None)
  return [shuffled, noise]


def load_truth(run, task: str, data_dir=None) -> Truth:
  """The source-side truth of a run: aux = bridge users, attacked = test users."""
  data = run.data
  U, V = method_lib.representations(run.scorer, run.params_s, data.source.n_users)
  attributes = {}
  if task in ATTRIBUTE_TASKS:
    users = movielens.load_ml1m_users(data_dir)
    frame = users.set_index("user")
    ids = list(data.source_user_ids)
    known = frame.reindex(ids)
    for name in ("gender", "age", "occupation"):
      values = known[name]
      codes = {v: i for i, v in enumerate(sorted(values.dropna().unique()))}
      attributes[name] = np.array([codes.get(v, -1) if v == v else -1 for v in values],
                                  np.int64)
  s = data.source
  return Truth(np.asarray(U, np.float64), np.asarray(V, np.float64),
               method_lib.bridge_users(data), np.asarray(data.test_users, np.int32),
               (s.user, s.item, s.rating), attributes)


def baseline_mae(run, cfg, workdir, shown: str, rec, quick: bool = False
                 ) -> tuple[float, dict]:
  """A registry method's cold-start test MAE and chosen settings on a prepared run
  (stage cache; ``quick``: the registry's quick variant of `shown`)."""
  asked = registry.quick_names((shown,))[0] if quick else shown
  with rec.stage(f"baseline_{asked}") as r:
    pred, chosen, _ = stages.run_baseline(run, cfg, cache_keys.stage_cache(cfg, workdir),
                                          asked, r)
  return float(metrics_lib.mae(pred, run.data.target_test.rating)), chosen


def method_transfers(run, cfg, workdir, epsilons, rec, quick: bool = False
                     ) -> list[transfers.Transfer]:
  """PFCDR, EMCDR, DP-EMCDR(eps), PriCDR-S, FedCDR, PF2CDR, PPGenCDR, PFCDR-DP(eps),
  PFCDR+ and PFCDR+'s two scalars alone, PFCDR+(eps) and its DP scalars alone, with
  their MAEs.

  ``quick`` asks the registry for each method's quick variant
  (``registry.quick_names``: few epochs, one grid point); the tables show the plain
  names.
  """
  protos = stages.run_prototypes(run, cfg, workdir, rec)
  test = run.data.target_test
  with rec.stage("pfcdr") as r:
    fit = method_lib.fit_predict(run.scorer, run.params_s, run.params_t, run.data, run.keys,
                                 inversion=cfg.inversion, bridge=cfg.bridge, topk=cfg.topk,
                                 protos=protos)
    r["k"] = fit.k
  out = [transfers.pfcdr(run, protos, float(metrics_lib.mae(fit.pred, test.rating)))]
  baseline = lambda shown: baseline_mae(run, cfg, workdir, shown, rec, quick)

  out.append(transfers.emcdr(run, baseline("EMCDR")[0]))
  for name in (f"DP-EMCDR(eps={e:g})" for e in epsilons):
    mae, chosen = baseline(name)
    out.append(transfers.dp_emcdr_transfer(run, name, chosen, mae))
  mae, chosen = baseline("PriCDR-S")
  out.append(transfers.pricdr_transfer(run, "PriCDR-S", chosen, mae))
  # The paper's private baselines: their plain registry names.
  for name, build in (("FedCDR", transfers.fedcdr_transfer),
                      ("PF2CDR", transfers.pf2cdr_transfer),
                      ("PPGenCDR", transfers.ppgencdr_transfer)):
    mae, chosen = baseline(name)
    out.append(build(run, name, chosen, mae))
  for name in (f"PFCDR-DP(eps={e:g})" for e in epsilons):
    mae, chosen = baseline(name)
    out.append(transfers.pfcdr_dp_transfer(run, name, protos, chosen, cfg.inversion, mae))
  # PFCDR+: the prototypes plus two scalars, and the scalars on their own;
  # then its per-rating-DP variant at each budget (prototypes + noised sum + count).
  out += transfers.pfcdr_plus(run, protos, baseline("PFCDR+")[0])
  for e in epsilons:
    name = f"PFCDR+(eps={e:g})"
    out += transfers.pfcdr_plus_dp(run, protos, name, float(e), cfg.seed, baseline(name)[0])
  return out


def run_privacy(cfg, workdir: str | Path, *, epsilons=registry.DP_EPSILONS, seed: int = 0,
                nonlinear: bool = True, quick: bool = False) -> dict:
  """The privacy table of one run: writes privacy.json / .md / .png in `workdir`.

  Args:
    cfg: the run (``config.PFCDRConfig``); workdir: where the outputs (and, without
      ``cfg.cache.dir``, the stage cache) go.
    epsilons: the budgets of DP-EMCDR and PFCDR-DP.
    seed: the controls' draws and the attacker's holdout.
    nonlinear: also try the degree-2 decoders.
    quick: the registry's quick variants of the baselines (smoke runs).
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  t0 = time.perf_counter()
  rec = stages.Recorder(None)
  run = stages.prepare(cfg, workdir, rec)
  methods = method_transfers(run, cfg, workdir, epsilons, rec, quick)
  truth = load_truth(run, cfg.data.task, cfg.data.data_dir)
  pf, em = methods[0], methods[1]
  scalars = next(m for m in methods if m.name.startswith("PFCDR+ scalars"))
  rows = [*control_transfers(em, "U_i", seed), *control_transfers(pf, "prototype", seed + 2),
          *control_transfers(scalars, "PFCDR+ scalars", seed + 4), *methods]
  results = []
  for tr in rows:
    t = time.perf_counter()
    res = attack(tr, truth, seed=seed, nonlinear=nonlinear)
    log.info("attacks on %-28s %5.1fs", tr.name, time.perf_counter() - t)
    results.append({"method": tr.name, "mae": tr.mae, "dim": int(tr.vectors.shape[1]),
                    "settings": tr.settings, **res})
  out = {"task": cfg.data.task, "beta": cfg.split.beta, "seed": cfg.seed,
         "base_model": cfg.pretrain.base_model,
         "users": {"aux": int(len(truth.aux_users)), "attacked": int(len(truth.eval_users)),
                   "linkage_pool": int(truth.U.shape[0])},
         "attributes": sorted(truth.attributes), "rows": results,
         "timings_s": {**rec.timings, "total": round(time.perf_counter() - t0, 1)}}
  cache_lib.atomic_write_text(workdir / "privacy.json",
                              json.dumps(cache_lib.jsonable(out), indent=2))
  cache_lib.atomic_write_text(workdir / "privacy.md", report.markdown(out))
  report.plot(out, workdir / "privacy.png")
  return out
