"""What a run reports: the ``results.json`` dict, and the plain-text tables the script prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax.pfcdr import method as method_lib
from pfcdr_jax.harness import sanity as sanity_lib
from pfcdr_jax.config import PFCDRConfig
from pfcdr_jax.data import splits as splits_lib
from pfcdr_jax.harness.pretraining import PRETRAIN_META
from pfcdr_jax.harness.run_inputs import RunInputs
from pfcdr_jax.harness.stages import Recorder


def _results(cfg: PFCDRConfig, run: RunInputs, fit: method_lib.PFCDRFit,
             methods: dict, chosen: dict, rec: Recorder, workdir: Path) -> dict[str, Any]:
  data = run.data
  m = data.manifest
  timings = dict(rec.timings)
  timings["total"] = round(rec.wall_s, 3)   # first stage's start to last one's end
  return {
      "task": cfg.data.task,
      "beta": cfg.split.beta,
      "seed": cfg.seed,
      "base_model": cfg.pretrain.base_model,
      "synthetic": bool(run.info.get("synthetic", False)),
      "misaligned": run.info.get("misaligned"),
      "dataset": {
          "source": _domain_counts(data.source),
          "target": _domain_counts(_concat_domains(data.target_train, data.target_val,
                                                   data.target_test)),
          "overlap": int(data.n_overlap),
          "test_users": int(len(data.test_users)),
          "test_ratings": int(data.target_test.rating.size),
          "val_users": int(len(data.val_users)),
          "bridge_users": int(len(data.train_users)),
          "data_hash": run.data_hash,
      },
      "selected": {"topk": fit.k, "n_valid_target_users": fit.n_candidates,
                   "pretrain": _read_stage_meta(workdir, ("pretrain_source",
                                                          "pretrain_target")),
                   "baselines": chosen},
      "methods": methods,
      "timings_s": timings,
      "manifest": {k: m[k] for k in m if k.endswith("sha256")},
      # Each input file read (role, path, sha256) or the archive it came from.
      "input_files": cache_lib.jsonable(run.info.get("files", [])),
  }


def _domain_counts(d: splits_lib.DomainData) -> dict[str, int]:
  return {"users": int(np.unique(d.user).size), "items": int(np.unique(d.item).size),
          "ratings": int(d.rating.size)}


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
      out[rec["stage"]] = {k: rec[k] for k in (*PRETRAIN_META, "cached", "seed_stack",
                                               "seed_stack_seconds") if k in rec}
  return out


def format_table(results: dict[str, Any]) -> str:
  """Plain-text table of MAE/RMSE per method (printed by the script); a method that
  failed its sanity gate (or whose pretraining did) is marked, and each failure is one
  line under the table."""
  failed = sanity_lib.sanity_failures(results)
  lines = [f"task={results['task']} beta={results['beta']} seed={results['seed']} "
           f"base_model={results['base_model']}" +
           (" [SYNTHETIC DATA]" if results.get("synthetic") else ""),
           f"{'method':<12} {'MAE':>8} {'RMSE':>8}"]
  for name, m in results["methods"].items():
    lines.append(f"{name:<12} {m['mae']:>8.4f} {m['rmse']:>8.4f}"
                 + ("  FAILED SANITY GATE" if name in failed else ""))
  lines += [f"  {line}" for line in sanity_lib.failures(
      results.get("sanity", {}), results.get("selected", {}).get("pretrain"))]
  return "\n".join(lines)


def format_selection(results: dict[str, Any]) -> str:
  """The hyper-parameters chosen on held-out / validation data, one line each."""
  sel = results["selected"]
  lines = [f"K = {sel['topk']} of {sel['n_valid_target_users']} target users "
           "(chosen on the validation users)"]
  for stage, meta in sel.get("pretrain", {}).items():
    lines.append(f"{stage}: lr {meta.get('lr')}, epoch {meta.get('epoch')} "
                 f"(held-out MSE {meta.get('heldout_mse', float('nan')):.4f})"
                 + (", cached" if meta.get("cached") else ""))
  for name, chosen in sel.get("baselines", {}).items():
    free = {k: v for k, v in chosen.items() if k not in ("val_mae", "grid")
            and len({str(g.get(k)) for g in chosen.get("grid", [])}) > 1}
    if free:
      lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in free.items()))
  return "\n".join(lines)
