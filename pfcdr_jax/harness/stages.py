"""The stages of a run around the method, each cached and recorded: the split and both
pretrained scorers (:func:`prepare`), the prototypes, and one registry method.

:class:`Recorder` writes one ``metrics.jsonl`` line per finished stage; :func:`_gate`
warns (or, under ``--strict``, stops) when a stage fails its sanity gate.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.baselines import context as context_lib
from pfcdr_jax.baselines import selection
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.data import profile as profile_lib
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.harness.cache_keys import baseline_cache_key
from pfcdr_jax.harness.cache_keys import pretrain_cache_key
from pfcdr_jax.harness.cache_keys import prototype_cache_key
from pfcdr_jax.harness.cache_keys import stage_cache
from pfcdr_jax.harness.pretraining import pretrain
from pfcdr_jax.harness.pretraining import scorer_of
from pfcdr_jax.harness.run_inputs import RunInputs
from pfcdr_jax.harness.run_inputs import check_split
from pfcdr_jax.harness.run_inputs import load_split

log = logging.getLogger(__name__)


class Recorder:
  """Appends one JSON line per finished stage to ``metrics.jsonl`` and times it.

  ``Recorder(None)`` times the stages and writes nothing (studies that rebuild a run).
  """

  def __init__(self, workdir: Path | None):
    self.workdir = None if workdir is None else Path(workdir)
    self.path = None if workdir is None else self.workdir / "metrics.jsonl"
    self.timings: dict[str, float] = {}
    self._start: float | None = None   # the first stage's start
    self._end: float | None = None     # the last stage's end

  @property
  def wall_s(self) -> float:
    """Seconds from the first stage's start to the last one's end: the stages' sum
    when they run one after another (plus the work between them), less when some
    overlap (the two domains' pretrainings and inversions, :func:`domains_concurrently`)."""
    return 0.0 if self._end is None else self._end - self._start

  @contextlib.contextmanager
  def stage(self, name: str) -> Iterator[dict[str, Any]]:
    """``with rec.stage("bridge") as r: r["train_mse"] = ...``; written on success."""
    log.debug("stage %s ...", name)
    t0 = time.perf_counter()
    self._start = t0 if self._start is None else self._start
    record: dict[str, Any] = {}
    yield record
    t1 = time.perf_counter()
    dt = t1 - t0
    self._end = t1 if self._end is None else max(self._end, t1)
    self.timings[name] = round(dt, 3)
    if self.path is None:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(cache_lib.jsonable({"stage": name, "seconds": round(dt, 3),
                                             **record})) + "\n")
    log.info("%-22s %6.1fs%s", name, dt, "  (cached)" if record.get("cached") else "")


def _gate(sanity: dict[str, dict], names: tuple[str, ...], cfg: PFCDRConfig,
          pretrain_meta: dict | None = None) -> None:
  """Warns one line per failed sanity record among ``names`` (an error under
  ``cfg.strict``); ``sanity`` holds the run's records so far (the causes read them)."""
  lines = sanity_lib.failures(sanity, pretrain_meta, only=names)
  for line in lines:
    log.warning("%s", line)
  sanity_lib.enforce(lines, cfg.strict)


def _prototype_stage(run: RunInputs, cfg: PFCDRConfig, cache, name: str,
                     record: dict) -> np.ndarray:
  """One domain's prototypes (``method.prototypes``), cached."""
  if name == "source":
    params, n, users = (run.params_s, run.data.source.n_users,
                        method_lib.source_prototype_users(run.data))
    key = run.keys.inversion_source
  else:
    params, n, users = (run.params_t, run.data.target_train.n_users,
                        method_lib.bridge_users(run.data))
    key = run.keys.inversion_target
  d = scorers_lib.repr_dim(cfg.pretrain.emb_dim, cfg.pretrain.offsets)

  def compute():
    out = method_lib.prototypes(run.scorer, params, n, users, key, cfg.inversion,
                                progress=name)
    return ({"prototypes": np.asarray(out.prototypes)},
            {"n_users": int(len(users)), "mean_final_loss": float(np.mean(out.loss)),
             "method": out.method})

  def valid(arrays, meta):
    return (arrays.get("prototypes") is not None
            and arrays["prototypes"].shape == (len(users), d)
            and meta.get("n_users") == len(users) and isinstance(meta.get("method"), str))

  arrays, _ = cache_lib.cached_stage(cache, f"prototypes-{name}",
                                     prototype_cache_key(cfg, run.data_hash, name), compute,
                                     valid, record)
  return arrays["prototypes"]


