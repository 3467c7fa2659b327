"""Attacks every target item with every method over seeds, and evaluates.

``run_methods`` is the core of Table 2 and of Figures 3-5. For each attack
seed and each method:

* a learning method (``AttackConfig.learns``) starts from its initial policy
  ``params0``; with ``AttackConfig.shared`` one policy is trained over all
  the run's target items (its training curve is kept), otherwise one per
  item; every item is then attacked with the learned policy *and* with
  ``params0`` (the row ``"<method>-untrained"``, same attack key), so the
  table shows what learning adds;
* a baseline attacks each item once.

With ``injected`` given, the profiles each attack injected (rebuilt from its
trajectory: the chosen source profiles clipped at the chosen levels, as the
episode clipped them) are stored there per (seed, row, item).

Rows are means over seeds per item, then over items. The per-item rows give
the paired Wilcoxon tests of CopyAttack against every other row
(``paired_tests``).
"""
from __future__ import annotations

from concurrent import futures
import logging
import os
import time
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from pfcdr_jax.infra import progress
from pfcdr_jax.copyattack import attack as attack_lib
from pfcdr_jax.copyattack import crafting
from pfcdr_jax.copyattack import evaluate
from pfcdr_jax.copyattack import methods as methods_lib
from pfcdr_jax.copyattack import policy
from pfcdr_jax.copyattack import training

log = logging.getLogger(__name__)
UNTRAINED = "-untrained"


class ItemEval(NamedTuple):
  """How one target item is evaluated; the same before and after attacks."""

  users: jnp.ndarray  # int32[U] real target users (pretend users held out)
  interacted: jnp.ndarray  # bool[U, N] their interactions
  item: jnp.ndarray  # int32[] v*
  negatives: jnp.ndarray  # int32[U, n_neg] fixed sampled negatives
  eligible: jnp.ndarray  # bool[U] users the metrics average over


def item_eval(setup, item: int, n_neg: int) -> ItemEval:
  users = jnp.asarray(setup.eval_users)
  inter = setup.interacted[users]
  item_j = jnp.int32(item)
  elig = evaluate.eligible_users(setup.scorer, setup.bb_state, users, inter,
                                 item_j, k=max(evaluate.KS))
  neg = evaluate.fixed_negatives(setup.eval_key, inter, item_j, n_neg)
  return ItemEval(users=users, interacted=inter, item=item_j, negatives=neg,
                  eligible=elig)


def promotion(setup, ev: ItemEval, state) -> dict:
  """Sampled HR/NDCG@K and the full-catalogue percentile of v*."""
  m = evaluate.promotion_metrics(setup.scorer, state, ev.users, ev.item,
                                 ev.negatives, ev.eligible)
  m.update(evaluate.catalogue_metrics(setup.scorer, state, ev.users,
                                      ev.interacted, ev.item, ev.eligible))
  return {k: float(v) for k, v in m.items()}


def attack_row(setup, ev: ItemEval, state, traj, dt: float) -> dict:
  """Promotion metrics after one attack plus what the attack spent."""
  m = promotion(setup, ev, state)
  act = np.asarray(traj.active)
  n_inj = int(act.sum())
  m["avg_items_per_profile"] = float(np.asarray(traj.n_items).sum()) / max(
      n_inj, 1)
  m["n_injected"] = n_inj
  m["attack_queries"] = int(traj.n_queries)
  m["final_reward"] = float(traj.final_score)
  m["attack_s"] = dt
  levels = np.asarray(traj.level)[act]
  m["window_counts"] = np.bincount(levels, minlength=11)[1:].tolist()
  return m


_clip_steps = jax.jit(jax.vmap(crafting.clip_profile, in_axes=(0, 0, None, 0)))


