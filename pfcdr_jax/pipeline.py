"""The end-to-end PFCDR experiment: data -> pretrain -> inversion -> bridge -> top-k.

`run_pfcdr(config, workdir)` is the one library entry point the experiment
script calls. It writes `config.json`, appends stage records to
`metrics.jsonl`, writes `results.json`, and returns the results dict. Finished
stages (pretrained parameters, prototypes) are cached under keys that hash the
data and the configuration each stage reads (`pfcdr_jax.cache`).

Selection protocol: the learning rate and epoch of each pretraining are chosen on
a held-out slice of that domain's training ratings; K of the top-k step is chosen
on the validation overlap users (pseudo-cold users whose target ratings were
removed from training); the test (cold-start) users are touched only once, at
the end, to report MAE/RMSE.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pfcdr_jax import cache as cache_lib
from pfcdr_jax import bridge as bridge_lib
from pfcdr_jax import inversion as inversion_lib
from pfcdr_jax import metrics as metrics_lib
from pfcdr_jax import sharding as sharding_lib
from pfcdr_jax import topk as topk_lib
from pfcdr_jax.baselines import context as context_lib
from pfcdr_jax.baselines import emcdr as emcdr_lib
from pfcdr_jax.baselines import floors
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.data import tasks as tasks_lib
from pfcdr_jax.models import scorers as scorers_lib
from pfcdr_jax.models import train as train_lib

log = logging.getLogger(__name__)

# Fractions of the trained target users tried for K on the validation users.
DEFAULT_TOPK_GRID = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)


# Per-task pretraining presets of the experiment scripts (flags override them).
TASK_PRESETS = {
    "comedy2drama": dict(epochs=100, batch_size=1024),
    "book2movie": dict(epochs=20, batch_size=4096),
    "book2music": dict(epochs=20, batch_size=4096),
    "music2movie": dict(epochs=20, batch_size=4096),
    "custom": dict(epochs=30, batch_size=1024),
    "synthetic": dict(epochs=20, batch_size=4096),
}

@dataclasses.dataclass(frozen=True)
class PFCDRConfig:
  """Everything one PFCDR run depends on (built from flags by the script)."""
  task: str = "comedy2drama"
  beta: float = 0.2
  seed: int = 0
  base_model: str = "mf"
  data_dir: str | None = None
  scale: float = 0.01
  like: str = "music2movie"
  source_file: str | None = None
  target_file: str | None = None
  val_fraction: float = 0.1
  emb_dim: int = 10
  lrs: tuple[float, ...] = (0.001, 0.005, 0.01, 0.02, 0.1)
  epochs: int = 30
  batch_size: int = 1024
  heldout_fraction: float = 0.05
  target_rating: float = 5.0
  inversion_steps: int = 300
  inversion_lr: float = 1e-4
  inversion_weight_decay: float = 1e-4
  inversion_loss: str = "mse"
  inversion_eps: float | None = None
  inversion_method: str = "auto"
  inversion_chunk: int | None = None   # None: inversion.chunk_size_for
  bridge_lr: float = 0.005
  bridge_epochs: int = 200
  bridge_batch_size: int = 256
  topk: str = "auto"
  topk_grid: tuple[float, ...] = DEFAULT_TOPK_GRID
  topk_chunk: int | None = None      # None: topk.DEFAULT_CHUNK of the method
  topk_method: str = "auto"         # topk.METHODS; all exact
  include_untrained: bool = False
  # Names of further baselines (pfcdr_jax.baselines.registry) run on the same split.
  extra_baselines: tuple[str, ...] = ()
  use_cache: bool = True
  cache_dir: str | None = None

  def inversion_config(self) -> inversion_lib.InversionConfig:
    return inversion_lib.InversionConfig(
        target_rating=self.target_rating, steps=self.inversion_steps,
        lr=self.inversion_lr, weight_decay=self.inversion_weight_decay,
        loss=self.inversion_loss, eps=self.inversion_eps,
        chunk_size=self.inversion_chunk, method=self.inversion_method)

  def train_config(self) -> train_lib.TrainConfig:
    return train_lib.TrainConfig(
        lrs=tuple(self.lrs), epochs=self.epochs, batch_size=self.batch_size,
        heldout_fraction=self.heldout_fraction, seed=self.seed, dim=self.emb_dim)


class _Recorder:
  """Appends one JSON line per finished stage to metrics.jsonl and times it."""

  def __init__(self, workdir: Path):
    self.path = workdir / "metrics.jsonl"
    self.timings: dict[str, float] = {}

  def stage(self, name: str):
    recorder = self

    class _Stage:
      def __enter__(self):
        log.info("stage %s ...", name)
        self.t0 = time.perf_counter()
        self.record: dict[str, Any] = {}
        return self.record

      def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
          return False
        dt = time.perf_counter() - self.t0
        recorder.timings[name] = round(dt, 3)
        line = {"stage": name, "seconds": round(dt, 3), **self.record}
        with open(recorder.path, "a") as f:
          f.write(json.dumps(cache_lib._jsonable(line)) + "\n")
        log.info("stage %s done in %.1fs", name, dt)
        return False

    return _Stage()


def _domain_counts(d: splits_lib.DomainData) -> dict[str, int]:
  return {"users": int(np.unique(d.user).size), "items": int(np.unique(d.item).size),
          "ratings": int(d.rating.size)}


def _pretrain_template(scorer, domain, cfg: PFCDRConfig, key):
  return jax.eval_shape(lambda k: scorer.init(k, domain.n_users, domain.n_items,
                                              cfg.emb_dim), key)


def _save_pretrain(cache, name: str, cache_key: str, result: train_lib.TrainResult,
                   extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
  meta = {"lr": float(result.lr), "epoch": int(result.epoch),
          "heldout_mse": float(result.heldout_mse), **(extra_meta or {})}
  leaves = jax.tree_util.tree_leaves(result.params)
  cache.save(f"pretrain-{name}", cache_key,
             {f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)}, meta)
  return meta


def _pretrain(scorer, domain, cfg: PFCDRConfig, key, cache, cache_key, name, record):
  """Trains (or loads) one domain's scorer; returns its params pytree."""
  leaves_t, treedef = jax.tree_util.tree_flatten(_pretrain_template(scorer, domain, cfg, key))
  hit = cache.load(f"pretrain-{name}", cache_key) if cfg.use_cache else None
  if hit is not None:
    arrays, meta = hit
    leaves = [arrays.get(f"leaf{i}") for i in range(len(leaves_t))]
    if all(x is not None and x.shape == t.shape for x, t in zip(leaves, leaves_t)):
      record.update(meta)
      record["cached"] = True
      return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in leaves])
    # E.g. an entry written before emb_dim reached the trainer: not what we need.
    log.warning("cached pretrain-%s does not have the expected parameter shapes; "
                "retraining", name)
  result = train_lib.train_scorer(scorer, domain, cfg.train_config(), key)
  record.update(_save_pretrain(cache, name, cache_key, result))
  return result.params