def prepare(cfg: PFCDRConfig, workdir: str | Path, rec: Recorder | None = None,
            frames=None) -> RunInputs:
  """The split and both pretrained scorers of a run (cached), as ``run_pfcdr`` has them.

  Args:
    cfg: the run; workdir: where the default cache lives.
    rec: records the stages and says where the split manifest goes (None: nothing is
      written but the cache).
    frames: a :func:`load_frames` result to reuse.
  """
  rec = rec or Recorder(None)
  cache = stage_cache(cfg, workdir)
  keys = method_lib.StageKeys.from_seed(cfg.seed)
  with rec.stage("data") as r:
    data, info, data_hash = load_split(cfg, frames)
    check_split(cfg, data)
    if rec.workdir is not None:
      splits_lib.save_manifest(data, rec.workdir / "split_manifest.json")
    r.update({"data_hash": data_hash, "synthetic": bool(info.get("synthetic", False))})
  log.info("data: %d overlap users, %d test users (%d ratings), %d validation users",
           data.n_overlap, len(data.test_users), data.target_test.rating.size,
           len(data.val_users))
  profile = profile_lib.data_profile(data)
  log.info("data profile:\n%s", profile_lib.format_profile(profile))
  for line in profile_lib.profile_warnings(profile):
    log.warning("data profile: %s", line)
  scorer = scorer_of(cfg)

  jobs = {"source": (data.source, keys.pretrain_source),
          "target": (data.target_train, keys.pretrain_target)}

  def pretrain_stage(name, r):
    domain, key = jobs[name]
    return pretrain(scorer, domain, cfg, key, cache,
                    pretrain_cache_key(cfg, data_hash, name), name, r), r

  done = _each_domain(rec, "pretrain", pretrain_stage)
  for name, (_, r) in done.items():
    stage = f"pretrain_{name}"
    _gate({stage: sanity_lib.pretrain_record(r)}, (stage,), cfg, {stage: r})
  return RunInputs(data, info, data_hash, scorer, done["source"][0], done["target"][0], keys,
                   profile)


# The two domains' pretrainings are independent, and so are their inversions: on one
# device each pair runs at the same time, the target's in a second thread. XLA's CPU
# kernels leave part of the cores idle (a scan of small steps) and each compile uses
# one core, so on 2 CPU cores music2movie's two pretrainings took 25.8 s together
# against 29.7 s one after the other, and its two inversions 8.5 s against 9.8 s, cold
# (experiments/bench_concurrent_domains.py, BUILD_NOTES § 9), with the same parameters
# and prototypes bit for bit. Each stage's seconds are then its own wall time,
# overlapping the other's. Several devices or processes keep the order (their
# collectives must be issued in the same order everywhere).
CONCURRENT_DOMAINS = True


def domains_concurrently() -> bool:
  """Whether :func:`prepare` pretrains, and :func:`run_prototypes` inverts, the two
  domains at the same time."""
  return CONCURRENT_DOMAINS and jax.process_count() == 1 and jax.device_count() == 1


def _each_domain(rec: Recorder, stage: str, fn) -> dict[str, Any]:
  """``{name: fn(name, record)}`` for the source and the target domain, each inside its
  ``<stage>_<name>`` record: at the same time where :func:`domains_concurrently`, the
  records then put back in their usual order (source first)."""
  def one(name):
    with rec.stage(f"{stage}_{name}") as r:
      return fn(name, r)

  names = ("source", "target")
  if not domains_concurrently():
    return {name: one(name) for name in names}
  out = in_threads({name: functools.partial(one, name) for name in names})
  for name in names:
    rec.timings[f"{stage}_{name}"] = rec.timings.pop(f"{stage}_{name}")
  return out


def in_threads(calls: dict[str, Any]) -> dict[str, Any]:
  """``{name: call()}``: the first call in this thread, the others each in a daemon
  thread. An exception of the first call is raised once the others have finished (an
  interrupt at once: daemon threads do not hold a killed run); else the first
  exception of the others, in the calls' order."""
  results: dict[str, Any] = {}
  errors: dict[str, BaseException] = {}

  def run(name, call):
    try:
      results[name] = call()
    except BaseException as e:  # pylint: disable=broad-except  (raised in the caller)
      errors[name] = e

  names = list(calls)
  threads = [threading.Thread(target=run, args=(n, calls[n]), daemon=True,
                              name=f"pfcdr-{n}") for n in names[1:]]
  for t in threads:
    t.start()
  try:
    results[names[0]] = calls[names[0]]()
  except Exception:
    for t in threads:
      t.join()
    raise
  for t in threads:
    t.join()
  for n in names[1:]:
    if n in errors:
      raise errors[n]
  return {n: results[n] for n in names}


def run_prototypes(run: RunInputs, cfg: PFCDRConfig, workdir: str | Path,
                   rec: Recorder | None = None) -> method_lib.Prototypes:
  """Both domains' prototypes of a prepared run (cached)."""
  rec = rec or Recorder(None)
  cache = stage_cache(cfg, workdir)

  out = _each_domain(rec, "inversion",
                     lambda name, r: _prototype_stage(run, cfg, cache, name, r))
  return method_lib.Prototypes(out["source"], out["target"])


def run_baseline(run: RunInputs, cfg: PFCDRConfig, cache, name: str,
                 record: dict) -> tuple[np.ndarray, dict, np.ndarray]:
  """One registry method's test predictions, chosen settings and validation predictions
  (cached)."""
  ctx = context_lib.BaselineContext(
      data=run.data, scorer=run.scorer, params_s=run.params_s, params_t=run.params_t,
      key=run.keys.baselines, seed=cfg.seed, emcdr_key=run.keys.emcdr, bridge=cfg.bridge,
      inversion=cfg.inversion, topk=cfg.topk)
  n_test, n_val = run.data.target_test.rating.size, run.data.target_val.rating.size

  def compute():
    pred, val_pred, chosen = selection.fit_predict_val(name, ctx)
    return {"pred": pred, "val_pred": val_pred}, chosen

  arrays, chosen = cache_lib.cached_stage(
      cache, "baseline", baseline_cache_key(cfg, run.data_hash, name), compute,
      lambda a, meta: (a.get("pred") is not None and a["pred"].shape == (n_test,)
                       and a.get("val_pred") is not None and a["val_pred"].shape == (n_val,)
                       and isinstance(meta.get("grid"), list) and "val_mae" in meta), record)
  record["chosen"] = chosen
  return arrays["pred"], chosen, arrays["val_pred"]