def injected_profiles(data, traj, item) -> list[np.ndarray]:
  """The profiles one attack injected, in order. [int32[n_items of step]].

  Args:
    data: the attacker data the attack read.
    traj: its ``episodes.Trajectory``.
    item: v*.
  """
  leaf = jnp.asarray(traj.leaf)
  items, n = _clip_steps(data.leaf_profiles[leaf], data.leaf_len[leaf],
                         jnp.asarray(item, jnp.int32),
                         jnp.asarray(traj.level))
  items, n = np.asarray(items), np.asarray(n)
  return [items[t, :n[t]] for t in np.flatnonzero(np.asarray(traj.active))]


def _timed(fn, *args):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


class _MethodRun(NamedTuple):
  fns: attack_lib.MethodFns
  cfg: methods_lib.AttackConfig


def _method_runs(setup, methods: dict, tr) -> dict:
  out = {}
  for name, mcfg in methods.items():
    pcfg = policy.PolicyConfig(emb_dim=setup.p.shape[1], hidden=mcfg.hidden,
                               branching=tr.branching, depth=tr.depth,
                               selector=mcfg.selector)
    out[name] = _MethodRun(attack_lib.make_method_fns(setup.bb, mcfg, pcfg),
                           mcfg)
  return out


def _spend(row: dict, queries_train: float, injections_train: float) -> dict:
  """Adds what an attack spent: training queries / injections per item
  (a shared policy's divided by the run's items), the final attack's
  queries, and their total."""
  row["queries_train"] = float(queries_train)
  row["injections_train"] = float(injections_train)
  row["queries_final"] = float(row["attack_queries"])
  row["queries_total"] = row["queries_train"] + row["queries_final"]
  return row


def _run_curve(curve) -> list:
  """A training curve up to its last update run (a plateau stop leaves NaN
  after it)."""
  c = np.asarray(curve, float)
  ran = np.flatnonzero(~np.isnan(c))
  return c[:ran[-1] + 1 if ran.size else 0].tolist()


def pad_curves(curves: list) -> np.ndarray:
  """float[len(curves), longest]: curves of possibly different lengths (a
  plateau stop ends one early), NaN past each one's end."""
  padded = np.full((len(curves), max((len(c) for c in curves), default=0)),
                   np.nan)
  for j, c in enumerate(curves):
    padded[j, :len(c)] = c
  return padded


def mean_curve(curves: list) -> list:
  """Mean over curves of possibly different lengths, at each update over
  the curves that reach it."""
  return np.nanmean(pad_curves(curves), 0).tolist()


def _trial_counts(n: int) -> list[int]:
  """Trial counts of a ``best_of`` baseline's spend curve: 0, 1, 3, 7, ...
  and ``n``."""
  out, j = [0], 1
  while j < n:
    out.append(j)
    j = 2 * j + 1
  return sorted(set(out + [n]))


