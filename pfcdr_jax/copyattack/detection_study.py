"""The detection study: promotion against detectability, copied vs fake profiles.

For every target item v* and attack seed, each attack row is measured twice:
its promotion, HR@20 of v* over the real target users after the injection
(evaluated as Table 2 is: ``runner.promotion`` on the same ``item_eval``), and
its detection by every detector of ``detection``. The rows are

* the copying attacks of the run (``runner.run_methods``; their
  "-untrained" twins included), each with the profiles it injected;
* the four generated fake-profile attacks of ``fake_profiles``
  (``FAKE_ATTACKS``), with as many profiles, of the same sizes, as the
  reference copying attack (CopyAttack when run) injected for that item and
  seed, each draw seeded by (seed, item, attack).

The platform's users are the real target users with their training
interactions (those without any are left out, as are the attacker's pretend
accounts when they were injected, ``pretend.source="source"``), plus the
attack's profiles. The supervised detector is trained per item and seed on
the four fake attacks, at the reference sizes, against
``analysis.train_items`` other items drawn at random. ``recall_at_budget``
inspects as many users as the attack budget.

Values are means over seeds per item, then over items (``per_item`` keeps each
item's). ``write_files`` writes ``detection.json``, ``detection.md`` and
``detection.png``.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax.copyattack import detection
from pfcdr_jax.copyattack import fake_profiles
from pfcdr_jax.copyattack import runner
from pfcdr_jax.harness import cache
from pfcdr_jax.infra import markdown

FAKE_ATTACKS = {"Fake-Random": "random", "Fake-Popular": "popular",
                "Fake-Bandwagon": "bandwagon", "Fake-Segment": "segment"}
DETECTION_METHODS = ("RandomAttack", "TargetAttack40", "TargetAttack70",
                     "TargetAttack100", "CopyAttack")
REFERENCE = "CopyAttack"


@functools.partial(jax.jit, static_argnums=0)
def _inject_all(inject, state, rows: jnp.ndarray, lengths: jnp.ndarray):
  """Injects each row of positive length through the black box, in order."""
  def body(st, row):
    new, _ = inject(st, row[0], row[1])
    return jax.tree.map(lambda a, b: jnp.where(row[1] > 0, a, b), new, st), None
  return jax.lax.scan(body, state, (rows, lengths))[0]


def injected_promotion(setup, ev: runner.ItemEval, profiles: list,
                       n_rows: int) -> dict:
  """``runner.promotion`` after ``profiles`` are injected into the untouched
  platform.

  Args:
    setup: ``pipeline.prepare``'s Setup.
    ev: the item's evaluation (``runner.item_eval``).
    profiles: [int32 item ids] at most ``n_rows`` profiles.
    n_rows: rows every call pads to (one compiled program).
  """
  rows = fake_profiles.pad(profiles + [np.zeros(0, np.int32)] * (
      n_rows - len(profiles)), setup.bb.max_profile_len)
  lengths = (rows >= 0).sum(1).astype(np.int32)
  state = _inject_all(setup.bb.inject, setup.bb_state, jnp.asarray(rows),
                      jnp.asarray(lengths))
  return runner.promotion(setup, ev, state)


def genuine_matrix(setup) -> np.ndarray:
  """The real target users' training profiles, empty ones left out. bool[G, N]."""
  m = np.zeros((setup.cd.n_target_users, setup.cd.n_items), bool)
  m[setup.train_pairs[:, 0], setup.train_pairs[:, 1]] = True
  return m[m.any(1)]


def _fakes(setup, item: int, sizes: list, rng: np.random.Generator,
           kind: str, popularity: np.ndarray) -> list:
  cooc = fake_profiles.cooccurrence(setup.train_pairs, item, len(popularity))
  return fake_profiles.make_profiles(kind, rng, item, sizes, popularity, cooc)


def _train_groups(setup, item: int, sizes: list, seed: int,
                  n_train: int, popularity: np.ndarray) -> list:
  """bool[F, N] per fake attack on each of ``n_train`` other items."""
  rng = np.random.default_rng([seed, item, len(FAKE_ATTACKS)])
  pool = np.setdiff1d(np.flatnonzero(popularity > 0), [item])
  others = rng.choice(pool, size=min(n_train, len(pool)), replace=False)
  return [detection.to_matrix(_fakes(setup, int(o), sizes, rng, kind,
                                     popularity), len(popularity))
          for o in others for kind in FAKE_ATTACKS.values()]


def _mean(values) -> float:
  finite = [v for v in values if np.isfinite(v)]
  return float(np.mean(finite)) if finite else float("nan")


def _mean_rows(rows: list[dict]) -> dict:
  """Mean of {attack: {"hr20", "detection": {det: {metric}}}} records."""
  out = {}
  for name in rows[0]:
    det = rows[0][name]["detection"]
    out[name] = {
        "hr20": _mean([r[name]["hr20"] for r in rows]),
        "detection": {d: {m: _mean([r[name]["detection"][d][m] for r in rows])
                          for m in det[d]} for d in det}}
  return out