def _prototypes(scorer, w, V, users, key, cfg: PFCDRConfig, cache, cache_key, name, record):
  """Inverts (or loads) the prototypes of `users`; w: [U, d] user reprs."""
  hit = cache.load(f"prototypes-{name}", cache_key) if cfg.use_cache else None
  if hit is not None:
    arrays, meta = hit
    record.update(meta)
    record["cached"] = True
    return arrays["prototypes"]
  users = jnp.asarray(users)
  if jax.device_count() > 1:   # the same kernel, users sharded over every device
    out = sharding_lib.shard_invert_users(jnp.asarray(w)[users], V, key,
                                          cfg.inversion_config(),
                                          linear_in_b=scorer.linear_in_b, user_index=users)
  else:
    out = inversion_lib.invert_users(jnp.asarray(w)[users], V, key, cfg.inversion_config(),
                                     linear_in_b=scorer.linear_in_b, user_index=users,
                                     progress=name)
  protos = np.asarray(out.prototypes)
  meta = {"n_users": int(len(users)), "mean_final_loss": float(np.mean(out.loss)),
          "method": out.method}
  record.update(meta)
  cache.save(f"prototypes-{name}", cache_key, {"prototypes": protos}, meta)
  return protos


def _k_candidates(cfg: PFCDRConfig, n_valid: int) -> list[int]:
  if cfg.topk != "auto":
    return [topk_lib.resolve_k(_parse_k(cfg.topk), n_valid)]
  return sorted({topk_lib.resolve_k(f, n_valid) for f in cfg.topk_grid})


def _parse_k(text: str) -> int | float:
  value = float(text)
  if value <= 0:
    raise ValueError(f"--topk must be positive, got {text!r}")
  return int(value) if value >= 1 and value == int(value) and "." not in text else value