def _one_method(setup, items, evs, name: str, run, m_idx: int, data, seed: int,
                timing: dict, injected: Optional[dict] = None):
  """Method `name` (index ``m_idx`` of the run's methods) on every item for one seed.

  With ``injected``, each attack's profiles go to ``injected[(seed, row,
  item)]``.

  Returns:
    ({item: {row name: metrics}} for the method and its "-untrained" twin,
    training curve list or None, spend curve: [{item: (queries spent on the
    item, HR@20)}] per point -- the untrained policy, then the policy at each
    training checkpoint; or the best of 0, 1, 3, ... trials of a ``best_of``
    baseline).
  """
  rows = {int(i): {} for i in items}
  curve = None
  items_j = jnp.asarray(items, jnp.int32)
  n_items = len(items)
  k_init, k_train, k_final = attack_lib.split_key(
      jax.random.fold_in(jax.random.key(seed), m_idx))
  params0 = run.fns.init(k_init)
  learns = training.n_updates(run.cfg, n_items if run.cfg.shared else 1) > 0
  params = params0
  shared = None
  if learns and run.cfg.shared:
    shared, dt = _timed(run.fns.train, params0, data, setup.bb_state, items_j,
                        k_train)
    timing.setdefault(f"{name}_train_s", []).append(dt)
    params, curve = shared.params, _run_curve(shared.curve)
  per_item_curves = []
  # A learned method's points: its untrained policy (no training queries),
  # then the policy at each checkpoint.
  n_points = run.cfg.checkpoints + 1 if learns else (
      len(_trial_counts(run.cfg.trials())) if run.fns.trials else 0)
  points = [dict() for _ in range(n_points)]
  for item in items:
    ev, key = evs[int(item)], jax.random.fold_in(k_final, int(item))
    res, div = shared, n_items
    if learns and not run.cfg.shared:
      res, dt = _timed(run.fns.train, params0, data, setup.bb_state,
                       items_j[items_j == item][:1],
                       jax.random.fold_in(k_train, int(item)))
      timing.setdefault(f"{name}_train_s", []).append(dt)
      params, div = res.params, 1
      per_item_curves.append(_run_curve(res.curve))
    q_train = i_train = 0.0
    if res is not None:
      q_train, i_train = float(res.queries) / div, float(res.injections) / div
    best = None
    if run.fns.trials is not None:
      trials, dt = _timed(run.fns.trials, params, data, setup.bb_state,
                          ev.item, jax.random.fold_in(k_train, int(item)))
      timing.setdefault(f"{name}_trials_s", []).append(dt)
      for j, n in enumerate(_trial_counts(run.cfg.trials())):
        k_n, q_n, i_n = attack_lib.best_trial(trials, n)
        state, traj = run.fns.attack(params, data, setup.bb_state, ev.item,
                                     key if k_n is None else k_n)
        points[j][int(item)] = (q_n + int(traj.n_queries),
                                promotion(setup, ev, state)["HR@20"])
        best = (k_n, q_n, i_n)
      key, q_train, i_train = best
      key = jax.random.fold_in(k_final, int(item)) if key is None else key
    (state, traj), dt = _timed(run.fns.attack, params, data, setup.bb_state,
                               ev.item, key)
    timing.setdefault(f"{name}_attack_s", []).append(dt)
    rows[int(item)][name] = _spend(attack_row(setup, ev, state, traj, dt),
                                   q_train, i_train)
    if learns:
      rows[int(item)][name]["updates_train"] = float(res.updates)
    if injected is not None:
      injected[(seed, name, int(item))] = injected_profiles(data, traj, item)
    if learns:
      for c in range(run.cfg.checkpoints - 1):
        p_c = jax.tree.map(lambda a, c=c: a[c], res.checkpoints)
        st_c, tr_c = run.fns.attack(p_c, data, setup.bb_state, ev.item, key)
        points[c + 1][int(item)] = (
            float(res.checkpoint_queries[c]) / div + int(tr_c.n_queries),
            promotion(setup, ev, st_c)["HR@20"])
      points[-1][int(item)] = (rows[int(item)][name]["queries_total"],
                               rows[int(item)][name]["HR@20"])
      (state, traj), dt = _timed(run.fns.attack, params0, data,
                                 setup.bb_state, ev.item, key)
      rows[int(item)][name + UNTRAINED] = _spend(
          attack_row(setup, ev, state, traj, dt), 0.0, 0.0)
      points[0][int(item)] = (rows[int(item)][name + UNTRAINED]["queries_total"],
                              rows[int(item)][name + UNTRAINED]["HR@20"])
      if injected is not None:
        injected[(seed, name + UNTRAINED, int(item))] = injected_profiles(
            data, traj, item)
  if per_item_curves:
    curve = mean_curve(per_item_curves)
  return rows, curve, points


def mean_rows(rows: list[dict]) -> dict:
  """Mean of metric dicts (lists, like window_counts, are summed)."""
  out = {}
  for k in rows[0]:
    vals = [r[k] for r in rows]
    out[k] = (np.sum(vals, 0).tolist() if isinstance(vals[0], list)
              else float(np.mean(vals)))
  return out


