"""One seed of the privacy-utility frontier: every method's transfer, its MAE, its unit
and its leakage under the strongest attacker.

:func:`seed_record` prepares the run of ``cfg`` (stage cache shared with Table 1 and
``privacy.py``), rebuilds what each method sends (``study.method_transfers``: the DP
releases with the registry's keys, so the vectors attacked are those whose MAE is
reported), adds

* ``PFCDR-Bilinear`` (ours): PFCDR+ without user statistics; its runner inverts the
  same prototypes with the same stage keys as PFCDR (``plus.inputs``, BUILD_NOTES §4),
  so its transfer is PFCDR's array and so is its leakage;
* ``PFCDR-Bilinear-DP(eps)`` (ours, user-level DP): the same model fitted on prototypes
  released through PFCDR-DP's Gaussian mechanism with its own registry key; the release
  attacked is rebuilt with that key and the clip chosen on validation;
* ``ItemMean (no transfer)``: nothing crosses. It is attacked on pure noise with the
  per-coordinate mean and std of PFCDR's prototypes (``controls.pure_noise``): the
  floor of the whole leakage pipeline (attacker selection, clipping at 0, the maximum
  over quantities) when no user information is present,

and attacks each one with ``leakage.attack_transfer``. Rows that are part of another
row's transfer (PFCDR+'s scalars alone) are left out. ``references`` holds MAEs of
methods without a leakage point (PTUPCDR: non-private, it reads the source
embeddings; BiasFloor; GlobalMean).
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np

from pfcdr_jax.baselines import registry
from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.harness import stages
from pfcdr_jax.privacy import controls
from pfcdr_jax.privacy import leakage
from pfcdr_jax.privacy import study
from pfcdr_jax.privacy import transfers
from pfcdr_jax.privacy import units

log = logging.getLogger(__name__)

OURS = "PFCDR-Bilinear"
OURS_DP = "PFCDR-Bilinear-DP"
NO_TRANSFER = "ItemMean (no transfer)"
REFERENCES = ("PTUPCDR", "BiasFloor", "GlobalMean")


def frontier_transfers(run, cfg, workdir, epsilons, rec, quick: bool = False
                       ) -> list[transfers.Transfer]:
  """Every frontier row's transfer with its MAE (module docstring)."""
  rows = [t for t in study.method_transfers(run, cfg, workdir, epsilons, rec, quick)
          if t.mae is not None]
  pf = rows[0]
  assert pf.name == "PFCDR", pf.name
  mae, _ = study.baseline_mae(run, cfg, workdir, OURS, rec, quick)
  rows.insert(1, pf._replace(name=OURS, mae=mae))
  protos = stages.run_prototypes(run, cfg, workdir, rec)
  for e in epsilons:   # ours with a user-level budget: PFCDR-DP's release, bilinear fit
    name = f"{OURS_DP}(eps={e:g})"
    mae, chosen = study.baseline_mae(run, cfg, workdir, name, rec, quick)
    rows.append(transfers.pfcdr_dp_transfer(run, name, protos, chosen, cfg.inversion, mae))
  mae, _ = study.baseline_mae(run, cfg, workdir, "ItemMean", rec, quick)
  noise = controls.pure_noise(pf.vectors, cfg.seed + 7).astype(np.float32)
  rows.append(transfers.Transfer(NO_TRANSFER, pf.users, noise, False, None, mae,
                                 {"attacked": "pure noise shaped like PFCDR's prototypes"}))
  return rows


def _unit(tr: transfers.Transfer) -> dict:
  if tr.name == NO_TRANSFER:
    return units.Unit("none", None, None, 0.0, None, "nothing crosses domains",
                      "nothing")._asdict()
  s = tr.settings
  return units.unit_of(tr.name, s, n_items=s.get("n_items"),
                       max_ratings=s.get("max_ratings"), phi_norm=s.get("phi_norm"))._asdict()


# Rows :func:`named_rows` can compute on their own (a committed frontier's other rows are
# carried: experiments/frontier.py --carry).
ALONE = {"FedCDR": transfers.fedcdr_transfer}


def vectors_sha256(tr: transfers.Transfer) -> str:
  """The sha256 of a transfer's vectors as float32 (what ``--reuse_leakage`` compares)."""
  return hashlib.sha256(np.ascontiguousarray(tr.vectors, np.float32).tobytes()).hexdigest()


def attack_row(tr: transfers.Transfer, cfg, tg, aux, ev,
               quantities=leakage.QUANTITIES) -> dict:
  """One frontier row: a transfer's MAE, unit and leakage (every quantity attacked)."""
  layout = None
  if "offset_columns" in tr.settings:
    layout = (tr.settings["offset_columns"], tr.settings["kappas"])
  x = np.asarray(tr.vectors, np.float64)
  ra, re = study._rows(tr.users, aux), study._rows(tr.users, ev)
  observed = None if tr.observed is None else (tr.observed[ra], tr.observed[re])
  leak = leakage.attack_transfer(x[ra], x[re], aux, ev, tg, seed=cfg.seed,
                                 item_scores=tr.item_scores, kappa_layout=layout,
                                 quantities=quantities, observed=observed)
  return {"name": tr.name, "mae": tr.mae, "dim": int(tr.vectors.shape[1]), "unit": _unit(tr),
          "settings": tr.settings, "leakage": leak, "vectors_sha256": vectors_sha256(tr)}