def _topk_predict(P_hat, W_t, valid, V_t, users_of_rating, rows_of_user, items, k, cfg):
  """Predictions of Eq. (14) for ratings of cold users, with K neighbours."""
  select = (sharding_lib.shard_topk_neighbors if jax.device_count() > 1
            else topk_lib.topk_neighbors)   # cold users sharded over every device
  idx = select(jnp.asarray(P_hat), W_t, valid, r=cfg.target_rating, k=k,
               chunk_size=cfg.topk_chunk, method=cfg.topk_method, sorted=False,
               include_untrained=cfg.include_untrained)
  mean_w = topk_lib.neighbour_mean(idx, W_t)                         # [C, d]
  return np.asarray(jnp.sum(mean_w[rows_of_user[users_of_rating]] * V_t[items], axis=-1))


def _topk_candidates_mask(cfg: PFCDRConfig, data) -> jax.Array:
  """bool[T]: the target users searched by top-k (trained ones, or all of them)."""
  return jnp.asarray(np.ones_like(data.target_trained) if cfg.include_untrained
                     else data.target_trained)


def _select_k(P_hat, W_t, valid, V_t, val, row_of_user, cfg: PFCDRConfig
              ) -> tuple[int, dict[int, float]]:
  """K of Eq. (14) with the lowest MAE on the validation users' target ratings.

  Returns ``(k, {candidate k: validation MAE})``; the dict is empty when ``cfg.topk``
  fixes K (then nothing is evaluated).
  """
  candidates = _k_candidates(cfg, int(np.sum(np.asarray(valid))))
  if len(candidates) == 1:
    return candidates[0], {}
  if val.rating.size == 0:
    raise ValueError("topk=auto needs validation users with target ratings; "
                     "set --topk explicitly or raise --val_fraction")
  val_mae = {k: float(metrics_lib.mae(
      _topk_predict(P_hat, W_t, valid, V_t, val.user, row_of_user, val.item, k, cfg),
      val.rating)) for k in candidates}
  return min(val_mae, key=val_mae.get), val_mae


def _stage_keys(cfg: PFCDRConfig) -> list[jax.Array]:
  """The run's stage keys, in order: source / target pretraining, source / target
  inversion, bridge, EMCDR, extra baselines (all from ``PRNGKey(cfg.seed)``)."""
  return list(jax.random.split(jax.random.PRNGKey(cfg.seed), 7))


def _load_frames(cfg: PFCDRConfig):
  """(source frame, target frame, info) of the run's task (``tasks.load_task``)."""
  return tasks_lib.load_task(
      cfg.task, data_dir=cfg.data_dir, seed=cfg.seed, scale=cfg.scale, like=cfg.like,
      source_file=cfg.source_file, target_file=cfg.target_file)


def _frames_key(cfg: PFCDRConfig) -> tuple:
  """What ``_load_frames`` depends on: runs with equal keys load the same frames."""
  return (cfg.task, cfg.data_dir, cfg.seed if cfg.task in tasks_lib.SEEDED_TASKS else None,
          cfg.scale, cfg.like, cfg.source_file, cfg.target_file)


def _load_split(cfg: PFCDRConfig, frames=None):
  """(CDRData, task info, data hash) of the run's task, beta and seed.

  ``frames``: the ``_load_frames(cfg)`` result when the caller already has it.
  """
  src_df, tgt_df, info = frames if frames is not None else _load_frames(cfg)
  data = splits_lib.make_cdr_split(src_df, tgt_df, beta=cfg.beta, seed=cfg.seed,
                                   val_fraction=cfg.val_fraction, name=cfg.task)
  return data, info, cache_lib.stable_hash(data.manifest)


def _train_key_fields(cfg: PFCDRConfig) -> tuple:
  return (cfg.base_model, cfg.emb_dim, cfg.lrs, cfg.epochs, cfg.batch_size,
          cfg.heldout_fraction, cfg.seed)


def _pretrain_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  return cache_lib.stable_hash(data_hash, name, _train_key_fields(cfg))


def _prototype_cache_key(cfg: PFCDRConfig, data_hash: str, name: str) -> str:
  """Cache key of the ``name`` ("source" / "target") inversion stage."""
  tag = {"source": "src", "target": "tgt"}[name]
  return cache_lib.stable_hash(data_hash, tag,
                               (cfg.inversion_config(), _train_key_fields(cfg), cfg.seed))