def _run_units(setup, items, evs, runs: dict, data, seeds: range,
               workers: int, timing: dict,
               injected: Optional[dict] = None) -> tuple[list, dict, dict]:
  """Every (seed, method) attack run, on threads.

  The units are independent: every key derives from the seed and the method's
  index. The learned methods (long trainings) are submitted first: an episode is
  one compiled scan of small ops that keeps one core busy, and XLA releases the GIL
  while it runs. The numbers do not depend on the order or the thread count.

  Returns:
    ([{item: {row name: metrics}} per seed], {method: [training curve per
    seed]}, {method: [spend-curve points per seed]} (``_one_method``)).
  """
  t0 = time.perf_counter()
  names, fns = list(runs), list(runs.values())
  n_units = len(seeds) * len(runs)
  workers = workers or min(n_units, os.cpu_count() or 1)
  order = sorted(range(len(runs)),
                 key=lambda m: -training.n_updates(fns[m].cfg, len(items)))
  units = [(s, m) for s in seeds for m in order]

  def one(unit):
    s, m = unit
    out = _one_method(setup, items, evs, names[m], fns[m], m, data, s, timing,
                      injected)
    log.info("seed %d, %s done, %.0fs", s, names[m], time.perf_counter() - t0)
    return out

  with progress.bar(n_units, "attacks (seed x method)", unit="run") as bar, \
       futures.ThreadPoolExecutor(workers) as pool:
    done = {}
    for unit, out in zip(units, pool.map(one, units)):
      done[unit] = out
      bar.update()
  per_seed, curves, spends = [], {}, {}
  for s in seeds:
    rows = {int(i): {} for i in items}
    for m, name in enumerate(names):
      m_rows, curve, points = done[(s, m)]
      for i in rows:
        rows[i].update(m_rows[i])
      if curve is not None:
        curves.setdefault(name, []).append(curve)
      if points:
        spends.setdefault(name, []).append(points)
    per_seed.append(rows)
  return per_seed, curves, spends


def interval(x) -> list[float]:
  """Normal 95 % interval of the mean of ``x`` ([mean, mean] for one value)."""
  x = np.asarray(x, float)
  half = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else 0.0
  return [float(x.mean() - half), float(x.mean() + half)]


def spend_curve(points_per_seed: list, items) -> list[dict]:
  """HR@20 against queries spent per item, one record per curve point.

  Args:
    points_per_seed: per seed, ``_one_method``'s points.
    items: the run's items.

  Returns:
    [{"queries": mean queries per item, "HR@20": mean over items of the
    seed-mean, "HR@20_ci95": interval over items, "per_item_HR@20",
    "per_item_queries"}] in point order.
  """
  out = []
  for j in range(len(points_per_seed[0])):
    q = [np.mean([ps[j][int(i)][0] for ps in points_per_seed]) for i in items]
    h = [np.mean([ps[j][int(i)][1] for ps in points_per_seed]) for i in items]
    out.append({"queries": float(np.mean(q)), "HR@20": float(np.mean(h)),
                "HR@20_ci95": interval(h),
                "per_item_HR@20": [float(x) for x in h],
                "per_item_queries": [float(x) for x in q]})
  return out