def named_rows(cfg, workdir, names: tuple[str, ...], quick: bool = False) -> dict:
  """The rows ``names`` of one seed (each in :data:`ALONE`), computed as
  :func:`seed_record` computes them, and the seed's references."""
  unknown = [n for n in names if n not in ALONE]
  if unknown:
    raise ValueError(f"--rows: {unknown} cannot be computed alone (only {sorted(ALONE)})")
  t0 = time.perf_counter()
  rec = stages.Recorder(None)
  run = stages.prepare(cfg, workdir, rec)
  truth = study.load_truth(run, cfg.data.task, cfg.data.data_dir)
  tg = leakage.targets(truth.U, truth.ratings, truth.V.shape[0], truth.attributes)
  rows = []
  for name in names:
    mae, chosen = study.baseline_mae(run, cfg, workdir, name, rec, quick)
    rows.append(attack_row(ALONE[name](run, name, chosen, mae), cfg, tg, truth.aux_users,
                           truth.eval_users))
    log.info("frontier seed %d: %-24s MAE %.4f leakage %.3f (%s)", cfg.seed, name,
             rows[-1]["mae"], rows[-1]["leakage"]["leakage_max"],
             rows[-1]["leakage"]["leakage_argmax"])
  return {"seed": cfg.seed, "rows": rows,
          "users": {"aux": int(len(truth.aux_users)), "attacked": int(len(truth.eval_users))},
          "timings_s": {**rec.timings, "total": round(time.perf_counter() - t0, 1)}}


def seed_record(cfg, workdir, epsilons=registry.DP_EPSILONS, *, quick: bool = False,
                quantities=leakage.QUANTITIES, reuse: dict | None = None) -> dict:
  """The frontier rows of one seed (``cfg.seed``): name, MAE, unit, leakage.

  Args:
    reuse: {name: row} of an earlier seed file of the same seed and settings. A row
      whose name is there with a bit-identical MAE, the same vector width and the same
      release settings -- and, where both rows have it, the same ``vectors_sha256`` --
      takes its leakage from it; its row says ``"leakage_reused": true``. (The MAE
      alone is not enough: a noise-level release predicts the same at any noise.)
  """
  t0 = time.perf_counter()
  rec = stages.Recorder(None)
  run = stages.prepare(cfg, workdir, rec)
  rows = frontier_transfers(run, cfg, workdir, epsilons, rec, quick)
  truth = study.load_truth(run, cfg.data.task, cfg.data.data_dir)
  tg = leakage.targets(truth.U, truth.ratings, truth.V.shape[0], truth.attributes)
  aux, ev = truth.aux_users, truth.eval_users
  done: dict[int, dict] = {}
  out = []
  for tr in rows:
    t = time.perf_counter()
    key = id(tr.vectors)
    sha = vectors_sha256(tr)
    old = (reuse or {}).get(tr.name)
    reused = bool(old and key not in done and old["mae"] == tr.mae
                  and old["dim"] == int(tr.vectors.shape[1])
                  and old.get("settings") == cache_lib.jsonable(tr.settings)
                  and old.get("vectors_sha256", sha) == sha)
    if reused:
      done[key] = old["leakage"]
    if key not in done:   # PFCDR-Bilinear's transfer is PFCDR's very array
      done[key] = attack_row(tr, cfg, tg, aux, ev, quantities)["leakage"]
    log.info("frontier seed %d: %-24s MAE %.4f leakage %.3f (%s) %5.1fs", cfg.seed,
             tr.name, tr.mae, done[key]["leakage_max"], done[key]["leakage_argmax"],
             time.perf_counter() - t)
    out.append({"name": tr.name, "mae": tr.mae, "dim": int(tr.vectors.shape[1]),
                "unit": _unit(tr), "settings": tr.settings, "leakage": done[key],
                "vectors_sha256": sha,
                **({"leakage_reused": True} if reused else {})})
  refs = {name: study.baseline_mae(run, cfg, workdir, name, rec, quick)[0]
          for name in REFERENCES}
  return {"seed": cfg.seed, "task": cfg.data.task, "beta": cfg.split.beta,
          "base_model": cfg.pretrain.base_model,
          "users": {"aux": int(len(aux)), "attacked": int(len(ev))},
          "rows": out, "references": refs,
          "timings_s": {**rec.timings, "total": round(time.perf_counter() - t0, 1)}}
