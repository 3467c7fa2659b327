"""Resumable results: one JSON file per (study, base model, seed), and the decisions test
that Table 1's cells share.

A record holds the decisions of the config it was computed with
(``config.content``, the method list left out); :func:`load` returns it only when they
equal the current config's, so a changed setting recomputes the cell and a finished
one is skipped.
"""

from __future__ import annotations

import gc
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable

import jax

from pfcdr_jax.harness import cache as cache_lib
from pfcdr_jax import config as config_lib


def decisions(cfg: config_lib.PFCDRConfig) -> dict:
  """What a result's numbers depend on: the config's content less the method list (Table 1
  cells check their methods one by one) -- paths and execution-only knobs are not in it
  (``config.EXECUTION_ONLY``: e.g. the exact top-k kernels give the same neighbour sets,
  the inversion chunk the same prototypes to 1e-5). The one test of "made with this
  config" for every resumable result: study records here, Table 1 cells
  (``cells.is_finished``)."""
  out = cache_lib.jsonable(config_lib.content(cfg))
  out.pop("baselines", None)
  return out


def load(path: str | Path, cfg: config_lib.PFCDRConfig) -> dict | None:
  """The record at `path` if it was made with `cfg`'s decisions, else None."""
  path = Path(path)
  if not path.exists():
    return None
  try:
    rec = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  return rec if rec.get("decisions") == decisions(cfg) else None


def cached(path: str | Path, cfg: config_lib.PFCDRConfig,
           compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
  """``compute()``'s result, read from `path` when finished before (written atomically)."""
  rec = load(path, cfg)
  if rec is None:
    rec = {"decisions": decisions(cfg), **cache_lib.jsonable(compute())}
    cache_lib.atomic_write_text(Path(path), json.dumps(rec, indent=1))
  return rec


def device_info() -> dict[str, Any]:
  """The JAX backend and devices a study ran on (recorded next to its timings)."""
  devs = jax.devices()
  return {"backend": jax.default_backend(), "device_kind": devs[0].device_kind,
          "n_devices": len(devs), "cpu_count": os.cpu_count(),
          "processor": platform.processor() or platform.machine(),
          "jax": jax.__version__}


def release_compiled() -> None:
  """Drops JAX's compiled executables between cells (see ``comparison.run_cells``)."""
  jax.clear_caches()
  gc.collect()


def cell_path(root: str | Path, study: str, cfg: config_lib.PFCDRConfig,
              suffix: str = "") -> Path:
  """``<root>/cells/<study>-<task>-b<beta>-<model>-s<seed><suffix>.json``."""
  return (Path(root) / "cells" / f"{study}-{cfg.data.task}-b{cfg.split.beta:g}-"
          f"{cfg.pretrain.base_model}-s{cfg.seed}{suffix}.json")