def run_methods(setup, items: np.ndarray, methods: dict, tr, data,
                seed: int, n_neg: int = 100, metrics=None,
                n_seeds: int = 1, workers: int = 0,
                injected: Optional[dict] = None) -> dict:
  """Attacks every item with every method for each seed and evaluates.

  Args:
    setup: ``pipeline.prepare``'s Setup.
    items: int32[n] target items.
    methods: name -> AttackConfig.
    tr: clustering tree.
    data: attacker data.
    seed: first attack seed.
    n_neg: sampled negatives.
    metrics: per-item records are appended here (``MetricsLog``).
    n_seeds: attack seeds ``seed .. seed + n_seeds - 1``.
    workers: threads running the (seed, method) runs side by side (0: one per
      core; 1: one after another). The results are the same.
    injected: if given, receives {(seed, row, item): [int32 profile]} of
      every attack (``injected_profiles``).

  Returns:
    {"methods": {row: mean metrics}, "per_item": [...], "training_curves":
    {method: mean reward per update, averaged over seeds},
    "training_curves_per_seed": {method: [curve per seed]}, "spend_curves":
    {method: ``spend_curve``} (learned methods' checkpoints, ``best_of``
    baselines' trial counts), "seed_means": {row: [HR@20 mean of each
    seed]}, "timings_s": {...}}.
  """
  runs = _method_runs(setup, methods, tr)
  t0 = time.perf_counter()
  evs = {int(i): item_eval(setup, int(i), n_neg) for i in items}
  before = {int(i): promotion(setup, evs[int(i)], setup.bb_state)
            for i in items}
  timing = {}
  per_seed, curves, spends = _run_units(setup, items, evs, runs, data,
                                        range(seed, seed + n_seeds), workers,
                                        timing, injected)
  per_item = []
  for i in items:
    i = int(i)
    names = list(per_seed[0][i])
    rec_rows = {"Without Attack": dict(before[i], avg_items_per_profile=0.0)}
    rec_rows.update({n: mean_rows([ps[i][n] for ps in per_seed])
                     for n in names})
    rec = {"item": i, "item_id": setup.cd.item_ids[i],
           "n_eligible": int(evs[i].eligible.sum()),
           "target_interactions": int(setup.cd.target_counts()[i]),
           "source_profiles": int(setup.cd.source_counts()[i]),
           "methods": rec_rows}
    per_item.append(rec)
    if metrics is not None:
      metrics.append(rec)
  names = list(per_item[0]["methods"])
  summary = {n: mean_rows([r["methods"][n] for r in per_item])
             for n in names}
  seed_means = {n: [float(np.mean([ps[int(i)][n]["HR@20"] for i in items]))
                    for ps in per_seed] for n in per_seed[0][int(items[0])]}
  timings = {k: {"mean": float(np.mean(v)), "max": float(np.max(v)),
                 "n": len(v)} for k, v in timing.items()}
  timings["attacks_total_s"] = time.perf_counter() - t0
  return {"methods": summary, "per_item": per_item,
          "training_curves": {n: mean_curve(c) for n, c in curves.items()},
          "training_curves_per_seed": curves,
          "spend_curves": {n: spend_curve(p, items)
                           for n, p in spends.items()},
          "seed_means": seed_means, "timings_s": timings}


def paired_tests(per_item: list[dict], ref: str = "CopyAttack",
                 metric: str = "HR@20") -> dict:
  """Two-sided Wilcoxon signed-rank test of ``ref`` against every other row.

  Returns:
    {row: {"p", "mean_diff", "wins", "losses", "ties"}}, ``ref`` minus row
    per item; p = 1.0 when every difference is zero.
  """
  if not per_item or ref not in per_item[0]["methods"]:
    return {}
  a = np.array([r["methods"][ref][metric] for r in per_item])
  out = {}
  for name in per_item[0]["methods"]:
    if name == ref:
      continue
    d = a - np.array([r["methods"][name][metric] for r in per_item])
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)
    out[name] = {"p": p, "mean_diff": float(d.mean()),
                 "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
                 "ties": int((d == 0).sum())}
  return out


def window_distribution(summary: dict) -> dict:
  """Row -> share of injections per window 10 %..100 % (learned crafting)."""
  out = {}
  for name, m in summary.items():
    counts = np.asarray(m.get("window_counts", []), float)
    if counts.size and counts.sum() > 0:
      out[name] = (counts / counts.sum()).tolist()
  return out


def pretend_vs_evaluated(per_item: list[dict],
                         metric: str = "HR@20") -> Optional[dict]:
  """Correlation of the final pretend score with the evaluated ``metric``.

  Over every (item, attack row) pair with a pretend score.
  """
  x, y = [], []
  for r in per_item:
    for m in r["methods"].values():
      if "final_reward" in m:
        x.append(m["final_reward"])
        y.append(m[metric])
  if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
    return None
  return {"pearson": float(stats.pearsonr(x, y)[0]),
          "spearman": float(stats.spearmanr(x, y)[0]), "n": len(x)}