def run_detection(cfg, setup, methods: dict, items: np.ndarray, tr, data,
                  metrics=None) -> dict:
  """The whole study; the ``detection.json`` dict.

  Args:
    cfg: the run's CopyAttackConfig (seed, n_seeds, attack.budget,
      evaluation, analysis).
    setup: ``pipeline.prepare``'s Setup.
    methods: copying attacks, name -> AttackConfig.
    items: int32[n] target items.
    tr: clustering tree.
    data: attacker data.
    metrics: ``pipeline.MetricsLog``: the copying attacks' per-item records
      and one detection record per item are appended.

  Returns:
    {"attacks": {row: {"hr20", "detection": {detector: {"auc",
    "recall_at_budget"}}}}, "per_item": [{"item", "item_id", "attacks"}],
    "without_attack_hr20", "reference_attack", "detectors", "budget",
    "n_seeds", "n_genuine_users", "target_items"}.
  """
  injected = {}
  res = runner.run_methods(setup, items, methods, tr, data, cfg.seed,
                           cfg.evaluation.n_neg, metrics=metrics,
                           n_seeds=cfg.n_seeds, workers=cfg.attack_workers,
                           injected=injected)
  ref = REFERENCE if REFERENCE in methods else next(iter(methods))
  genuine = genuine_matrix(setup)
  n_items = setup.cd.n_items
  popularity = np.bincount(setup.train_pairs[:, 1], minlength=n_items)
  an = cfg.analysis
  per_item = []
  for rec in res["per_item"]:
    item = rec["item"]
    copies = [n for n in rec["methods"] if n != "Without Attack"]
    ev = runner.item_eval(setup, item, cfg.evaluation.n_neg)
    seed_rows = []
    for s in range(cfg.seed, cfg.seed + cfg.n_seeds):
      sizes = [len(p) for p in injected[(s, ref, item)]]
      attacks = {n: injected[(s, n, item)] for n in copies}
      row = {n: {"hr20": rec["methods"][n]["HR@20"]} for n in copies}
      for j, (name, kind) in enumerate(FAKE_ATTACKS.items()):
        attacks[name] = _fakes(setup, item, sizes,
                               np.random.default_rng([s, item, j]), kind,
                               popularity)
        row[name] = {"hr20": injected_promotion(
            setup, ev, attacks[name], cfg.attack.budget)["HR@20"]}
      sup = detection.fit_supervised(
          genuine, _train_groups(setup, item, sizes, s, an.train_items,
                                 popularity),
          seed=s, k=an.neighbours, n_components=an.components)
      for name, profiles in attacks.items():
        row[name]["detection"] = detection.evaluate_detectors(
            genuine, detection.to_matrix(profiles, n_items), sup,
            budget=cfg.attack.budget, k=an.neighbours,
            n_components=an.components, seed=s)
      seed_rows.append(row)
    out = {"item": item, "item_id": rec["item_id"],
           "attacks": _mean_rows(seed_rows)}
    per_item.append(out)
    if metrics is not None:
      metrics.append({"detection": out})
  return {
      "attacks": _mean_rows([r["attacks"] for r in per_item]),
      "per_item": per_item,
      "without_attack_hr20": res["methods"]["Without Attack"]["HR@20"],
      "reference_attack": ref,
      "detectors": list(detection.DETECTORS),
      "budget": cfg.attack.budget,
      "n_seeds": cfg.n_seeds,
      "n_genuine_users": int(len(genuine)),
      "target_items": [setup.cd.item_ids[i] for i in items],
  }


def detection_markdown(result: dict, dataset: str = "ML100K-ML1M") -> str:
  """One row per attack: HR@20, then each detector's AUC (recall at the
  budget)."""
  dets = result["detectors"]
  body = [[dataset, "Without Attack", f"{result['without_attack_hr20']:.4f}"]
          + [""] * len(dets)]
  for name, a in result["attacks"].items():
    body.append(["", name, f"{a['hr20']:.4f}"] + [
        f"{a['detection'][d]['auc']:.3f} ({a['detection'][d]['recall_at_budget']:.2f})"
        for d in dets])
  header = (["Dataset", "Attack", "HR@20"]
            + [f"{d} AUC (R@{result['budget']})" for d in dets])
  return "\n".join(markdown.table(header, body))


def write_files(result: dict, workdir: Path, dataset: str) -> None:
  """``detection.json``, ``detection.md`` and ``detection.png`` in ``workdir``."""
  workdir = Path(workdir)
  cache.atomic_write_text(workdir / "detection.json",
                          json.dumps(result, indent=2))
  cache.atomic_write_text(workdir / "detection.md",
                          detection_markdown(result, dataset) + "\n")
  from pfcdr_jax.copyattack import plots  # pylint: disable=g-import-not-at-top
  plots.plot_detection(result, workdir / "detection.png", dataset=dataset)