def _stage_cache(cfg: PFCDRConfig, workdir: Path) -> cache_lib.StageCache:
  return cache_lib.StageCache(
      (Path(cfg.cache_dir) if cfg.cache_dir else workdir / "cache") if cfg.use_cache else None)


def pretrain_seeds(cfgs: Sequence[PFCDRConfig], workdirs: Sequence[str | Path]
                   ) -> dict[str, list[list[int]]]:
  """Pretrains several runs' domains together, seeds vmapped, where the shapes allow.

  For each run (``cfgs[i]`` with workdir ``workdirs[i]``) this computes what
  :func:`run_pfcdr` would train in its ``pretrain_source`` / ``pretrain_target``
  stages: same split, PRNG keys, configuration and cache key. Runs whose entry is not
  cached are grouped by domain shape (and configuration up to the seed); each group
  of two or more trains as one seed stack (``train.train_scorer_seeds``) and stores
  every seed's parameters in the run's stage cache, where ``run_pfcdr`` then finds
  them. Singletons are left to ``run_pfcdr``. A no-op for runs without a cache.

  Which stacks form: the source domain is the same for every seed of a real task (the
  split only chooses which overlapping users are cold), so all seeds stack; the target
  training domain loses each seed's own cold users' ratings, so its size differs per
  seed and it almost never stacks (it trains per seed, as before).

  Returns:
    ``{"source": groups, "target": groups}``: the seeds of each stack trained here.
  """
  cfgs = list(cfgs)
  if len(cfgs) != len(workdirs):
    raise ValueError(f"{len(cfgs)} configs but {len(workdirs)} workdirs")
  pending: dict[str, dict[tuple, list]] = {"source": {}, "target": {}}
  frames: dict[tuple, Any] = {}   # a real task's files are parsed once, not per seed
  for cfg, workdir in zip(cfgs, workdirs):
    if not cfg.use_cache:
      continue
    cache = _stage_cache(cfg, Path(workdir))
    fkey = _frames_key(cfg)
    if fkey not in frames:
      frames[fkey] = _load_frames(cfg)
    data, _, data_hash = _load_split(cfg, frames[fkey])
    k_src, k_tgt = _stage_keys(cfg)[:2]
    for name, domain, key in (("source", data.source, k_src),
                              ("target", data.target_train, k_tgt)):
      cache_key = _pretrain_cache_key(cfg, data_hash, name)
      if cache.path(f"pretrain-{name}", cache_key).exists():
        continue
      group = (train_lib.domain_shape(domain), cfg.base_model,
               dataclasses.replace(cfg.train_config(), seed=0))
      pending[name].setdefault(group, []).append((cfg, domain, key, cache, cache_key))
  stacked: dict[str, list[list[int]]] = {"source": [], "target": []}
  for name, groups in pending.items():
    for runs in groups.values():
      if len(runs) < 2:
        continue
      seeds = [cfg.seed for cfg, *_ in runs]
      log.info("pretrain_%s: seeds %s as one vmapped stack", name, seeds)
      t0 = time.perf_counter()
      results = train_lib.train_scorer_seeds(
          scorers_lib.get_scorer(runs[0][0].base_model), [r[1] for r in runs],
          [r[0].train_config() for r in runs], [r[2] for r in runs])
      seconds = round(time.perf_counter() - t0, 3)
      for (cfg, _, _, cache, cache_key), result in zip(runs, results):
        _save_pretrain(cache, name, cache_key, result,
                       {"seed_stack": seeds, "seed_stack_seconds": seconds})
      stacked[name].append(seeds)
  return stacked


def run_pfcdr(cfg: PFCDRConfig, workdir: str | Path) -> dict[str, Any]:
  """Runs PFCDR and the issue's baselines on one task/beta/seed.

  Args:
    cfg: the run configuration.
    workdir: output directory (config.json, metrics.jsonl, results.json,
      split_manifest.json).

  Returns:
    The results dict written to results.json.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  # A rerun first removes the previous run's outputs, so an interrupted rerun can never
  # pair a new config.json with an old results.json (comparison.is_finished reads both).
  for stale in ("results.json", "predictions-test.npz"):
    (workdir / stale).unlink(missing_ok=True)
  cache_lib.atomic_write_text(workdir / "config.json",
                              json.dumps(cache_lib._jsonable(cfg), indent=2))
  (workdir / "metrics.jsonl").unlink(missing_ok=True)
  rec = _Recorder(workdir)
  cache = _stage_cache(cfg, workdir)
  k_src, k_tgt, k_inv_s, k_inv_t, k_bridge, k_emcdr, k_extra = _stage_keys(cfg)

  with rec.stage("data") as r:
    data, info, data_hash = _load_split(cfg)
    splits_lib.save_manifest(data, workdir / "split_manifest.json")
    r.update({"data_hash": data_hash, "synthetic": bool(info.get("synthetic", False))})
  test, val = data.target_test, data.target_val
  log.info("data: %d overlap users, %d test users (%d ratings), %d val users",
           data.n_overlap, len(data.test_users), test.rating.size, len(data.val_users))

  scorer = scorers_lib.get_scorer(cfg.base_model)
  train_key_fields = _train_key_fields(cfg)
  with rec.stage("pretrain_source") as r:
    params_s = _pretrain(scorer, data.source, cfg, k_src, cache,
                         _pretrain_cache_key(cfg, data_hash, "source"), "source", r)
  with rec.stage("pretrain_target") as r:
    params_t = _pretrain(scorer, data.target_train, cfg, k_tgt, cache,
                         _pretrain_cache_key(cfg, data_hash, "target"), "target", r)

  W_s = scorer.user_repr(params_s, jnp.arange(data.source.n_users))
  V_s = scorer.item_matrix(params_s)
  W_t = scorer.user_repr(params_t, jnp.arange(data.target_train.n_users))
  V_t = scorer.item_matrix(params_t)

  # Cold users = validation users (for K selection) then test users.
  cold_users = np.concatenate([data.val_users, data.test_users]).astype(np.int32)
  bridge_users = np.asarray(data.train_users, dtype=np.int32)
  source_users = np.concatenate([bridge_users, cold_users])
  with rec.stage("inversion_source") as r:
    P_s = _prototypes(scorer, W_s, V_s, source_users, k_inv_s, cfg, cache,
                      _prototype_cache_key(cfg, data_hash, "source"), "source", r)
  with rec.stage("inversion_target") as r:
    P_t = _prototypes(scorer, W_t, V_t, bridge_users, k_inv_t, cfg, cache,
                      _prototype_cache_key(cfg, data_hash, "target"), "target", r)

  n_bridge = len(bridge_users)
  with rec.stage("bridge") as r:
    W_map = bridge_lib.fit_linear_bridge(jnp.asarray(P_s[:n_bridge]), jnp.asarray(P_t),
                                         k_bridge, lr=cfg.bridge_lr, epochs=cfg.bridge_epochs,
                                         batch_size=cfg.bridge_batch_size)
    P_hat = np.asarray(bridge_lib.apply_bridge(W_map, jnp.asarray(P_s[n_bridge:])))
    r["train_mse"] = float(jnp.mean((bridge_lib.apply_bridge(
        W_map, jnp.asarray(P_s[:n_bridge])) - P_t) ** 2))

  valid = _topk_candidates_mask(cfg, data)
  n_valid = int(np.sum(np.asarray(valid)))
  row_of_user = np.full(data.target_train.n_users, -1, dtype=np.int64)
  row_of_user[cold_users] = np.arange(len(cold_users))
  methods: dict[str, dict[str, float]] = {}
  predictions: dict[str, np.ndarray] = {}

  with rec.stage("topk") as r:
    best_k, val_mae = _select_k(P_hat, W_t, valid, V_t, val, row_of_user, cfg)
    if val_mae:
      r["val_mae_by_k"] = {str(k): v for k, v in val_mae.items()}
    r["k"] = best_k
    pred = _topk_predict(P_hat, W_t, valid, V_t, test.user, row_of_user, test.item, best_k,
                         cfg)
    predictions["PFCDR"] = pred

  with rec.stage("baselines") as r:
    predictions["TGT"] = np.asarray(scorer.predict(params_t, jnp.asarray(test.user),
                                                   jnp.asarray(test.item)))
    predictions["EMCDR"] = emcdr_lib.fit_predict(
        scorer, params_s, params_t, bridge_users, test.user, test.item, k_emcdr,
        lr=cfg.bridge_lr, epochs=cfg.bridge_epochs, batch_size=cfg.bridge_batch_size)
    predictions["GlobalMean"] = floors.global_mean_predict(data.target_train.rating,
                                                           test.rating.size)
    predictions["ItemMean"] = floors.item_mean_predict(
        data.target_train.item, data.target_train.rating, test.item, data.target_train.n_items)

  chosen: dict[str, Any] = {}
  if cfg.extra_baselines:
    from pfcdr_jax.baselines import registry  # pylint: disable=g-import-not-at-top
    ctx = context_lib.BaselineContext(data=data, scorer=scorer, params_s=params_s,
                                      params_t=params_t, key=k_extra, seed=cfg.seed)
    for name in cfg.extra_baselines:
      with rec.stage(f"baseline_{name}") as r:
        # Cached like the other stages: the key covers the split, the pretrained
        # models and seed (train_key_fields), the settings tried and the registry's
        # code version, so changing PFCDR alone does not rerun the baselines.
        b_key = cache_lib.stable_hash(data_hash, "baseline", name,
                                      registry.selection_grid(name),
                                      registry.CACHE_VERSION, train_key_fields)
        hit = cache.load("baseline", b_key) if cfg.use_cache else None
        if hit is not None and hit[0]["pred"].shape == test.rating.shape:
          predictions[name], chosen[name] = hit[0]["pred"], hit[1]
          r["cached"] = True
        else:
          predictions[name], chosen[name] = registry.fit_predict(name, ctx)
          cache.save("baseline", b_key, {"pred": predictions[name]}, chosen[name])
        r["chosen"] = chosen[name]

  with rec.stage("evaluate") as r:
    for name, pred in predictions.items():
      methods[name] = {"mae": float(metrics_lib.mae(pred, test.rating)),
                       "rmse": float(metrics_lib.rmse(pred, test.rating))}
    r["methods"] = methods

  # Per-rating predictions, for paired significance tests across methods.
  cache_lib.StageCache(workdir).save("predictions", "test", {
      "user": test.user, "item": test.item, "rating": test.rating,
      **{f"pred_{name}": np.asarray(p, np.float32) for name, p in predictions.items()}})
  m = data.manifest
  results = {
      "task": cfg.task,
      "beta": cfg.beta,
      "seed": cfg.seed,
      "base_model": cfg.base_model,
      "synthetic": bool(info.get("synthetic", False)),
      "dataset": {
          "source": _domain_counts(data.source),
          "target": _domain_counts(_concat_domains(data.target_train, val, test)),
          "overlap": int(data.n_overlap),
          "test_users": int(len(data.test_users)),
          "test_ratings": int(test.rating.size),
          "val_users": int(len(data.val_users)),
          "bridge_users": int(n_bridge),
          "data_hash": data_hash,
      },
      "selected": {"topk": int(best_k), "n_valid_target_users": n_valid,
                   "pretrain": _read_stage_meta(workdir, ("pretrain_source", "pretrain_target")),
                   "baselines": chosen},
      "methods": methods,
      "timings_s": dict(rec.timings),
      "manifest": {k: m[k] for k in m if k.endswith("sha256")},
  }
  results["timings_s"]["total"] = round(sum(rec.timings.values()), 3)
  cache_lib.atomic_write_text(workdir / "results.json", json.dumps(results, indent=2))
  return results


def _concat_domains(*parts: splits_lib.DomainData) -> splits_lib.DomainData:
  return splits_lib.DomainData(
      user=np.concatenate([p.user for p in parts]), item=np.concatenate([p.item for p in parts]),
      rating=np.concatenate([p.rating for p in parts]), n_users=parts[0].n_users,
      n_items=parts[0].n_items)


def _read_stage_meta(workdir: Path, stages: Sequence[str]) -> dict[str, Any]:
  out = {}
  for line in (workdir / "metrics.jsonl").read_text().splitlines():
    rec = json.loads(line)
    if rec["stage"] in stages:
      out[rec["stage"]] = {k: rec[k] for k in ("lr", "epoch", "heldout_mse", "cached",
                                               "seed_stack", "seed_stack_seconds")
                           if k in rec}
  return out


def format_table(results: dict[str, Any]) -> str:
  """Plain-text table of MAE/RMSE per method (printed by the script)."""
  lines = [f"task={results['task']} beta={results['beta']} seed={results['seed']} "
           f"base_model={results['base_model']}" +
           (" [SYNTHETIC DATA]" if results.get("synthetic") else ""),
           f"{'method':<12} {'MAE':>8} {'RMSE':>8}"]
  for name, m in results["methods"].items():
    lines.append(f"{name:<12} {m['mae']:>8.4f} {m['rmse']:>8.4f}")
  return "\n".join(lines)
